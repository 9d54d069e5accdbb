from pathlib import Path

import pytest
import yaml

from visiontl.config.loader import apply_overrides, load_recipe, validate_recipe
from visiontl.config.schema import Recipe
from visiontl.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = {"data": {"root": "x"}, "model": {"id": "timm:resnet18"}}


def test_defaults_fill_every_section():
    recipe = validate_recipe(MINIMAL)
    assert recipe.task == "classification"
    assert recipe.strategy.name == "feature_extraction"
    assert recipe.train.precision == "fp32"


def test_unknown_key_names_the_nearest_valid_key():
    with pytest.raises(ConfigError) as info:
        validate_recipe({**MINIMAL, "optimizer": {"lrr": 0.1}})
    text = str(info.value)
    assert "optimizer.lrr: unknown key; did you mean 'lr'?" in text


def test_unknown_top_level_section():
    with pytest.raises(ConfigError) as info:
        validate_recipe({**MINIMAL, "trian": {"epochs": 1}})
    assert "did you mean 'train'" in str(info.value)


def test_wrong_type_gives_the_field_path():
    with pytest.raises(ConfigError) as info:
        validate_recipe({**MINIMAL, "train": {"epochs": "ten"}})
    assert "train.epochs" in str(info.value)
    assert "'ten'" in str(info.value)


def test_bad_model_id_is_reported_at_its_path():
    with pytest.raises(ConfigError) as info:
        validate_recipe({"data": {"root": "x"}, "model": {"id": "resnet18"}})
    assert "model.id" in str(info.value) and "family:name" in str(info.value)


def test_custom_strategy_needs_phases():
    with pytest.raises(ConfigError) as info:
        validate_recipe({**MINIMAL, "strategy": {"name": "custom"}})
    assert "phases" in str(info.value)


def test_overrides_parse_yaml_values_and_nested_paths():
    data = apply_overrides(MINIMAL, ["train.epochs=3", "optimizer.lr=[1e-4, 1e-2]", "strategy.name=progressive", "train.device=cpu"])
    recipe = validate_recipe(data)
    assert recipe.train.epochs == 3
    assert recipe.optimizer.lr == (1e-4, 1e-2)
    assert recipe.strategy.name == "progressive"
    assert MINIMAL.get("train") is None  # the input is not mutated


def test_override_list_index():
    base = {**MINIMAL, "strategy": {"name": "custom", "phases": [{"name": "a", "train": "head", "epochs": 1}]}}
    recipe = validate_recipe(apply_overrides(base, ["strategy.phases.0.epochs=4"]))
    assert recipe.strategy.phases[0].epochs == 4


def test_override_typo_is_caught_by_validation():
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        validate_recipe(apply_overrides(MINIMAL, ["train.epoch=3"]))


def test_malformed_override():
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_overrides(MINIMAL, ["train.epochs"])


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("data:\n  root: [unclosed\nmodel: {id: timm:x}\n")
    with pytest.raises(ConfigError, match="line"):
        load_recipe(path)


def test_run_name_defaults_to_the_file_stem(tmp_path):
    path = tmp_path / "my_recipe.yaml"
    path.write_text(yaml.safe_dump(MINIMAL))
    assert load_recipe(path).output.name == "my_recipe"


def test_json_schema_describes_every_section():
    schema = Recipe.model_json_schema()
    assert {"data", "model", "strategy", "optimizer", "scheduler", "augmentation", "train", "eval", "output"} <= set(schema["properties"])


@pytest.mark.parametrize("path", sorted((ROOT / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_validates(path):
    load_recipe(path)


def test_yaml_on_off_reads_as_the_words():
    data = apply_overrides(MINIMAL, ["train.cache_features=on"])
    assert data["train"]["cache_features"] is True  # what YAML makes of it
    assert validate_recipe(data).train.cache_features == "on"
    assert validate_recipe(apply_overrides(MINIMAL, ["train.cache_features=off"])).train.cache_features == "off"


def test_carving_validation_replaces_the_default_val_split():
    recipe = validate_recipe({"data": {"root": "x", "val_last": 50}, "model": {"id": "timm:resnet18"}})
    assert recipe.data.val is None and recipe.data.val_last == 50
    with pytest.raises(ConfigError, match="choose one"):
        validate_recipe({"data": {"root": "x", "val": "val", "val_split": 0.2}, "model": {"id": "timm:resnet18"}})
    with pytest.raises(ConfigError, match="not both"):
        validate_recipe({"data": {"root": "x", "val_split": 0.2, "val_last": 3}, "model": {"id": "timm:resnet18"}})
