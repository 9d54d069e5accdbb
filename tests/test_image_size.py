"""Non-square inputs (``data.image_size: [H, W]``) and ``data.resize``: the geometry, a
segmenter and a detector that train, predict and export at H x W, and the small things seen
with them (area fractions said as such, overlay colours, per-epoch lines)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from detection_fixtures import make_coco
from PIL import Image

from visiontl import api
from visiontl.cli import cli
from visiontl.config.loader import validate_recipe
from visiontl.contracts import Preprocessing

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------- geometry


def test_letterbox_keeps_the_aspect_ratio_and_pads_masks_with_ignore_index():
    from visiontl.data.resize import fit_size
    from visiontl.data.segmentation.transforms import eval_transform, train_transform

    pre = Preprocessing(input_size=(32, 64), crop_pct=1.0)
    image = Image.fromarray(np.full((36, 48, 3), 200, dtype=np.uint8))  # 4:3, the street scenes' shape
    labels = np.ones((36, 48), dtype=np.int64)
    x, mask = train_transform(pre, "none", ignore_index=255, mode="letterbox")(image, labels)
    assert tuple(x.shape) == (3, 32, 64) and tuple(mask.shape) == (32, 64)
    h, w = fit_size(36, 48, (32, 64))
    assert (h, w) == (32, 43)  # 36x48 scaled by 32/36: aspect ratio kept
    assert (mask[:, :w] == 1).all() and (mask[:, w:] == 255).all()  # padding is ignored, at the right
    assert torch.allclose(x[:, :, w:], torch.zeros(3, 32, 64 - w), atol=0.03)  # the mean colour: normalised 0
    stretched, _ = train_transform(pre, "none", mode="stretch")(image, labels)
    assert tuple(stretched.shape) == (3, 32, 64)
    evaluated, kept = eval_transform(pre, mode="letterbox")(image, labels)
    assert tuple(evaluated.shape) == (3, 32, 64) and tuple(kept.shape) == (36, 48)  # metrics count the mask's own pixels


def test_letterboxed_logits_come_back_to_the_image_without_the_padding():
    from visiontl.data.segmentation.inference import back_to_image

    logits = torch.zeros(2, 32, 64)
    logits[1, :, :43] = 1.0  # class 1 on the content, class 0 on the padding
    back = back_to_image(logits, (36, 48), "letterbox")
    assert tuple(back.shape) == (2, 36, 48) and bool((back.argmax(0) == 1).all())
    assert not bool((back_to_image(logits, (36, 48), "stretch").argmax(0) == 1).all())


@pytest.mark.parametrize("mode", ["auto", "stretch", "letterbox"])
def test_classification_transforms_give_height_by_width(mode):
    from visiontl.data.transforms import eval_transform, train_transform

    pre = Preprocessing(input_size=(32, 48))
    image = Image.fromarray(np.zeros((50, 40, 3), dtype=np.uint8))
    assert tuple(eval_transform(pre, mode)(image).shape) == (3, 32, 48)
    assert tuple(train_transform(pre, "standard", mode)(image).shape) == (3, 32, 48)


@pytest.mark.parametrize(("mode", "expected"), [("auto", (48, 72)), ("letterbox", (48, 80)), ("stretch", (48, 80))])
def test_detection_sizes_move_boxes_with_the_image(mode, expected):
    from torchvision import tv_tensors

    from visiontl.data.detection.transforms import detection_transform

    sample = {
        "image": tv_tensors.Image(torch.zeros(3, 64, 96, dtype=torch.uint8)),
        "boxes": tv_tensors.BoundingBoxes(torch.tensor([[48.0, 32.0, 96.0, 64.0]]), format="XYXY", canvas_size=(64, 96)),
        "labels": torch.tensor([0]),
        "iscrowd": torch.tensor([0]),
    }
    out = detection_transform("none", [48, 80], train=False, mode=mode)(sample)
    assert tuple(out["image"].shape[-2:]) == expected
    sx, sy = (80 / 96, 48 / 64) if mode == "stretch" else (0.75, 0.75)
    assert out["boxes"].tolist()[0] == pytest.approx([48 * sx, 32 * sy, 96 * sx, 64 * sy])


# --------------------------------------------------------------------------- a segmenter at H x W


def _street(root: Path, split: str, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for i in range(n):
        labels = np.zeros((36, 48), dtype=np.uint8)
        y, x = rng.integers(0, 18), rng.integers(0, 24)
        labels[y:y + 18, x:x + 24] = 1
        image = np.where(labels[..., None] == 1, [220, 40, 40], [30, 30, 200]).astype(np.uint8)
        for d in ("images", "masks"):
            (root / split / d).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / split / "images" / f"{i}.png")
        Image.fromarray(labels).save(root / split / "masks" / f"{i}.png")


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    from visiontl.plugin_manager import set_plugins

    set_plugins(None)
    root = tmp_path_factory.mktemp("street")
    for split, n, seed in (("train", 6, 0), ("val", 3, 1), ("test", 3, 2)):
        _street(root, split, n, seed)
    recipe = validate_recipe({
        "task": "segmentation",
        "data": {"format": "masks", "root": str(root), "images": "train/images", "masks": "train/masks",
                 "val_images": "val/images", "val_masks": "val/masks", "test": "test/images", "test_masks": "test/masks",
                 "class_names": ["background", "car"], "image_size": [32, 64], "resize": "letterbox"},
        "model": {"id": "smp:unet-resnet18", "options": {"decoder_channels": [16, 16, 8, 8, 8]}},
        "strategy": {"name": "full"}, "optimizer": {"lr": 0.01}, "augmentation": {"preset": "light"},
        "train": {"epochs": 1, "batch_size": 3, "progress": False, "threads": 1}, "output": {"dir": str(root / "runs"), "plots": False},
    }, "t")
    return api.run(recipe), root


def test_a_segmenter_trains_at_height_by_width_and_keeps_it(segmenter):
    outcome, _ = segmenter
    ckpt = torch.load(outcome.run_dir / "checkpoints" / "best.pt", weights_only=False)
    assert tuple(ckpt["preprocessing"]["input_size"]) == (32, 64)
    assert api.load_trained(outcome.run_dir).preprocessing.input_size == (32, 64)
    stored = (outcome.run_dir / "recipe.yaml").read_text()
    assert "image_size:\n  - 32\n  - 64" in stored or "image_size: [32, 64]" in stored
    assert outcome.summary["test"]["num_images"] == 3


def test_segmentation_predict_says_area_fractions_are_areas(segmenter, tmp_path):
    outcome, root = segmenter
    image = root / "test" / "images" / "0.png"
    result = CliRunner().invoke(cli, ["predict", str(outcome.run_dir), str(image), "--out", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "area (share of pixels): " in result.output and "%" in result.output
    prediction = api.predict(outcome.run_dir, [image], out_dir=tmp_path)[0]
    assert prediction.score == "area" and prediction.details["size"] == [36, 48]
    assert sum(share for _, share in prediction.top) == pytest.approx(1.0)
    assert Image.open(prediction.overlay).size == (48, 36)


def test_a_height_by_width_segmenter_exports_to_onnx(segmenter):
    pytest.importorskip("onnxruntime")
    outcome, _ = segmenter
    result = CliRunner().invoke(cli, ["export", str(outcome.run_dir), "--format", "onnx"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "verification: passed" in result.output
    manifest = json.loads(next((outcome.run_dir / "exports").glob("*.export.json")).read_text())
    assert manifest["preprocessing"]["input_size"] == [32, 64]


# --------------------------------------------------------------------------- a detector at H x W


def test_a_detector_trains_predicts_and_exports_at_height_by_width(tmp_path):
    from test_detection_task import SQUEEZE

    make_coco(tmp_path / "ds", n=6)
    options = {k: v for k, v in SQUEEZE.items() if k not in ("min_size", "max_size")}  # from data.image_size
    recipe = validate_recipe({
        "task": "detection",
        "data": {"format": "coco", "root": str(tmp_path / "ds"), "train": "annotations.json", "images": "images", "val": None, "val_last": 2,
                 "image_size": [48, 80], "resize": "letterbox"},
        "model": {"id": "torchvision:fasterrcnn", "options": options},
        "strategy": {"name": "feature_extraction"}, "optimizer": {"name": "sgd", "lr": 0.01}, "augmentation": {"preset": "light"},
        "train": {"epochs": 1, "batch_size": 2, "progress": False}, "output": {"dir": str(tmp_path / "runs"), "name": "t"},
    }, "t")
    run = api.run(recipe, data_root=tmp_path).run_dir
    ckpt = torch.load(run / "checkpoints" / "best.pt", weights_only=False)
    assert tuple(ckpt["preprocessing"]["input_size"]) == (48, 80)
    prediction = api.predict(run, [tmp_path / "ds" / "images" / "img_05.png"], score_threshold=0.0)[0]
    assert prediction.score == "score" and prediction.error is None
    boxes = np.asarray(prediction.details["boxes"]).reshape(-1, 4)
    assert (boxes[:, [0, 2]] <= 96).all() and (boxes[:, [1, 3]] <= 64).all()  # back in the 96x64 image's pixels
    pytest.importorskip("onnxruntime")
    result = CliRunner().invoke(cli, ["export", str(run), "--format", "onnx", "--data-root", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0 and "verification: passed" in result.output, result.output


# --------------------------------------------------------------------------- small things


def _lab(rgb: np.ndarray) -> np.ndarray:
    """CIE L*a*b* (D65) of sRGB colours: distances there follow what eyes tell apart."""
    c = rgb.astype(np.float64) / 255
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = c @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


def test_overlay_colours_of_neighbouring_classes_differ_clearly():
    from visiontl.data.segmentation.overlay import palette

    lab = _lab(palette(256))
    adjacent = np.linalg.norm(lab[1:] - lab[:-1], axis=1)
    assert adjacent.min() >= 40, f"classes {adjacent.argmin()} and {adjacent.argmin() + 1} look alike (delta E {adjacent.min():.1f})"
    assert lab[:, 0].min() >= 10  # no near-black tint
    first12 = lab[:12]
    pairs = np.linalg.norm(first12[:, None] - first12[None], axis=2) + np.eye(12) * 1e9
    assert pairs.min() >= 15  # a street scene's 12 classes are all told apart


def test_progress_false_hides_bars_but_keeps_the_epoch_lines(tmp_path, shapes_root, capsys):
    from conftest import tiny_recipe

    for progress, lines in ((False, 1), ("none", 0)):
        recipe = tiny_recipe(shapes_root, tmp_path, train={"epochs": 1, "progress": progress, "threads": 1}, data={"limit": 2},
                             output={"name": f"p{lines}"})
        api.run(validate_recipe(recipe, "t"))
        out = capsys.readouterr().out
        assert out.count("epoch   1/1") == lines, out


def test_ultralytics_refuses_a_stretch_it_cannot_honour():
    from visiontl.errors import ConfigError
    from visiontl_ultralytics.settings import check_recipe

    recipe = validate_recipe({"task": "detection", "data": {"format": "yolo", "root": "d", "yaml": "y.yaml", "image_size": [360, 480], "resize": "stretch"},
                              "model": {"id": "ultralytics:yolov8n"}}, "t")
    with pytest.raises(ConfigError, match="data.resize: stretch"):
        check_recipe(recipe, "cpu")
    check_recipe(recipe.model_copy(update={"data": recipe.data.model_copy(update={"resize": "letterbox"})}), "cpu")
