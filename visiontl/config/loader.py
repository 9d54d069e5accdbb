"""Loading recipes: YAML, ``--set`` overrides, validation with readable errors."""

from __future__ import annotations

import codecs
import copy
import re
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
    """Read a recipe file into a dict (``yaml.safe_load``; never evaluates anything).

    The file may be UTF-8 (with or without a byte-order mark) or UTF-16/UTF-32 with a BOM.

    Raises:
        ConfigError: the path is missing, a folder or unreadable; the bytes are not text in one
            of those encodings (with the byte offset); the YAML is malformed (with the line); or
            the top level is not a mapping.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"Recipe '{path}' is a folder, not a file.", fix="give the recipe's YAML file, e.g. recipes/quickstart.yaml")
    if not path.is_file():
        raise ConfigError(f"Recipe file '{path}' does not exist.", fix="check the path; recipes ship in recipes/")
    try:
        raw = path.read_bytes()
    except PermissionError:
        raise ConfigError(f"Recipe '{path}' cannot be read: permission denied.", fix="make it readable (e.g. chmod u+r), or copy it somewhere you can read") from None
    except OSError as exc:
        raise ConfigError(f"Recipe '{path}' cannot be read: {exc.strerror or exc}.", fix="check the file and its permissions") from None
    text = decode_recipe(raw, f"'{path}'")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"Recipe '{path}' is not valid YAML{where}: {problem}.", fix="fix the YAML syntax") from None
    except RecursionError:
        raise ConfigError(f"Recipe '{path}' is nested too deeply to read.", fix="flatten the YAML (recipes are a few levels deep)") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"Recipe '{path}' must be a mapping of sections, not {type(data).__name__}.",
            fix="start the file with sections such as 'data:' and 'model:' (see recipes/quickstart.yaml)",
        )
    return data


#: Byte-order marks read, longest first (the UTF-32 LE mark starts with the UTF-16 LE one).
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_SAVE_AS_UTF8 = "save the file as UTF-8 (in most editors: Save with Encoding > UTF-8)"


def decode_recipe(raw: bytes, source: str = "<recipe>") -> str:
    """Decode a recipe's bytes: UTF-8 (BOM optional), or UTF-16/UTF-32 with a BOM.

    Raises:
        ConfigError: naming ``source``, the byte offset and line of the first byte that is not
            valid text, and saying to save the file as UTF-8.
    """
    for bom, codec in _BOMS:
        if raw.startswith(bom):
            body = raw[len(bom):]
            try:
                return body.decode(codec)
            except UnicodeDecodeError as exc:
                raise _undecodable(raw, len(bom) + exc.start, source, codec.upper().removesuffix("-LE").removesuffix("-BE")) from None
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        raise ConfigError(
            f"Recipe {source} has a NUL byte at byte offset {nul} (line {line}): "
            "it looks like UTF-16/UTF-32 without a byte-order mark, or not a text file.",
            fix=_SAVE_AS_UTF8,
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _undecodable(raw, exc.start, source, "UTF-8") from None


def _undecodable(raw: bytes, offset: int, source: str, encoding: str) -> ConfigError:
    line = raw.count(b"\n", 0, offset) + 1
    return ConfigError(
        f"Recipe {source} is not valid {encoding} text: byte 0x{raw[offset]:02x} at byte offset {offset} "
        f"(line {line}) cannot be decoded.",
        fix=_SAVE_AS_UTF8,
    )


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b=value`` into a key path and a YAML-parsed value."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"Override {text!r} is not of the form key.path=value.", fix="e.g. --set train.epochs=3")
    parts = [part.strip() for part in key.split(".")]
    if not all(parts):
        raise ConfigError(f"Override {text!r} has an empty part in its key path '{key}'.", fix="separate keys with single dots, e.g. --set train.epochs=3")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``a.b=value`` override applied.

    Keys are not checked here: validation afterwards reports unknown ones with the nearest
    valid key. List items are addressed by index (``strategy.phases.0.epochs=2``); an index
    must name an existing item.

    Raises:
        ConfigError: a malformed override, an index that is not a number or names no item,
            or an index into a list option that is not set.
    """
    data = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        node: Any = data
        for depth, part in enumerate(path[:-1]):
            if isinstance(node, list):
                node = node[_index(part, text, node, path[:depth])]
                continue
            child = node.get(part)
            if not isinstance(child, (dict, list)):
                where = ".".join(path[: depth + 1])
                following = path[depth + 1]
                if child is None and _looks_like_index(following) and _is_list_option(path[: depth + 1]):
                    raise ConfigError(
                        f"Override {text!r}: {where} is not set, so it has no item {following}.",
                        fix=f"set the whole list, e.g. --set '{where}=[...]'",
                    )
                node[part] = {}
            node = node[part]
        last = path[-1]
        if isinstance(node, list):
            node[_index(last, text, node, path[:-1])] = value
        else:
            node[last] = value
    return data


def _looks_like_index(part: str) -> bool:
    return part.lstrip("-").isdigit()


def _index(part: str, text: str, items: list[Any], where: list[str]) -> int:
    name = ".".join(where)
    try:
        index = int(part)
    except ValueError:
        raise ConfigError(f"Override {text!r}: {name} is a list, so '{part}' must be an item number (0, 1, ...).") from None
    if not 0 <= index < len(items):
        held = f"has {len(items)} item{'s' if len(items) != 1 else ''} (0 to {len(items) - 1})" if items else "is empty"
        raise ConfigError(
            f"Override {text!r}: {name} {held}; there is no item {index}.",
            fix=f"use an existing item number, or set the whole list: --set '{name}=[...]'",
        )
    return index


def _is_list_option(path: list[str]) -> bool:
    """Whether the schema declares the option at ``path`` as a list (``strategy.phases``)."""
    annotation: Any = Recipe
    for part in path:
        annotation = _without_none(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part)
            if field is None:
                return False
            annotation = field.annotation
        elif typing.get_origin(annotation) in (list, tuple) and _looks_like_index(part):
            args = typing.get_args(annotation)
            annotation = args[0] if args else Any
        else:
            return False
    return typing.get_origin(_without_none(annotation)) in (list, tuple)


def _without_none(annotation: Any) -> Any:
    """``X`` for ``X | None``; any other annotation unchanged."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


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


#: Parts of a pydantic error location that name a union member, not a recipe key.
_UNION_TAG = re.compile(r"^(int|float|str|bool|bytes|none|[a-z][a-z-]*\[.*\])$")


def _path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if not (isinstance(p, str) and _UNION_TAG.match(p))]
    return ".".join(parts)


def _shown(value: Any) -> str:
    return "a mapping" if isinstance(value, dict) else repr(value)


def _problem(err: Any, path: str) -> str:
    """One problem's text (without the path) from one pydantic error."""
    kind = err["type"]
    got = err.get("input")
    if kind == "missing":
        return "required key is missing"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        if got is None:
            return "is empty (null): it must be a mapping of keys; give its keys or remove the line"
        return f"must be a mapping of keys (key: value lines under '{path.rsplit('.', 1)[-1]}'), not {type(got).__name__} {_shown(got)}"
    msg = err["msg"]
    if kind == "value_error":  # our own validators name the value themselves
        return msg.removeprefix("Value error, ")
    if msg.startswith("Input should be "):
        msg = "must be " + msg.removeprefix("Input should be ")
    return f"{msg} (got {_shown(got)})"


def _is_member(err: Any, depth: int) -> bool:
    """Whether ``err`` is one union member's complaint about the value as a whole."""
    loc = tuple(err["loc"])
    return len(loc) == depth and isinstance(loc[-1], str) and bool(_UNION_TAG.match(loc[-1]))


def _alternative(err: Any) -> str:
    """What one union member wanted, for a combined message (``a valid list``)."""
    msg = str(err["msg"]).removeprefix("Input should be ")
    return msg.split(", unable to", 1)[0]


def format_validation_error(exc: ValidationError, source: str) -> ConfigError:
    """One readable line per problem: field path, what is wrong, nearest valid key.

    A value that fits none of a union's types (``strategy.phases.0.train: 'tail'``) gives one
    problem listing what each member accepts.
    """
    grouped: dict[str, list[Any]] = {}
    for err in exc.errors():
        path = _path(tuple(err["loc"]))
        key = path + "!" if err["type"] == "extra_forbidden" else path
        grouped.setdefault(key, []).append(err)
    lines: list[str] = []
    for key, errs in grouped.items():
        err = errs[0]
        loc = tuple(err["loc"])
        path = key.removesuffix("!")
        if err["type"] == "extra_forbidden":
            holder = _model_at(loc)
            valid = sorted(holder.model_fields) if holder else []
            close = suggest(str(loc[-1]), valid, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            valid_text = f" Valid keys here: {', '.join(valid)}." if valid else ""
            lines.append(f"{path}: unknown key{hint}{valid_text}")
            continue
        if len(errs) > 1 and all(_is_member(e, len(loc)) for e in errs):
            wanted = list(dict.fromkeys(_alternative(e) for e in errs))
            either = ", ".join(wanted[:-1]) + f", or {wanted[-1]}" if len(wanted) > 1 else wanted[0]
            lines.append(f"{path}: must be {either} (got {_shown(err.get('input'))})")
            continue
        lines.append(f"{path}: {_problem(err, path)}")
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
