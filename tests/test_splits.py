"""The split rules (docs/data.md): conflicting keys are refused by the schema, nothing of a
training layout leaks into what eval scores, and stored recipes read back the same splits."""

from __future__ import annotations

from pathlib import Path

import pytest

from visiontl.config.loader import recipe_to_dict, validate_recipe
from visiontl.config.splits import FORMAT_KEYS, without_splits
from visiontl.errors import ConfigError


def _recipe(task: str = "segmentation", **data: object):
    base = {"format": "masks", "root": "d", "images": "images", "masks": "masks"} if task == "segmentation" else {"format": "imagefolder", "root": "d"}
    model = "smp:unet-resnet18" if task == "segmentation" else "timm:resnet18"
    return validate_recipe({"task": task, "data": {**base, **data}, "model": {"id": model}}, "t")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        # The case: val_last carves validation, val_images/val_masks would be ignored.
        ({"val_last": 20, "val_images": "test", "val_masks": "testannot"}, ["val_last", "val_images and val_masks", "--images"]),
        ({"val_split": 0.2, "val_images": "v"}, ["val_split", "val_images"]),
        ({"val_split": 0.2, "val_last": 3}, ["val_split or val_last"]),
        ({"val": "v", "val_last": 3}, ["val names a validation split"]),
        # Two keys for the validation image folder of the masks format that disagree.
        ({"val": "a", "val_images": "b", "val_masks": "bm"}, ["val ('a') and val_images ('b')"]),
        ({"val_last": 3, "test": "t"}, ["test_masks"]),
        ({"val_last": 3, "test_masks": "tm"}, ["test_masks belongs to a test split"]),
        ({"val_images": "v", "val_masks": "vm", "test": "v", "test_masks": "vm"}, ["test ('v') is the val split"]),
        ({"val_last": 3, "test": "./images/", "test_masks": "masks"}, ["is the train split"]),
        ({"val_last": 3, "image_root": "x"}, ["image_root is not read by format 'masks'"]),
    ],
)
def test_conflicting_split_keys_are_refused_with_the_keys_named(data, words):
    with pytest.raises(ConfigError) as err:
        _recipe(**data)
    for word in words:
        assert word in err.value.message, err.value.message


def test_keys_a_format_never_reads_are_refused():
    with pytest.raises(ConfigError, match="masks is not read by format 'imagefolder'"):
        _recipe("classification", masks="m")
    with pytest.raises(ConfigError, match="val_images is not read by format 'yolo'"):
        validate_recipe({"task": "detection", "data": {"format": "yolo", "root": "d", "yaml": "y.yaml", "val_images": "v"},
                         "model": {"id": "torchvision:fasterrcnn"}}, "t")
    # A plugin's own format is its task's business.
    assert validate_recipe({"data": {"format": "mine", "root": "d", "masks": "m"}, "model": {"id": "timm:resnet18"}}, "t").data.masks == "m"
    assert set(FORMAT_KEYS) == {"imagefolder", "csv", "coco", "yolo", "masks"}


def test_a_stored_recipe_reads_back_the_same_splits():
    # val_images fills val (one folder, two names), so the stored recipe, which lists every
    # key, validates again instead of tripping over its own default 'val'.
    recipe = _recipe(val_images="v", val_masks="vm", test="t", test_masks="tm")
    assert recipe.data.val == "v"
    again = validate_recipe(recipe_to_dict(recipe), "stored")
    assert (again.data.val, again.data.val_images, again.data.test) == ("v", "v", "t")
    carved = validate_recipe(recipe_to_dict(_recipe(val_last=5)), "stored")
    assert carved.data.val is None and carved.data.val_last == 5


def test_a_stored_recipe_keeps_the_classes_yaml_folders(shared_data):
    """The yaml's train/val folders win over data.train/val left at their defaults, also when
    a stored recipe lists those defaults explicitly (eval of a coco128 run read root/train)."""
    from visiontl.config.loader import load_recipe
    from visiontl.data.segmentation.scan import resolve_layout

    recipe = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "segment_coco128.yaml")
    root = shared_data / "coco128"
    stored = validate_recipe(recipe_to_dict(recipe), "stored")
    assert resolve_layout(stored.data, root) == resolve_layout(recipe.data, root)
    assert resolve_layout(stored.data, root).val_images == (root / "images" / "val2017").resolve()


def test_without_splits_clears_every_split_key_and_keeps_classes():
    data = recipe_to_dict(_recipe(val_images="v", val_masks="vm", class_names=["bg", "a"], image_size=[32, 48]))["data"]
    cleared = without_splits(data)
    assert all(cleared[k] is None for k in ("val", "val_images", "val_masks", "images", "masks", "test", "val_last", "limit"))
    assert cleared["class_names"] == ["bg", "a"] and cleared["image_size"] == [32, 48]


def test_image_size_takes_a_number_or_height_and_width():
    assert _recipe(val_last=2, image_size=[360, 480]).data.size_hw == (360, 480)
    assert _recipe(val_last=2, image_size="360x480").data.image_size == (360, 480)
    assert _recipe(val_last=2, image_size=64).data.size_hw == (64, 64)
    assert _recipe(val_last=2).data.size_hw is None
    with pytest.raises(ConfigError, match="at least 16"):
        _recipe(val_last=2, image_size=[8, 480])
    with pytest.raises(ConfigError, match="resize"):
        _recipe(val_last=2, resize="squash")


def test_progress_false_means_lines_and_none_means_silence():
    assert validate_recipe({"data": {"root": "d"}, "model": {"id": "timm:resnet18"}, "train": {"progress": False}}, "t").train.progress == "lines"
    assert validate_recipe({"data": {"root": "d"}, "model": {"id": "timm:resnet18"}, "train": {"progress": True}}, "t").train.progress == "bars"
    assert validate_recipe({"data": {"root": "d"}, "model": {"id": "timm:resnet18"}, "train": {"progress": "none"}}, "t").train.progress == "none"
