"""Reading real-world image files and dataset layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visiontl.config.loader import validate_recipe
from visiontl.contracts import Preprocessing
from visiontl.data.classification import scan_csv
from visiontl.data.images import UnreadableImage, load_rgb
from visiontl.data.transforms import auto_preset, eval_transform, train_transform
from visiontl.errors import ConfigError, DataError
from visiontl.tasks.classification import ClassificationTask


def _save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


def test_every_mode_becomes_rgb(tmp_path):
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8))
    files = {
        "palette.gif": _save(rgb.convert("P"), tmp_path / "palette.gif"),
        "gray.png": _save(rgb.convert("L"), tmp_path / "gray.png"),
        "rgba.png": _save(rgb.convert("RGBA"), tmp_path / "rgba.png"),
        "cmyk.jpg": _save(rgb.convert("CMYK"), tmp_path / "cmyk.jpg"),
        "la.png": _save(rgb.convert("LA"), tmp_path / "la.png"),
    }
    for name, path in files.items():
        img = load_rgb(path)
        assert img.mode == "RGB" and img.size == (8, 8), name


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    arr = np.full((4, 4), 65535, dtype=np.uint16)
    arr[0, 0] = 0
    arr[1, 1] = 32896  # mid grey
    path = tmp_path / "deep.png"
    Image.fromarray(arr).save(path)
    out = np.asarray(load_rgb(path))
    assert out[2, 2, 0] == 255 and out[0, 0, 0] == 0
    assert 120 <= out[1, 1, 0] <= 135  # PIL's own conversion would clip this to 255


def test_transparent_palette_gif_keeps_its_colours(tmp_path):
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    img.info["transparency"] = 0
    path = _save(img, tmp_path / "t.gif", transparency=0)
    assert load_rgb(path).getpixel((1, 1)) == (200, 30, 30)


def test_unreadable_files(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"nope")
    with pytest.raises(UnreadableImage, match="not a recognised image"):
        load_rgb(tmp_path / "x.jpg")
    with pytest.raises(UnreadableImage, match="not found"):
        load_rgb(tmp_path / "missing.png")


def test_csv_dataset_with_header_and_bad_rows(tmp_path, shapes_root):
    rows = ["image,class"]
    for p in sorted((shapes_root / "train").rglob("*.png"))[:9]:
        rows.append(f"{p.relative_to(shapes_root)},{p.parent.name}")
    rows += ["train/circle/missing.png,circle", ",square"]
    csv_path = shapes_root.parent / "labels.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    names, samples = scan_csv(csv_path, shapes_root, None)
    assert names == ["circle", "square"] or set(names) <= {"circle", "square", "triangle"}
    assert len(samples.samples) == 9
    assert any("missing.png" in k for k in samples.skipped) and any(k.endswith(":12") for k in samples.skipped)


def test_csv_without_header_is_a_clear_error(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("a.png,cat\n")
    with pytest.raises(DataError, match="header"):
        scan_csv(path, None, None)


def test_val_split_is_stratified_and_deterministic(shapes_root, tmp_path):
    recipe = validate_recipe({"data": {"root": str(shapes_root), "val_split": 0.25}, "model": {"id": "timm:resnet10t"}})
    task = ClassificationTask()
    a = task.inspect(recipe, tmp_path)
    b = task.inspect(recipe, tmp_path)
    assert a.counts["val"] == {"circle": 3, "square": 3, "triangle": 3}
    assert [s.path for s in a.extras["val_samples"]] == [s.path for s in b.extras["val_samples"]]
    train_paths = {s.path for s in a.extras["train_samples"]}
    assert not train_paths & {s.path for s in a.extras["val_samples"]}


def test_missing_validation_set_is_explained(shapes_root, tmp_path):
    recipe = validate_recipe({"data": {"root": str(shapes_root), "val": None}, "model": {"id": "timm:resnet10t"}})
    with pytest.raises(ConfigError, match="val_split"):
        ClassificationTask().inspect(recipe, tmp_path)


def test_missing_dataset_names_the_data_root(tmp_path):
    recipe = validate_recipe({"data": {"root": "nowhere"}, "model": {"id": "timm:resnet10t"}})
    with pytest.raises(DataError, match="VISIONTL_DATA_DIR"):
        ClassificationTask().inspect(recipe, tmp_path)


def test_unknown_format_suggests(tmp_path):
    recipe = validate_recipe({"data": {"root": "x", "format": "imagefoldr"}, "model": {"id": "timm:resnet10t"}})
    with pytest.raises(ConfigError, match="Did you mean 'imagefolder'"):
        ClassificationTask().inspect(recipe, tmp_path)


def test_limit_per_class(shapes_root, tmp_path):
    recipe = validate_recipe({"data": {"root": str(shapes_root), "limit": 2}, "model": {"id": "timm:resnet10t"}})
    info = ClassificationTask().inspect(recipe, tmp_path)
    assert info.counts == {"train": {"circle": 2, "square": 2, "triangle": 2}, "val": {"circle": 2, "square": 2, "triangle": 2}}


def test_auto_preset_and_transforms():
    assert auto_preset(100) == "strong" and auto_preset(1000) == "standard" and auto_preset(10000) == "light"
    pre = Preprocessing((32, 32), crop_pct=0.875)
    img = Image.new("RGB", (50, 40), (10, 200, 30))
    x = eval_transform(pre)(img)
    assert tuple(x.shape) == (3, 32, 32)
    for preset in ("none", "light", "standard", "strong"):
        assert tuple(train_transform(pre, preset)(img).shape) == (3, 32, 32)
