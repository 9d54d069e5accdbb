"""Measuring models: latency, throughput, size, memory."""
