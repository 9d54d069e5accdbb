"""Datasets, image loading and transforms."""
