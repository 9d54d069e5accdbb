"""Segmentation data: mask formats, value maps, problems reported, joint augmentation, inference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from visiontl.config.loader import validate_recipe
from visiontl.contracts import Preprocessing
from visiontl.data.segmentation.inference import sliding_logits, window_starts
from visiontl.data.segmentation.masks import MaskDecoder, MaskError, read_mask_values
from visiontl.data.segmentation.transforms import train_transform
from visiontl.errors import ConfigError, DataError
from visiontl.tasks.segmentation import SegmentationTask

TASK = SegmentationTask()


def recipe(root: Path, **data) -> object:
    base = {"format": "masks", "root": str(root), "images": "images", "masks": "masks", "val_last": 1}
    return validate_recipe({"task": "segmentation", "data": {**base, **data}, "model": {"id": "smp:unet-resnet18"}})


def write_pair(root: Path, stem: str, labels: np.ndarray, *, mode: str = "L", ext: str = ".png", colors=None, palette=None) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    h, w = labels.shape
    rng = np.random.default_rng(abs(hash(stem)) % 2**32)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / "images" / f"{stem}{ext}")
    if mode == "RGB":
        rgb = np.asarray(colors, dtype=np.uint8)[labels]
        Image.fromarray(rgb, "RGB").save(root / "masks" / f"{stem}.png")
    elif mode == "P":
        img = Image.fromarray(labels.astype(np.uint8), "P")
        img.putpalette(palette)
        img.save(root / "masks" / f"{stem}.png")
    else:
        Image.fromarray(labels.astype(np.uint8), "L").save(root / "masks" / f"{stem}.png")


def blocks(h=12, w=16, classes=(0, 1, 2)) -> np.ndarray:
    labels = np.zeros((h, w), dtype=np.int64)
    for i, c in enumerate(classes):
        labels[:, i * w // len(classes):] = c
    return labels


# --------------------------------------------------------------------------- formats


def test_class_index_masks_with_any_image_extension(tmp_path):
    for i, ext in enumerate((".png", ".jpg", ".JPEG")):
        write_pair(tmp_path, f"img{i}", blocks(), ext=ext)
    info = TASK.inspect(recipe(tmp_path, class_names=["bg", "a", "b"]), tmp_path)
    assert info.counts == {"train": {"images": 2}, "val": {"images": 1}} and not info.skipped
    assert info.extras["pixels"]["train"] == [2 * 12 * 5, 2 * 12 * 5, 2 * 12 * 6]


def test_palette_masks_use_the_index_not_the_colour(tmp_path):
    # Colours chosen so that any colour conversion would give other values than the indices.
    palette = [0, 0, 0, 200, 10, 10, 10, 200, 10] + [0] * (256 * 3 - 9)
    for i in range(2):
        write_pair(tmp_path, f"p{i}", blocks(), mode="P", palette=palette)
    values = read_mask_values(tmp_path / "masks" / "p0.png")
    assert sorted(np.unique(values).tolist()) == [0, 1, 2]
    info = TASK.inspect(recipe(tmp_path, class_names=["bg", "red", "green"]), tmp_path)
    assert not info.skipped and info.extras["pixels"]["train"] == [60, 60, 72]


def test_rgb_colour_masks_with_a_colour_map_and_unknown_colours_reported(tmp_path):
    colors = [(0, 0, 0), (255, 0, 0), (0, 0, 255), (9, 9, 9)]
    write_pair(tmp_path, "a", blocks(), mode="RGB", colors=colors)
    write_pair(tmp_path, "b", blocks(classes=(0, 3, 1)), mode="RGB", colors=colors)  # (9,9,9) is no class
    write_pair(tmp_path, "c", blocks(), mode="RGB", colors=colors)
    info = TASK.inspect(recipe(tmp_path, mask_colors=[[0, 0, 0], [255, 0, 0], [0, 0, 255]], class_names=["bg", "red", "blue"]), tmp_path)
    reason = info.skipped[str(tmp_path / "images" / "b.png")]
    assert "(9, 9, 9)" in reason and "data.mask_colors" in reason
    assert info.counts["train"]["images"] == 1 and info.counts["val"]["images"] == 1
    decoded = info.extras["scan"].decoder.decode(tmp_path / "masks" / "a.png")
    assert np.array_equal(decoded.labels, blocks())


def test_rgb_masks_without_colours_are_refused_unless_gray(tmp_path):
    colors = [(0, 0, 0), (255, 0, 0), (0, 0, 255)]
    write_pair(tmp_path, "a", blocks(), mode="RGB", colors=colors)
    with pytest.raises(MaskError, match="mask_colors"):
        read_mask_values(tmp_path / "masks" / "a.png")
    gray = np.stack([blocks()] * 3, axis=-1).astype(np.uint8)
    Image.fromarray(gray, "RGB").save(tmp_path / "gray.png")
    assert np.array_equal(read_mask_values(tmp_path / "gray.png"), blocks())


# --------------------------------------------------------------------------- value maps


def test_value_map_maps_ids_and_reports_unknown_values_without_mapping_them(tmp_path):
    write_pair(tmp_path, "a", blocks(classes=(0, 7, 20)))
    write_pair(tmp_path, "b", blocks(classes=(0, 7, 99)))  # 99 is in no map
    write_pair(tmp_path, "c", blocks(classes=(255, 7, 20)))  # 255 = ignore
    r = recipe(tmp_path, value_map={0: 255, 7: 0, 20: 1}, class_names=["cat", "dog"])
    info = TASK.inspect(r, tmp_path)
    assert info.class_names == ["cat", "dog"]
    reason = info.skipped[str(tmp_path / "images" / "b.png")]
    assert "99" in reason and "data.value_map" in reason
    decoder = info.extras["scan"].decoder
    assert np.array_equal(decoder.decode(tmp_path / "masks" / "c.png").labels, blocks(classes=(255, 0, 1)))
    assert info.extras["pixels"]["train"] == [12 * 5, 12 * 6]  # 'a' only: its 0s are ignored


def test_a_class_index_out_of_range_is_reported_not_clipped(tmp_path):
    write_pair(tmp_path, "a", blocks(classes=(0, 1, 2)))
    write_pair(tmp_path, "b", blocks(classes=(0, 1, 1)))
    write_pair(tmp_path, "c", blocks(classes=(1, 0, 1)))
    info = TASK.inspect(recipe(tmp_path, class_names=["bg", "fg"]), tmp_path)
    assert "mask values 2 are not in the classes 0..1" in info.skipped[str(tmp_path / "images" / "a.png")]


def test_classes_inferred_from_the_masks_when_nothing_names_them(tmp_path):
    write_pair(tmp_path, "a", blocks(classes=(0, 1, 255)))
    write_pair(tmp_path, "b", blocks(classes=(0, 3, 255)))
    info = TASK.inspect(recipe(tmp_path), tmp_path)
    assert info.class_names == ["class_0", "class_1", "class_2", "class_3"]
    assert info.extras["classes_from"] == "inferred from the mask values"


def test_ignore_index_inside_the_classes_is_a_config_error(tmp_path):
    write_pair(tmp_path, "a", blocks())
    write_pair(tmp_path, "b", blocks())
    with pytest.raises(ConfigError, match="ignore_index 1 is the index of class 'a'"):
        TASK.inspect(recipe(tmp_path, class_names=["bg", "a", "b"], ignore_index=1), tmp_path)


def test_coco128_panoptic_ids_train_through_the_classes_yaml(shared_data, tmp_path):
    r = validate_recipe({
        "task": "segmentation",
        "data": {"format": "masks", "root": str(shared_data / "coco128"), "yaml": "semantic/classes.yaml", "limit": 12},
        "model": {"id": "smp:unet-resnet18"},
    })
    info = TASK.inspect(r, shared_data)
    assert len(info.class_names) == 129 and info.class_names[:2] == ["person", "bicycle"]
    assert info.extras["value_map"]["0"] == 255 and info.extras["value_map"]["1"] == 0
    assert info.extras["value_map"]["200"] == 128
    # 28 train and 28 val images have no semantic mask: reported by name, not silently dropped.
    missing = [p for p, why in info.skipped.items() if "no mask named" in why]
    assert len([p for p in missing if "train2017" in p]) == 28 and len(missing) == 56
    decoder = info.extras["scan"].decoder
    pair = info.extras["scan"].train[0]
    stored = read_mask_values(pair.mask)
    labels = decoder.decode(pair.mask).labels
    assert np.array_equal(labels == 255, stored == 0)  # unlabeled -> ignore, nothing else
    # The same masks with a class missing from the map: reported, never mapped to a class.
    partial = {k: v for k, v in {int(k): v for k, v in info.extras["value_map"].items()}.items() if k != int(stored[stored > 0][0])}
    r2 = r.model_copy(update={"data": r.data.model_copy(update={"value_map": partial, "yaml": "semantic/classes.yaml"})})
    info2 = TASK.inspect(r2, shared_data)
    assert any("not in data.value_map" in why for why in info2.skipped.values())


# --------------------------------------------------------------------------- problems


def test_missing_masks_orphans_size_mismatch_and_unreadable_files_are_reported(tmp_path):
    for stem in ("a", "x", "y", "z"):
        write_pair(tmp_path, stem, blocks())
    (tmp_path / "masks" / "a.png").unlink()  # image without mask
    Image.fromarray(blocks(10, 10).astype(np.uint8)).save(tmp_path / "masks" / "orphan.png")  # mask without image
    write_pair(tmp_path, "b", blocks())
    Image.fromarray(blocks(8, 8).astype(np.uint8)).save(tmp_path / "masks" / "b.png")  # size mismatch
    (tmp_path / "images" / "c.png").write_bytes(b"not an image")
    Image.fromarray(blocks().astype(np.uint8)).save(tmp_path / "masks" / "c.png")
    (tmp_path / "images" / "notes.txt").write_text("x")
    info = TASK.inspect(recipe(tmp_path, class_names=["bg", "a", "b"]), tmp_path)
    reasons = {Path(p).name: why for p, why in info.skipped.items()}
    assert "no mask named 'a.*'" in reasons["a.png"]
    assert "mask without an image" in reasons["orphan.png"]
    assert reasons["b.png"] == "mask b.png is 8x8 but the image is 16x12"
    assert "not a recognised image format" in reasons["c.png"]
    assert "not an image file" in reasons["notes.txt"]
    assert len(info.skipped) == 5 and info.total("train") + info.total("val") == 3


def test_nothing_usable_left_stops_with_the_reasons(tmp_path):
    write_pair(tmp_path, "a", blocks(classes=(0, 5, 6)))
    write_pair(tmp_path, "b", blocks(classes=(0, 5, 6)))
    with pytest.raises(DataError, match="No usable train image/mask pairs.*mask values 5, 6"):
        TASK.inspect(recipe(tmp_path, class_names=["bg", "fg"]), tmp_path)


def test_missing_mask_folder_and_validation_are_config_errors(tmp_path):
    write_pair(tmp_path, "a", blocks())
    with pytest.raises(ConfigError, match="data.masks"):
        TASK.inspect(validate_recipe({"task": "segmentation", "data": {"format": "masks", "root": str(tmp_path), "images": "images"}, "model": {"id": "smp:unet-resnet18"}}), tmp_path)
    with pytest.raises(ConfigError, match="val_masks"):
        TASK.inspect(validate_recipe({"task": "segmentation", "data": {"format": "masks", "root": str(tmp_path), "images": "images", "masks": "masks", "val": "images"}, "model": {"id": "smp:unet-resnet18"}}), tmp_path)
    with pytest.raises(ConfigError, match="Did you mean 'masks'"):
        TASK.inspect(recipe(tmp_path, format="mask"), tmp_path)


# --------------------------------------------------------------------------- augmentation


@pytest.mark.parametrize("preset", ["light", "standard", "strong"])
def test_geometric_augmentation_keeps_image_and_mask_aligned(preset):
    # The label is a function of the image: red blocks are class 1, blue blocks class 2.
    rng = np.random.default_rng(0)
    labels = np.zeros((96, 128), dtype=np.int64)
    for _ in range(12):
        y, x = rng.integers(0, 80), rng.integers(0, 112)
        labels[y:y + 16, x:x + 16] = rng.integers(1, 3)
    image = np.zeros((96, 128, 3), dtype=np.uint8)
    image[labels == 1] = (255, 0, 0)
    image[labels == 2] = (0, 0, 255)
    pre = Preprocessing(input_size=(64, 64), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    transform = train_transform(pre, preset, ignore_index=255)
    torch.manual_seed(0)
    agree = []
    for _ in range(8):
        x, mask = transform(Image.fromarray(image), labels)
        assert x.shape == (3, 64, 64) and x.dtype == torch.float32 and mask.shape == (64, 64) and mask.dtype == torch.int64
        assert set(mask.unique().tolist()) <= {0, 1, 2, 255}
        # Photometric changes (jitter, grayscale) keep "which channel dominates" only roughly:
        # compare where the image is clearly coloured or clearly black.
        red, blue = x[0], x[2]
        coloured = (red - blue).abs() > 0.3
        expected = torch.where(red > blue, 1, 2)
        keep = (mask != 255) & (coloured | (x.max(0).values < 0.05))
        predicted_from_image = torch.where(coloured, expected, torch.zeros_like(expected))
        agree.append(((predicted_from_image == mask) | ~keep).float().mean().item())
    assert min(agree) > 0.9, agree


def test_rotation_fills_the_mask_with_ignore_index():
    pre = Preprocessing(input_size=(48, 48), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    transform = train_transform(pre, "strong", ignore_index=255)
    torch.manual_seed(1)
    seen = set()
    for _ in range(20):
        _, mask = transform(Image.new("RGB", (48, 48), (10, 200, 10)), np.ones((48, 48), dtype=np.int64))
        seen |= set(mask.unique().tolist())
    assert seen == {1, 255}


# --------------------------------------------------------------------------- inference


def test_window_starts_cover_the_image_with_the_requested_overlap():
    assert window_starts(100, 40, 0.25) == [0, 30, 60]
    assert window_starts(30, 40, 0.25) == [0]
    starts = window_starts(517, 64, 0.5)
    assert starts[0] == 0 and starts[-1] == 517 - 64 and all(b - a <= 32 for a, b in zip(starts, starts[1:], strict=False))


class Recorder(torch.nn.Module):
    """Logits that encode the absolute position (so averaging over windows can be checked)."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[tuple[int, ...]] = []
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        self.sizes.append(tuple(x.shape))
        return torch.cat([x[:, :1], -x[:, :1]], dim=1) * self.scale


def test_sliding_and_resize_inference_give_logits_at_the_image_size():
    model = Recorder()
    image = torch.arange(70 * 90, dtype=torch.float32).reshape(1, 70, 90).repeat(3, 1, 1)
    out = sliding_logits(model, image, (32, 32), overlap=0.25)
    assert out.shape == (2, 70, 90)
    assert torch.allclose(out[0], image[0])  # every window saw the true pixels: averaging is exact
    assert {s[-2:] for s in model.sizes} == {(32, 32)}
    small = torch.rand(3, 20, 24)
    assert sliding_logits(model, small, (32, 32)).shape == (2, 20, 24)  # padded, then cropped
    from visiontl.data.segmentation.inference import resize_logits

    assert resize_logits(model, torch.rand(3, 32, 32), (70, 90)).shape == (2, 70, 90)


def test_predict_picks_sliding_windows_for_large_images_and_draws_an_overlay():
    model = Recorder().eval()
    pre = Preprocessing(input_size=(32, 32))
    big = Image.new("RGB", (200, 90), (250, 250, 250))
    result = TASK.predict(model, big, pre, ["fg", "background"])
    assert result.details["inference"] == "sliding" and result.mask.shape == (90, 200)
    assert result.labels == [("fg", 1.0)]
    small = TASK.predict(model, Image.new("RGB", (40, 30), (0, 0, 0)), pre, ["fg", "background"], inference="resize")
    assert small.details["inference"] == "resize" and small.labels == [("background", 1.0)]
    drawn = TASK.draw(big, result, ["fg", "background"])
    assert drawn.size == big.size and np.asarray(drawn)[50, 100].tolist() != [250, 250, 250]


def test_mask_decoder_identity_and_ignore():
    decoder = MaskDecoder(3, 255)
    decoded = decoder.decode_values(np.array([[0, 1, 2, 255, 7]]))
    assert decoded.labels.tolist() == [[0, 1, 2, 255, 255]] and decoded.unknown == [7]


def test_datasets_pickle_for_spawned_data_loader_workers(tmp_path):
    import pickle

    for stem in ("a", "b", "c"):
        write_pair(tmp_path, stem, blocks())
    r = recipe(tmp_path, class_names=["bg", "a", "b"], image_size=32)
    info = TASK.inspect(r, tmp_path)
    for dataset in TASK.datasets(r, info, Preprocessing(), tmp_path):
        clone = pickle.loads(pickle.dumps(dataset))
        item = clone[0]
        assert item.image.shape[0] == 3 and item.mask.dtype == torch.int64
