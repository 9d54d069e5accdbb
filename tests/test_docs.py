"""Generated references must match the code they describe."""

from conftest import ROOT
from visiontl.docgen import recipe_reference


def test_recipe_reference_is_current():
    text = (ROOT / "docs" / "recipes.md").read_text()
    assert recipe_reference() in text, "docs/recipes.md is stale: regenerate with python -m visiontl.docgen recipes"
