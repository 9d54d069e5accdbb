"""Reference documentation generated from the code.

* ``python -m visiontl.docgen recipes``: the recipe options (docs/recipes.md, between its
  generated-section markers), and the index of shipped recipes from their header comments;
* ``python -m visiontl.docgen cli``: the command reference (docs/cli.md) from the click
  commands' help;
* ``python -m visiontl.docgen hooks``: the hooks reference (docs/hooks.md) from
  :mod:`visiontl.hookspecs`.

Tests fail when the documents drift from the code.
"""

from __future__ import annotations

import sys
import typing
from pathlib import Path
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


INDEX_BEGIN = "<!-- BEGIN GENERATED: recipe index -->"
INDEX_END = "<!-- END GENERATED: recipe index -->"


def recipe_index(folder: Path | None = None) -> str:
    """A table of the shipped recipes: file, task, model, and the first line of its header."""
    import yaml

    folder = folder or Path(__file__).resolve().parents[1] / "recipes"
    lines = [INDEX_BEGIN, "", "| recipe | task | model | when to use it |", "|---|---|---|---|"]
    for path in sorted(folder.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        header = next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#") and line.strip("# ")), "")
        data = yaml.safe_load(text) or {}
        lines.append(f"| `recipes/{path.name}` | {data.get('task', 'classification')} | `{data.get('model', {}).get('id', '')}` | {header} |")
    lines += ["", INDEX_END]
    return "\n".join(lines)


def cli_reference() -> str:
    """Every command's usage and help, generated from the click commands."""
    import click

    from visiontl.cli import cli

    lines = ["# Command reference", "", "Generated from the commands' own help (`python -m visiontl.docgen cli > docs/cli.md`);", "a test fails when it drifts from the code.", ""]

    def walk(command: click.Command, path: list[str], parent: click.Context | None) -> None:
        settings = {"terminal_width": 100, "max_content_width": 100, **command.context_settings}
        ctx = click.Context(command, info_name=path[-1], parent=parent, **settings)
        lines.extend([f"## `{' '.join(path)}`", "", "```", command.get_help(ctx).rstrip(), "```", ""])
        if isinstance(command, click.Group):
            for name in sorted(command.list_commands(ctx)):
                sub = command.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    walk(sub, [*path, name], ctx)

    walk(cli, ["visiontl"], None)
    return "\n".join(lines)


def hooks_reference(module: Any = None) -> str:
    """The hooks reference (docs/hooks.md): every hook specification in ``module`` (default:
    :mod:`visiontl.hookspecs`) with its calling convention, signature, arguments, return value
    and errors, read from the specifications and their docstrings.

    Args:
        module: a module of pluggy hook specifications (tests pass a modified copy).

    Returns:
        The whole markdown document (``python -m visiontl.docgen hooks > docs/hooks.md``).
    """
    import inspect
    import re

    from visiontl import hookspecs

    module = module or hookspecs
    project = getattr(module, "PROJECT", hookspecs.PROJECT)
    source = inspect.getsource(module)
    # The spec module groups hooks under "# ---- <section>" comments: keep that grouping.
    sections = [(source[: m.start()].count("\n") + 1, m.group(1).strip()) for m in re.finditer(r"^# -{3,}\s*(.+)$", source, re.M)]
    specs = []
    for name, fn in vars(module).items():
        opts = getattr(fn, f"{project}_spec", None)
        if opts is None or not callable(fn):
            continue
        line = inspect.getsourcelines(fn)[1]
        section = next((title for start, title in reversed(sections) if start < line), "hooks")
        specs.append((line, section, name, fn, opts))
    specs.sort(key=lambda s: s[0])

    def parse(doc: str) -> tuple[list[str], dict[str, list[str]]]:
        """Free text, and the Google-style sections (Args/Returns/Raises) of a docstring."""
        lines = inspect.cleandoc(doc or "").splitlines()
        text: list[str] = []
        parts: dict[str, list[str]] = {}
        current: list[str] | None = None
        for raw in lines:
            head = re.fullmatch(r"(Args|Returns|Raises):", raw.strip())
            if head and not raw.startswith(" "):
                current = parts.setdefault(head.group(1), [])
            elif current is not None and (raw.startswith(" ") or not raw.strip()):
                current.append(raw[4:] if raw.startswith("    ") else raw.strip())
            else:
                current = None
                text.append(raw)
        return text, parts

    def entries(block: list[str]) -> list[tuple[str, str]]:
        """``name: text`` entries (continuation lines indented) of an Args/Raises block."""
        out: list[tuple[str, str]] = []
        for raw in block:
            m = re.match(r"^(\w[\w.]*):\s*(.*)$", raw)
            if m and not raw.startswith(" "):
                out.append((m.group(1), m.group(2).strip()))
            elif out and raw.strip():
                out[-1] = (out[-1][0], f"{out[-1][1]} {raw.strip()}")
        return out

    def rst(text: str) -> str:
        # Sphinx roles read as plain code in markdown: :class:`~a.b.C` -> `C`, ``x`` -> `x`.
        text = re.sub(r":\w+:`~([\w.]+)`", lambda m: f"`{m.group(1).rsplit('.', 1)[-1]}`", text)
        text = re.sub(r":\w+:`([\w.]+)`", r"`\1`", text)
        return re.sub(r"``([^`]+)``", r"`\1`", text)

    def paragraph(text: list[str]) -> str:
        """The first paragraph of ``text`` on one line."""
        first: list[str] = []
        for raw in text:
            if not raw.strip():
                break
            first.append(raw.strip())
        return " ".join(first)

    def calling(opts: dict[str, Any]) -> str:
        return "firstresult" if opts.get("firstresult") else "1:N"

    def cell(text: str) -> str:
        return rst(" ".join(text.split())).replace("|", PIPE)

    # The module docstring's first line is the title's job; the rest introduces the page.
    intro = inspect.cleandoc(module.__doc__ or "").splitlines()[1:]
    while intro and not intro[0].strip():
        intro.pop(0)
    lines = [
        "# Hooks reference",
        "",
        f"Generated from `{module.__name__.replace('.', '/')}.py` by `python -m visiontl.docgen hooks > docs/hooks.md`;",
        "a test fails when this page drifts from the specifications or misses a hook.",
        "How to write a plugin, step by step: [the plugin author's guide](plugin_guide.md).",
        "",
        *(rst(t) for t in intro),
        "",
        "| hook | calling | section | in one line |",
        "|---|---|---|---|",
    ]
    for _, section, name, fn, opts in specs:
        first = paragraph(parse(fn.__doc__ or "")[0])
        lines.append(f"| [`{name}`](#{name}) | {calling(opts)} | {section} | {cell(first)} |")
    lines.append("")
    for _, _section, name, fn, opts in specs:
        text, parts = parse(fn.__doc__ or "")
        while text and not text[-1].strip():
            text.pop()
        signature = inspect.signature(fn)
        lines += [f"## {name}", "", "```python", "@hookimpl", f"def {name}{signature}: ...".replace("'", ""), "```", ""]
        if opts.get("firstresult"):
            lines.append("**Calling:** firstresult: plugins are asked in turn and the first answer that is not `None` wins; return `None` to decline.")
        else:
            lines.append("**Calling:** 1:N: every plugin is called and the answers that are not `None` are gathered in a list.")
        lines += ["", *(rst(t) for t in text), ""]
        params = signature.parameters
        args = entries(parts.get("Args", []))
        if params:
            lines += ["**Arguments**", "", "| name | type | meaning |", "|---|---|---|"]
            described = dict(args)
            for pname, param in params.items():
                kind = param.annotation if param.annotation is not inspect.Parameter.empty else ""
                lines.append(f"| `{pname}` | `{cell(str(kind))}` | {cell(described.get(pname, 'undocumented'))} |")
            lines.append("")
        if parts.get("Returns"):
            lines += ["**Returns:** " + cell(" ".join(parts["Returns"])), ""]
        for error, why in entries(parts.get("Raises", [])):
            lines.append(f"- **Raises `{error}`:** {cell(why)}")
        if parts.get("Raises"):
            lines.append("")
    lines += ["## Types", "", "Where the types named above are defined:", "", "| type | module |", "|---|---|"]
    lines += [f"| `{t}` | `{m}` |" for t, m in sorted(_imported_types(source).items())]
    return "\n".join(lines)


def _imported_types(source: str) -> dict[str, str]:
    """Name -> module of every ``from X import Name`` under ``if TYPE_CHECKING:`` in ``source``."""
    import ast

    out: dict[str, str] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom) and stmt.module:
                    for alias in stmt.names:
                        out[alias.asname or alias.name] = stmt.module
    return out


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["recipes"]:
        print(recipe_reference())
    elif args[:1] == ["recipe-index"]:
        print(recipe_index())
    elif args[:1] == ["cli"]:
        print(cli_reference())
    elif args[:1] == ["hooks"]:
        print(hooks_reference())
    else:
        print("usage: python -m visiontl.docgen recipes|recipe-index|cli|hooks", file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":
    main()
