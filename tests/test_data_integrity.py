"""Data integrity: no phantom classes, no silent label spellings or duplicate rows, and honest
counts (a file reported as skipped is never also counted as used; a clipped box is kept and
reported as clipped, not as skipped). Tiny crafted folders and CSVs only."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visiontl.config.loader import validate_recipe
from visiontl.config.schema import DataSection
from visiontl.data.classification import scan_csv, scan_imagefolder
from visiontl.data.detection import records as R
from visiontl.data.detection.coco import read_coco
from visiontl.data.detection.scan import scan_detection
from visiontl.data.images import probe_image
from visiontl.data.integrity import without_files
from visiontl.errors import DataError
from visiontl.tasks.classification import ClassificationTask
from visiontl.tasks.detection import DetectionTask


@pytest.fixture
def warnings(caplog):
    """The ``visiontl`` logger's warnings (the CLI may have stopped its propagation)."""
    logger = logging.getLogger("visiontl")
    attach = not logger.propagate
    if attach:
        logger.addHandler(caplog.handler)
    caplog.set_level(logging.WARNING, logger="visiontl")
    yield caplog
    if attach:
        logger.removeHandler(caplog.handler)


def _text(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name == "visiontl")


def _png(path: Path, size: tuple[int, int] = (8, 8), value: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def _folder(root: Path, layout: dict[str, int]) -> Path:
    """``root/<class>/<i>.png`` with ``layout[class]`` images each (0: an empty folder)."""
    for name, n in layout.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            _png(root / name / f"{i}.png", value=i)
    return root


def _csv(path: Path, rows: list[str], header: str = "path,label") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


# --------------------------------------------------------------------------- phantom classes


def test_junk_and_empty_folders_are_not_classes(tmp_path, warnings):
    train = _folder(tmp_path / "train", {"ants": 2, "bees": 2, "empty": 0, "__MACOSX": 1, ".ipynb_checkpoints": 1})
    _png(train / "ants" / ".ipynb_checkpoints" / "0-checkpoint.png")  # a copy inside a class folder
    (train / "broken").mkdir()
    (train / "broken" / "x.png").write_bytes(b"not a png")
    names, found = scan_imagefolder(train)
    assert names == ["ants", "bees"]
    assert len(found.samples) == 4 and not any(".ipynb_checkpoints" in str(s.path) for s in found.samples)
    text = _text(warnings)
    assert "__MACOSX" in text and ".ipynb_checkpoints" in text and "ants/.ipynb_checkpoints" in text and "not classes" in text
    assert "'empty' (empty)" in text and "'broken' (1 file(s), none usable)" in text
    assert str(train / "broken" / "x.png") in found.skipped  # its bad file is still reported


def test_folder_of_junk_only_is_a_clear_error(tmp_path):
    train = _folder(tmp_path / "train", {"__MACOSX": 1, "empty": 0})
    with pytest.raises(DataError, match="No folder in .* holds a usable image"):
        scan_imagefolder(train)


def test_classes_in_one_split_only_are_named_with_what_happens(tmp_path, warnings):
    _folder(tmp_path / "train", {"ants": 2, "bees": 2})
    _folder(tmp_path / "val", {"ants": 2, "wasps": 3})
    recipe = validate_recipe({"data": {"root": str(tmp_path)}, "model": {"id": "timm:resnet10t"}})
    info = ClassificationTask().inspect(recipe, tmp_path)
    assert info.class_names == ["ants", "bees"]
    assert info.counts["val"] == {"ants": 2, "bees": 0}
    assert str(tmp_path / "val" / "wasps") in info.skipped
    text = _text(warnings)
    assert "'wasps' (3 images) are not among the 2 classes" in text and "left out of this split" in text
    assert "class(es) 'bees' have no usable image here" in text and "never scored" in text


def test_class_names_without_a_folder_are_named(tmp_path, warnings):
    train = _folder(tmp_path / "train", {"a": 1, "b": 1})
    names, found = scan_imagefolder(train, ["a", "b", "c"])
    assert names == ["a", "b", "c"] and len(found.samples) == 2
    assert "class(es) 'c' have no usable image here" in _text(warnings)


# --------------------------------------------------------------------------- CSV labels


def _images(root: Path, n: int) -> list[str]:
    return [_png(root / f"{i}.png", value=i).name for i in range(n)]


def test_csv_labels_differing_in_case_are_an_error_naming_spellings_and_rows(tmp_path):
    files = _images(tmp_path, 4)
    path = _csv(tmp_path / "l.csv", [f"{files[0]},cat", f"{files[1]},Cat", f"{files[2]},cat", f"{files[3]},dog"])
    with pytest.raises(DataError) as err:
        scan_csv(path, None, None)
    message = str(err.value)
    assert "'cat' (2 rows: 2, 4)" in message and "'Cat' (1 row: 3)" in message
    assert "differ only in case or surrounding spaces" in message and "Fix:" in message


def test_csv_labels_differing_in_surrounding_spaces_are_an_error(tmp_path):
    files = _images(tmp_path, 3)
    path = _csv(tmp_path / "l.csv", [f"{files[0]},cat", f'{files[1]},"cat "', f"{files[2]},dog"])
    with pytest.raises(DataError, match=r"'cat' \(1 row: 2\) vs 'cat ' \(1 row: 3\)"):
        scan_csv(path, None, None)


def test_consistent_spaces_are_stripped_not_an_error(tmp_path):
    files = _images(tmp_path, 2)
    path = _csv(tmp_path / "l.csv", [f"{files[0]}, cat", f"{files[1]}, dog"])
    names, found = scan_csv(path, None, None)
    assert names == ["cat", "dog"] and len(found.samples) == 2


def test_csv_label_matching_a_class_only_ignoring_case_is_an_error(tmp_path):
    files = _images(tmp_path, 2)
    path = _csv(tmp_path / "val.csv", [f"{files[0]},Cat", f"{files[1]},dog"])
    with pytest.raises(DataError, match=r"match a class only when case is ignored: 'Cat' \(1 row: 2\) vs class 'cat'"):
        scan_csv(path, None, ["cat", "dog"])


def test_identical_duplicate_rows_are_used_once_with_a_counted_warning(tmp_path, warnings):
    files = _images(tmp_path, 3)
    rows = [f"{files[0]},cat", f"{files[1]},dog", f"{files[0]},cat", f"./{files[0]},cat", f"{files[2]},dog"]
    names, found = scan_csv(_csv(tmp_path / "l.csv", rows), None, None)
    assert names == ["cat", "dog"] and len(found.samples) == 3
    assert "2 duplicate row(s)" in _text(warnings) and "rows 2, 4, 5" in _text(warnings)


def test_conflicting_labels_for_one_image_are_an_error_naming_the_file(tmp_path):
    files = _images(tmp_path, 2)
    path = _csv(tmp_path / "l.csv", [f"{files[0]},cat", f"{files[1]},dog", f"{files[0]},dog"])
    with pytest.raises(DataError, match=r"more than one label: '.*0\.png' is 'cat' \(row 2\) and 'dog' \(row 4\)"):
        scan_csv(path, None, None)


def test_csv_labels_that_are_no_class_and_labels_with_no_usable_image(tmp_path, warnings):
    files = _images(tmp_path, 2)
    names, found = scan_csv(_csv(tmp_path / "t.csv", [f"{files[0]},cat", "missing.png,ghost"]), None, None)
    assert names == ["cat"]  # 'ghost' has no usable image: not a class
    assert "'ghost' have no usable image" in _text(warnings)
    names, found = scan_csv(_csv(tmp_path / "v.csv", [f"{files[1]},fox", f"{files[0]},cat"]), None, ["cat", "dog"])
    assert len(found.samples) == 1 and any("label 'fox' is not one of the classes" in r for r in found.skipped.values())
    text = _text(warnings)
    assert "'fox' (1 row(s)) are not among the 2 classes" in text and "class(es) 'dog' have no usable image here" in text


# --------------------------------------------------------------------------- honest counts


def _truncated(path: Path, fmt: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path, fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_truncated_files_are_caught_while_scanning_and_whole_odd_files_pass(tmp_path):
    assert probe_image(_truncated(tmp_path / "t.jpg", "JPEG")) is not None
    assert probe_image(_truncated(tmp_path / "t.png", "PNG")) is not None
    padded = tmp_path / "padded.jpg"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(padded, "JPEG")
    padded.write_bytes(padded.read_bytes() + b"\0" * 2048)  # trailing bytes after the end marker
    assert probe_image(padded) is None


def test_skipped_files_are_not_counted_classification(tmp_path):
    _folder(tmp_path / "train", {"a": 2, "b": 2})
    _folder(tmp_path / "val", {"a": 1, "b": 1})
    _truncated(tmp_path / "train" / "a" / "cut.jpg", "JPEG")
    recipe = validate_recipe({"data": {"root": str(tmp_path)}, "model": {"id": "timm:resnet10t"}})
    info = ClassificationTask().inspect(recipe, tmp_path)
    used = {str(s.path) for s in info.extras["train_samples"] + info.extras["val_samples"]}
    assert str(tmp_path / "train" / "a" / "cut.jpg") in info.skipped
    assert not used & set(info.skipped)
    assert info.counts["train"] == {"a": 2, "b": 2}
    # A file found corrupt only later (while training) leaves the counts too.
    later = {str(tmp_path / "train" / "b" / "0.png"): "corrupt image: found while training"}
    honest = without_files(info, later)
    assert honest.counts["train"] == {"a": 2, "b": 1} and set(later) <= set(honest.skipped)
    assert info.counts["train"] == {"a": 2, "b": 2}  # the original is not mutated


def _coco(root: Path, anns: list[dict], images: list[dict] | None = None) -> Path:
    images = images or [{"id": 1, "file_name": "a.png", "width": 100, "height": 80}, {"id": 2, "file_name": "b.png", "width": 100, "height": 80}]
    for img in images:
        _png(root / img["file_name"], (100, 80))
    path = root / "ann.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "thing"}]}))
    return path


def test_clipped_box_is_kept_and_reported_as_clipped_not_skipped(tmp_path, warnings):
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20]},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [90, 70, 20, 20]},  # partly outside: clipped, kept
        {"id": 3, "image_id": 2, "category_id": 1, "bbox": [95, 10, 20, 20]},  # partly outside: clipped, kept
        {"id": 4, "image_id": 2, "category_id": 1, "bbox": [150, 10, 20, 20]},  # entirely outside: dropped
    ]
    path = _coco(tmp_path / "ds", anns)
    data = read_coco(path)
    assert set(data.problems.entries) == {f"{path}:annotation 4"}
    assert data.problems.kept == {
        f"{path}:annotation 2": "box [90, 70, 110, 90] extends outside the 100x80 image; clipped to [90, 70, 100, 80]",
        f"{path}:annotation 3": "box [95, 10, 115, 30] extends outside the 100x80 image; clipped to [95, 10, 100, 30]",
    }
    assert data.problems.kept_counts() == {R.CLIPPED: 2}
    recipe = validate_recipe({"task": "detection", "data": {"format": "coco", "root": str(tmp_path / "ds"), "train": "ann.json", "val": "ann.json"},
                              "model": {"id": "torchvision:fasterrcnn_mobilenet_v3_large_320_fpn"}})
    info = DetectionTask().inspect(recipe, tmp_path)
    assert not any(k.endswith((":annotation 2", ":annotation 3")) for k in info.skipped)
    assert info.counts["train"] == {"thing": 3}  # the two clipped boxes count: they are used
    assert info.extras["kept"] == {R.CLIPPED: 2}
    assert "2 boxes clipped to the image (kept, not skipped)" in _text(warnings)


def test_clipped_to_nothing_is_dropped_not_also_kept(tmp_path):
    problems = R.LabelProblems()
    assert R.check_box((-10, 5, 0.0, 9), 20, 20, "f:1", problems) is None
    assert not problems.kept and not problems.kinds


def test_yolo_background_images_are_kept_notes_and_corrupt_images_are_not_counted(tmp_path, warnings):
    root = tmp_path / "y"
    for split in ("train", "val"):
        for i in range(2):
            _png(root / "images" / split / f"{i}.png", (40, 40), value=i)
            (root / "labels" / split).mkdir(parents=True, exist_ok=True)
            (root / "labels" / split / f"{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "labels" / "train" / "1.txt").unlink()  # a background image: used, not skipped
    _truncated(root / "images" / "train" / "cut.png", "PNG")
    (root / "labels" / "train" / "cut.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: [thing]\n")
    scan = scan_detection(DataSection(format="yolo", root=str(root), yaml="data.yaml"), tmp_path)
    used = {str(r.path) for r in scan.train + scan.val}
    assert str(root / "images" / "train" / "cut.png") in scan.problems.entries
    assert not used & set(scan.problems.entries)
    assert str(root / "images" / "train" / "1.png") in scan.problems.kept and str(root / "images" / "train" / "1.png") in used
    assert scan.extras["kept"] == {R.BACKGROUND: 1}
    assert "1 images without a label file kept as background images" in _text(warnings)
    info_like = DetectionTask()
    recipe = validate_recipe({"task": "detection", "data": {"format": "yolo", "root": str(root), "yaml": "data.yaml"},
                              "model": {"id": "torchvision:fasterrcnn_mobilenet_v3_large_320_fpn"}})
    info = info_like.inspect(recipe, tmp_path)
    later = {str(root / "images" / "train" / "0.png"): "corrupt image: found while training"}
    honest = without_files(info, later)
    assert honest.counts["train"] == {"thing": 0} and honest.extras["images"]["train"] == 1
    assert info.extras["images"]["train"] == 2


def test_segmentation_skipped_files_are_not_counted(tmp_path):
    from visiontl.tasks.segmentation import SegmentationTask

    root = tmp_path / "s"
    for i in range(3):
        _png(root / "images" / f"{i}.png", (12, 10), value=i)
        (root / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.eye(10, 12, dtype=np.uint8)).save(root / "masks" / f"{i}.png")
    _truncated(root / "images" / "00cut.jpg", "JPEG")  # not last by name: val_last keeps 2.png
    Image.fromarray(np.zeros((64, 64), dtype=np.uint8)).save(root / "masks" / "00cut.png")
    recipe = validate_recipe({"task": "segmentation", "data": {"format": "masks", "root": str(root), "images": "images", "masks": "masks", "val_last": 1},
                              "model": {"id": "smp:unet-resnet18"}})
    info = SegmentationTask().inspect(recipe, tmp_path)
    scan = info.extras["scan"]
    used = {str(p.image) for p in scan.train + scan.val}
    assert str(root / "images" / "00cut.jpg") in info.skipped and not used & set(info.skipped)
    assert info.counts["train"]["images"] + info.counts["val"]["images"] == 3
    honest = without_files(info, {str(scan.val[0].image): "corrupt image"})
    assert honest.counts["val"] == {"images": 0}
