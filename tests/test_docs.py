"""Generated references must match the code they describe."""

from conftest import ROOT
from visiontl.docgen import recipe_reference


def test_recipe_reference_is_current():
    text = (ROOT / "docs" / "recipes.md").read_text()
    assert recipe_reference() in text, "docs/recipes.md is stale: regenerate with python -m visiontl.docgen recipes"


def test_recipe_index_is_current():
    from visiontl.docgen import recipe_index

    text = (ROOT / "docs" / "recipes.md").read_text()
    assert recipe_index() in text, "docs/recipes.md's recipe index is stale: regenerate with python -m visiontl.docgen recipe-index"


def test_cli_reference_is_current():
    from visiontl.docgen import cli_reference

    assert (ROOT / "docs" / "cli.md").read_text().strip() == cli_reference().strip(), "docs/cli.md is stale: python -m visiontl.docgen cli > docs/cli.md"
