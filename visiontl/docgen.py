"""Reference documentation generated from the code (recipe options, later CLI commands).

``python -m visiontl.docgen recipes`` prints the recipe reference that docs/recipes.md
embeds between its generated-section markers; a test fails when the two drift apart.
"""

from __future__ import annotations

import sys
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from visiontl.config.schema import Recipe

BEGIN = "<!-- BEGIN GENERATED: recipe options -->"
END = "<!-- END GENERATED: recipe options -->"
PIPE = "\\|"  # a literal pipe inside a markdown table cell


def _type_name(annotation: Any) -> str:
    text = repr(annotation) if not isinstance(annotation, type) else annotation.__name__
    for noise in ("typing.", "visiontl.config.schema.", "<class '", "'>"):
        text = text.replace(noise, "")
    return text.replace("NoneType", "null")


def _default(field: Any) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        return "see below" if isinstance(value, BaseModel) else f"`{value!r}`"
    if field.default is PydanticUndefined:
        return "required"
    return f"`{field.default!r}`".replace("None", "null")


def _nested(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _nested(arg)
        if found is not None:
            return found
    return None


def recipe_reference() -> str:
    """Markdown tables of every recipe option, section by section."""
    lines: list[str] = [BEGIN, ""]
    todo: list[tuple[str, type[BaseModel]]] = [("", Recipe)]
    while todo:
        prefix, model = todo.pop(0)
        title = prefix.rstrip(".") or "top level"
        lines += [f"### `{title}`", "", (model.__doc__ or "").strip().splitlines()[0], ""]
        lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            nested = _nested(field.annotation)
            if nested is not None:
                todo.append((f"{prefix}{name}.", nested))
                if field.description is None:
                    lines.append(f"| `{prefix}{name}` | section | {_default(field)} | {(nested.__doc__ or '').strip().splitlines()[0]} |")
                    continue
            desc = (field.description or "").replace("|", PIPE)
            kind = _type_name(field.annotation).replace("|", PIPE)
            lines.append(f"| `{prefix}{name}` | {kind} | {_default(field)} | {desc} |")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["recipes"]:
        print(recipe_reference())
    else:
        print("usage: python -m visiontl.docgen recipes", file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":
    main()
