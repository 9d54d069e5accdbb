"""Recipes: the typed schema and its loader."""

from visiontl.config.loader import apply_overrides, load_recipe, recipe_to_dict, validate_recipe
from visiontl.config.schema import Recipe

__all__ = ["Recipe", "apply_overrides", "load_recipe", "recipe_to_dict", "validate_recipe"]
