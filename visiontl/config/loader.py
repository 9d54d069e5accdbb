"""Loading recipes: YAML, ``--set`` overrides, validation with readable errors."""

from __future__ import annotations

import copy
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from visiontl.config.schema import Recipe
from visiontl.errors import ConfigError
from visiontl.ids import suggest


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a recipe file into a dict (``yaml.safe_load``; never evaluates anything)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Recipe file '{path}' does not exist.", fix="check the path; recipes ship in recipes/")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"Recipe '{path}' is not valid YAML{where}: {problem}.", fix="fix the YAML syntax") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"Recipe '{path}' must be a mapping of sections, not {type(data).__name__}.")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b=value`` into a key path and a YAML-parsed value."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"Override {text!r} is not of the form key.path=value.", fix="e.g. --set train.epochs=3")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``a.b=value`` override applied.

    Keys are not checked here: validation afterwards reports unknown ones with the nearest
    valid key. List items are addressed by index (``strategy.phases.0.epochs=2``).
    """
    data = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        node: Any = data
        for part in path[:-1]:
            if isinstance(node, list):
                node = node[_index(part, text)]
                continue
            if not isinstance(node.get(part), (dict, list)):
                node[part] = {}
            node = node[part]
        last = path[-1]
        if isinstance(node, list):
            node[_index(last, text)] = value
        else:
            node[last] = value
    return data


def _index(part: str, text: str) -> int:
    try:
        return int(part)
    except ValueError:
        raise ConfigError(f"Override {text!r}: '{part}' must be a list index here.") from None


def _model_at(loc: tuple[Any, ...], root: type[BaseModel] = Recipe) -> type[BaseModel] | None:
    """The pydantic model class that holds the field at ``loc[:-1]``."""
    model: Any = root
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = _first_model(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _first_model(annotation: Any) -> Any:
    """Unwrap Optional/list/Union annotations down to the first BaseModel inside."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, tuple):
        for arg in typing.get_args(annotation):
            found = _first_model(arg)
            if found is not None:
                return found
    return None


def _path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))]
    return ".".join(parts)


def format_validation_error(exc: ValidationError, source: str) -> ConfigError:
    """One readable line per problem: field path, what is wrong, nearest valid key."""
    lines: list[str] = []
    seen: set[str] = set()
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = _path(loc)
        if err["type"] == "extra_forbidden":
            holder = _model_at(loc)
            valid = sorted(holder.model_fields) if holder else []
            close = suggest(str(loc[-1]), valid, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            valid_text = f" Valid keys here: {', '.join(valid)}." if valid else ""
            line = f"{path}: unknown key{hint}{valid_text}"
        elif err["type"] == "missing":
            line = f"{path}: required key is missing"
        else:
            got = err.get("input")
            shown = repr(got) if not isinstance(got, dict) else "a mapping"
            msg = err["msg"].removeprefix("Value error, ")
            line = f"{path}: {msg} (got {shown})"
        # A union reports one error per member; the first one is enough for a human.
        key = path if err["type"] != "extra_forbidden" else path + "!"
        if key in seen:
            continue
        seen.add(key)
        lines.append(line)
    count = len(lines)
    head = f"Recipe {source} has {count} problem{'s' if count != 1 else ''}: "
    return ConfigError(head + " | ".join(lines), fix="correct the recipe (see: visiontl config schema)")


def validate_recipe(data: dict[str, Any], source: str = "<recipe>") -> Recipe:
    """Validate a recipe dict against the schema.

    Raises:
        ConfigError: with every problem's field path (and nearest key for typos).
    """
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise format_validation_error(exc, source) from None


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate a recipe file.

    Example:
        >>> recipe = load_recipe("recipes/quickstart.yaml", ["train.epochs=1"])  # doctest: +SKIP
    """
    data = apply_overrides(read_yaml(path), overrides or [])
    recipe = validate_recipe(data, source=f"'{path}'")
    if recipe.output.name is None:
        recipe.output.name = Path(path).stem
    return recipe


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """A plain, YAML-safe dict of a recipe with every default filled in."""
    return recipe.model_dump(mode="json")
