"""docs/hooks.md is generated from visiontl/hookspecs.py and must not drift from it."""

from __future__ import annotations

import importlib.util
import inspect
import re
import types

import pytest

from conftest import ROOT
from visiontl import docgen, hookspecs

HOOKS_MD = ROOT / "docs" / "hooks.md"
GUIDE_MD = ROOT / "docs" / "plugin_guide.md"
REGENERATE = "regenerate with: python -m visiontl.docgen hooks > docs/hooks.md"


def _spec_names(module: types.ModuleType) -> list[str]:
    return [name for name, fn in vars(module).items() if callable(fn) and hasattr(fn, f"{hookspecs.PROJECT}_spec")]


def _documented(text: str) -> set[str]:
    return set(re.findall(r"^## (visiontl_\w+)$", text, re.M))


def test_every_hook_has_a_section_in_the_reference():
    missing = sorted(set(_spec_names(hookspecs)) - _documented(HOOKS_MD.read_text(encoding="utf-8")))
    assert not missing, f"docs/hooks.md misses {missing}: {REGENERATE}"


def test_the_reference_matches_the_specifications():
    assert HOOKS_MD.read_text(encoding="utf-8") == docgen.hooks_reference() + "\n", f"docs/hooks.md is stale: {REGENERATE}"


def test_the_docgen_subcommand_prints_the_reference(capsys):
    docgen.main(["hooks"])
    assert capsys.readouterr().out == HOOKS_MD.read_text(encoding="utf-8")


EXTRA_HOOK = '''

@hookspec(firstresult=True)
def visiontl_compress(model: nn.Module, fmt: str) -> Path | None:
    """Compress a model in a family's own format.

    firstresult, keyed by the model's family.

    Args:
        model: the trained model.
        fmt: the format asked for.

    Returns:
        The exported file.
    """
'''


def test_a_new_hook_makes_the_reference_stale(tmp_path):
    # A copy of the spec module with one more hook, as a contributor would add it.
    path = tmp_path / "hookspecs_plus.py"
    path.write_text(inspect.getsource(hookspecs) + EXTRA_HOOK, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("hookspecs_plus", path)
    plus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plus)
    text = docgen.hooks_reference(plus)
    assert "## visiontl_compress" in text and "| `fmt` | `str` | the format asked for. |" in text
    assert "visiontl_compress" not in _documented(HOOKS_MD.read_text(encoding="utf-8"))
    assert text + "\n" != HOOKS_MD.read_text(encoding="utf-8")  # so the drift test above fails


@pytest.mark.parametrize("name", _spec_names(hookspecs))
def test_each_specification_documents_its_contract(name):
    fn = getattr(hookspecs, name)
    doc = inspect.getdoc(fn) or ""
    firstresult = getattr(fn, f"{hookspecs.PROJECT}_spec")["firstresult"]
    # The design rule: every docstring says how the hook is called.
    assert ("firstresult" in doc) == firstresult, f"{name}: the docstring must say 'firstresult' exactly when the spec is"
    if not firstresult:
        assert "1:N" in doc, f"{name}: a 1:N hook's docstring must say so"
    args = re.findall(r"^    (\w+):", doc.split("Args:", 1)[1], re.M) if "Args:" in doc else []
    params = list(inspect.signature(fn).parameters)
    assert [a for a in args if a in params] == params, f"{name}: Args must document {params} in order, found {args}"
    if not name.startswith("visiontl_on_"):
        assert "Returns:" in doc, f"{name}: the docstring must say what the hook returns"
    assert "undocumented" not in docgen.hooks_reference().split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]


def test_the_plugin_guide_covers_every_hook():
    guide = GUIDE_MD.read_text(encoding="utf-8")
    missing = [name for name in _spec_names(hookspecs) if f"`{name}" not in guide]
    assert not missing, f"docs/plugin_guide.md does not mention {missing}"
    assert "(hooks.md)" in guide, "the guide must link the generated hooks reference"
