"""Detection data: COCO and YOLO parsing, every bad-label case with its exact message,
category ids both ways, masks, splits, transforms, and the YOLO export round trip."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from detection_fixtures import COLOURS, draw_image, make_coco, make_yolo, write_json

from visiontl.config.schema import DataSection
from visiontl.data.detection import records as R
from visiontl.data.detection.coco import CategoryMap, read_coco
from visiontl.data.detection.export import coco_dict, write_yolo_dataset
from visiontl.data.detection.masks import polygons_to_mask, record_masks, rle_to_mask
from visiontl.data.detection.scan import scan_detection
from visiontl.data.detection.yolo import label_path, read_yolo
from visiontl.errors import ConfigError, DataError

# --------------------------------------------------------------------------- COCO


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_coco_category_ids_map_to_contiguous_labels_and_back(tmp_path: Path) -> None:
    path = make_coco(tmp_path, n=4, category_ids=(3, 90))
    data = read_coco(path, tmp_path / "images")
    assert len(data.records) == 4 and not data.problems.entries
    assert data.class_names == ["red", "green"]  # ascending id order: 3 then 90
    assert data.category_map.ids == (3, 90)
    assert [data.category_map.to_label(c) for c in (3, 90)] == [0, 1]
    assert [data.category_map.to_category(i) for i in (0, 1)] == [3, 90]
    raw = json.loads(path.read_text())
    by_image = {}
    for ann in raw["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann["category_id"])
    for record in data.records:
        assert [data.category_map.to_category(int(lab)) for lab in record.labels] == by_image[record.image_id]
    # And back out: COCO JSON written with the original ids.
    out = coco_dict(data.class_names, data.records, data.category_map.ids)
    assert sorted(c["id"] for c in out["categories"]) == [3, 90]
    assert sorted(a["category_id"] for a in out["annotations"]) == sorted(a["category_id"] for a in raw["annotations"])


def test_coco_class_names_pick_and_order_categories(tmp_path: Path) -> None:
    path = make_coco(tmp_path, n=4)
    data = read_coco(path, tmp_path / "images", class_names=["green"])
    assert len(data.records) == 4
    assert data.class_names == ["green"] and data.category_map.ids == (90,)
    assert all((r.labels == 0).all() for r in data.records)
    dropped = [v for v in data.problems.entries.values() if v == "category 'red' is not in data.class_names; object dropped"]
    assert len(dropped) == sum(1 for a in json.loads(path.read_text())["annotations"] if a["category_id"] == 3)
    with pytest.raises(DataError, match="data.class_names names 'gren', which is not a category .* Did you mean 'green'"):
        read_coco(path, tmp_path / "images", class_names=["gren"])


def _coco_with_bad_labels(root: Path) -> Path:
    draw_image(root / "a.png", (100, 80), [])
    draw_image(root / "b.png", (100, 80), [])
    draw_image(root / "c.png", (100, 80), [])
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "iscrowd": 0},  # fine
        {"id": 2, "image_id": 1, "category_id": 7, "bbox": [10, 10, 20, 20]},  # unknown category
        {"id": 3, "image_id": 1, "category_id": 1, "bbox": [10, 10, 0, 20]},  # zero width
        {"id": 4, "image_id": 1, "category_id": 1, "bbox": [150, 10, 20, 20]},  # entirely outside
        {"id": 5, "image_id": 1, "category_id": 1, "bbox": [90, 70, 20, 20]},  # partly outside
        {"id": 6, "image_id": 99, "category_id": 1, "bbox": [10, 10, 20, 20]},  # unknown image
        {"id": 7, "image_id": 2, "category_id": 1, "bbox": "oops"},  # malformed bbox
        {"id": 8, "image_id": 4, "category_id": 1, "bbox": [1, 1, 5, 5]},  # its image file is missing
        {"id": 9, "image_id": 2, "category_id": 1, "bbox": [0, 0, 100, 80], "iscrowd": 1},  # crowd: kept
    ]
    images = [
        {"id": 1, "file_name": "a.png", "width": 100, "height": 80},
        {"id": 2, "file_name": "b.png", "width": 100, "height": 80},
        {"id": 3, "file_name": "c.png", "width": 100, "height": 80},  # no annotations: a negative
        {"id": 4, "file_name": "missing.png", "width": 100, "height": 80},
    ]
    return write_json(root / "ann.json", {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "thing"}]})


def test_coco_bad_labels_are_reported_with_the_exact_messages(tmp_path: Path) -> None:
    path = _coco_with_bad_labels(tmp_path)
    data = read_coco(path)
    p = data.problems.entries
    assert p == {
        f"{path}:annotation 2": "category_id 7 is not one of the categories (1); object dropped",
        f"{path}:annotation 3": "box [10, 10, 10, 30] has zero area; object dropped",
        f"{path}:annotation 4": "box [150, 10, 170, 30] lies entirely outside the 100x80 image; object dropped",
        f"{path}:annotation 6": "image_id 99 is not in the file's images; object dropped",
        f"{path}:annotation 7": "malformed annotation: bbox 'oops' is not [x, y, width, height]; object dropped",
        str(tmp_path / "missing.png"): f"image file not found: {tmp_path / 'missing.png'}; its 1 object(s) ignored",
    }
    # A box clipped to the image is kept: a counted note, not a skipped object.
    assert data.problems.kept == {
        f"{path}:annotation 5": "box [90, 70, 110, 90] extends outside the 100x80 image; clipped to [90, 70, 100, 80]",
    }
    assert data.problems.kept_counts() == {R.CLIPPED: 1}
    by_name = {r.path.name: r for r in data.records}
    assert sorted(by_name) == ["a.png", "b.png", "c.png"]  # the negative c.png is kept
    np.testing.assert_allclose(by_name["a.png"].boxes, [[10, 10, 30, 30], [90, 70, 100, 80]])
    assert len(by_name["c.png"]) == 0
    assert by_name["b.png"].iscrowd.tolist() == [1]  # crowd regions are kept for evaluation


def test_coco_file_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="COCO annotation file '.*nope.json' does not exist"):
        read_coco(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [\n  {"id": 1,}\n]}')
    with pytest.raises(DataError, match=r"is not valid JSON: Expecting property name enclosed in double quotes at line 2, column 12"):
        read_coco(bad)
    notcoco = write_json(tmp_path / "list.json", {"annotations": []})
    with pytest.raises(DataError, match="is not a COCO instances file: it needs 'images' and 'categories'"):
        read_coco(notcoco)
    dup = write_json(tmp_path / "dup.json", {"images": [], "categories": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]})
    with pytest.raises(DataError, match="category id 1 is defined twice"):
        read_coco(dup)


def test_rle_and_polygon_masks(tmp_path: Path) -> None:
    from pycocotools import mask as mask_utils

    truth = np.zeros((40, 50), dtype=np.uint8)
    truth[5:25, 10:30] = 1
    compressed = mask_utils.encode(np.asfortranarray(truth))
    # Uncompressed RLE: column-major run lengths starting with zeros.
    flat = truth.flatten(order="F")
    runs, current, count = [], 0, 0
    for v in flat:
        if v == current:
            count += 1
        else:
            runs.append(count)
            current, count = v, 1
    runs.append(count)
    draw_image(tmp_path / "m.png", (50, 40), [])
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 5, 20, 20], "segmentation": {"size": [40, 50], "counts": compressed["counts"].decode()}},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [10, 5, 20, 20], "segmentation": {"size": [40, 50], "counts": runs}, "iscrowd": 1},
        {"id": 3, "image_id": 1, "category_id": 1, "bbox": [10, 5, 20, 20], "segmentation": [[10, 5, 30, 5, 30, 25, 10, 25]]},
        {"id": 4, "image_id": 1, "category_id": 1, "bbox": [10, 5, 20, 20]},  # no segmentation
    ]
    path = write_json(tmp_path / "m.json", {"images": [{"id": 1, "file_name": "m.png", "width": 50, "height": 40}], "annotations": anns, "categories": [{"id": 1, "name": "x"}]})
    record = read_coco(path).records[0]
    assert record.rles is not None and record.rles[0] is not None and record.rles[2] is None
    masks = record_masks(record)
    assert masks.shape == (4, 40, 50) and masks.dtype == np.uint8
    np.testing.assert_array_equal(masks[0], truth)
    np.testing.assert_array_equal(masks[1], truth)
    # The polygon's outline follows COCO's rasterisation: the 20x20 square, within a pixel.
    assert abs(int(masks[2].sum()) - 400) <= 45 and masks[2][6:24, 11:29].all()
    np.testing.assert_array_equal(masks[3], truth)  # box used as mask
    assert not record.object_has_mask(3)
    assert rle_to_mask({"size": [20, 25], "counts": mask_utils.encode(np.asfortranarray(truth[::2, ::2]))["counts"]}, 40, 50).sum() > 0
    assert polygons_to_mask([], 4, 4).sum() == 0
    assert base64  # (imported for readability of RLE strings in failures)


# --------------------------------------------------------------------------- YOLO


def test_yolo_relative_path_is_resolved_against_the_yaml_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    yaml_path = make_yolo(tmp_path)
    monkeypatch.chdir(tmp_path / "data")  # a cwd where "../data" would mean something else
    data = read_yolo(yaml_path)
    assert data.root == (tmp_path / "data").resolve()
    assert data.class_names == ["red", "green"]
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 6, "val": 3}
    assert not data.problems.entries
    record = data.splits["train"][0]
    assert record.path.name == "train_00.png" and label_path(record.path) == tmp_path / "data" / "labels" / "train" / "train_00.txt"


def test_yolo_bad_labels_are_reported_with_file_and_line(tmp_path: Path) -> None:
    yaml_path = make_yolo(tmp_path, n_train=3, n_val=1)
    labels = tmp_path / "data" / "labels" / "train"
    bad = labels / "train_00.txt"
    bad.write_text(
        "0 0.5 0.5 0.2 0.2\n"  # 1: fine
        "5 0.5 0.5 0.2 0.2\n"  # 2: class out of range
        "0 0.5 0.5 0.2\n"  # 3: malformed (4 numbers)
        "zero 0.5 0.5 0.2 0.2\n"  # 4: malformed
        "1 1.5 0.5 0.2 0.2\n"  # 5: entirely outside
        "1 0.5 0.5 0.0 0.2\n"  # 6: zero area
        "1 0.95 0.5 0.2 0.5\n"  # 7: partly outside -> clipped
        "\n"  # blank lines are fine
        "0 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3\n"  # 9: a polygon
    )
    (labels / "train_01.txt").unlink()  # an image without a label
    (labels / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # a label without an image
    data = read_yolo(yaml_path)
    p = data.problems.entries
    assert p == {
        f"{bad}:2": "class id 5 out of range (the data yaml names 2 classes: 0..1); object dropped",
        f"{bad}:3": "malformed line '0 0.5 0.5 0.2': expected 'class cx cy w h' (normalised) or 'class x1 y1 x2 y2 x3 y3 ...' (a polygon); line dropped",
        f"{bad}:4": "malformed line 'zero 0.5 0.5 0.2 0.2': expected 'class cx cy w h' (normalised) or 'class x1 y1 x2 y2 x3 y3 ...' (a polygon); line dropped",
        f"{bad}:5": "box [134.4, 25.6, 153.6, 38.4] lies entirely outside the 96x64 image; object dropped",
        f"{bad}:6": "box [48, 25.6, 48, 38.4] has zero area; object dropped",
        str(labels / "orphan.txt"): f"label file without an image (no orphan.<image extension> in {tmp_path / 'data' / 'images' / 'train'}); labels ignored",
    }
    # Kept after a fix (a clipped box, a background image): notes, not skipped.
    assert data.problems.kept == {
        f"{bad}:7": "box [81.6, 16, 100.8, 48] extends outside the 96x64 image; clipped to [81.6, 16, 96, 48]",
        str(tmp_path / "data" / "images" / "train" / "train_01.png"): f"no label file ({labels / 'train_01.txt'}): kept as a background image (no objects)",
    }
    by_name = {r.path.name: r for r in data.splits["train"]}
    assert len(by_name["train_00.png"]) == 3 and by_name["train_00.png"].labels.tolist() == [0, 1, 0]
    np.testing.assert_allclose(by_name["train_00.png"].boxes[2], [9.6, 6.4, 28.8, 19.2], atol=1e-4)
    assert len(by_name["train_00.png"].polygons[2][0]) == 4 and by_name["train_00.png"].polygons[0] == []
    assert len(by_name["train_01.png"]) == 0  # kept as a negative


def test_yolo_yaml_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="YOLO data yaml '.*none.yaml' does not exist"):
        read_yolo(tmp_path / "none.yaml")
    y = tmp_path / "d.yaml"
    y.write_text("train: images\nnames: {0: a, 2: b}\n")
    with pytest.raises(DataError, match=r"names must be numbered 0..1 without gaps; found \[0, 2\]"):
        read_yolo(y)
    y.write_text("train: images\nnc: 3\nnames: [a, b]\n")
    with pytest.raises(DataError, match="nc is 3 but names lists 2 classes"):
        read_yolo(y)
    y.write_text("train: nowhere\nnames: [a]\n")
    with pytest.raises(DataError, match="train entry 'nowhere' is neither an image folder nor an image-list .txt"):
        read_yolo(y)


# --------------------------------------------------------------------------- recipes, splits


def _data(**kw: object) -> DataSection:
    return DataSection(**kw)


def test_scan_coco_val_last_and_val_split(tmp_path: Path) -> None:
    make_coco(tmp_path / "ds", n=8)
    scan = scan_detection(_data(format="coco", root=str(tmp_path / "ds"), train="annotations.json", images="images", val_last=3), tmp_path)
    assert [r.path.name for r in scan.val] == ["img_05.png", "img_06.png", "img_07.png"]
    assert len(scan.train) == 5 and scan.extras["category_map"] == {"ids": [3, 90], "names": ["red", "green"]}
    a = scan_detection(_data(format="coco", root=str(tmp_path / "ds"), train="annotations.json", images="images", val_split=0.25, split_seed=1), tmp_path)
    b = scan_detection(_data(format="coco", root=str(tmp_path / "ds"), train="annotations.json", images="images", val_split=0.25, split_seed=1), tmp_path)
    assert [r.path for r in a.val] == [r.path for r in b.val] and len(a.val) == 2 and len(a.train) == 6
    limited = scan_detection(_data(format="coco", root=str(tmp_path / "ds"), train="annotations.json", images="images", val_last=3, limit=2), tmp_path)
    assert (len(limited.train), len(limited.val)) == (2, 2)


def test_scan_errors_name_the_fix(tmp_path: Path) -> None:
    make_coco(tmp_path / "ds", n=3)
    root = str(tmp_path / "ds")
    with pytest.raises(ConfigError, match="There is no validation set: data.val is null and neither data.val_split nor data.val_last is set"):
        scan_detection(_data(format="coco", root=root, train="annotations.json", val=None), tmp_path)
    with pytest.raises(ConfigError, match="data.format 'cocoo' is not a detection format. Did you mean 'coco'"):
        scan_detection(_data(format="cocoo", root=root), tmp_path)
    with pytest.raises(ConfigError, match="data.format 'yolo' needs data.yaml"):
        scan_detection(_data(format="yolo", root=root), tmp_path)
    with pytest.raises(DataError, match="Dataset '.*absent' not found"):
        scan_detection(_data(format="coco", root=str(tmp_path / "absent")), tmp_path)
    with pytest.raises(DataError, match="data.val_last is 3 but the training split has only 3 usable images"):
        scan_detection(_data(format="coco", root=root, train="annotations.json", images="images", val_last=3), tmp_path)
    # Every label bad: nothing usable is left, and the run stops with the first problem.
    draw_image(tmp_path / "bad" / "x.png", (20, 20), [])
    draw_image(tmp_path / "bad" / "y.png", (20, 20), [])
    images = [{"id": 1, "file_name": "x.png"}, {"id": 2, "file_name": "y.png"}]
    anns = [{"id": k, "image_id": k, "category_id": 1, "bbox": [50, 50, 5, 5]} for k in (1, 2)]
    write_json(tmp_path / "bad" / "a.json", {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "a"}]})
    with pytest.raises(DataError, match=r"No usable training objects in '.*bad' \(2 label problem\(s\) found, e.g. .*lies entirely outside the 20x20 image"):
        scan_detection(_data(format="coco", root=str(tmp_path / "bad"), train="a.json", val_last=1), tmp_path)


def test_pennfudan_split_is_the_last_50_images(shared_data: Path) -> None:
    scan = scan_detection(_data(format="coco", root="pennfudan", train="annotations.json", images="images", val_last=50), shared_data)
    assert (len(scan.train), len(scan.val)) == (120, 50)
    names = sorted(p.name for p in (shared_data / "pennfudan" / "images").iterdir())
    assert [r.path.name for r in scan.val] == names[-50:]
    assert sum(len(r) for r in scan.train + scan.val) == 423 and not scan.problems.entries


def test_coco128_yolo_quirks_are_reported(shared_data: Path) -> None:
    scan = scan_detection(_data(format="yolo", root="coco128", yaml="data.yaml"), shared_data)
    assert len(scan.class_names) == 80 and (len(scan.train), len(scan.val)) == (128, 128)
    reasons = list(scan.problems.entries.values())
    assert sum("kept as a background image" in r for r in scan.problems.kept.values()) == 2
    assert scan.extras["kept"] == {R.BACKGROUND: 2}
    assert sum(r.startswith("label file without an image") for r in reasons) == 2
    assert sum(1 for r in scan.train if not len(r)) == 2


# --------------------------------------------------------------------------- export round trip


def test_pennfudan_coco_to_yolo_and_back_gives_the_same_boxes(shared_data: Path, tmp_path: Path) -> None:
    scan = scan_detection(_data(format="coco", root="pennfudan", train="annotations.json", images="images", val_last=50), shared_data)
    for masks in (False, True):
        out = tmp_path / ("seg" if masks else "det")
        yaml_path = write_yolo_dataset(scan.class_names, scan.train, scan.val, out, masks=masks)
        assert yaml_path == out.resolve() / "data.yaml"
        back = read_yolo(yaml_path)
        assert back.class_names == ["person"] and not back.problems.entries
        for split, original in (("train", scan.train), ("val", scan.val)):
            got = {r.path.name: r for r in back.splits[split]}
            assert sorted(got) == sorted(r.path.name for r in original)
            for r in original:
                g = got[r.path.name]
                assert g.path.is_symlink() and g.path.resolve() == r.path.resolve()  # nothing copied
                if masks:
                    # The polygon's bounds: the box to within COCO's rounding of the outline.
                    np.testing.assert_allclose(g.boxes, r.boxes, atol=1.5)
                    assert all(len(p) == 1 and len(p[0]) >= 3 for p in g.polygons)
                else:
                    np.testing.assert_allclose(g.boxes, r.boxes, atol=0.01)  # 6 decimals of ~500 px
                np.testing.assert_array_equal(g.labels, r.labels)


# --------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("preset", ["light", "standard", "strong"])
def test_augmentations_keep_boxes_masks_and_pixels_together(tmp_path: Path, preset: str) -> None:
    import torch

    from visiontl.data.detection.dataset import DetectionDataset
    from visiontl.data.detection.transforms import detection_transform

    make_coco(tmp_path, n=4, size=(96, 64))
    records = read_coco(tmp_path / "annotations.json", tmp_path / "images").records
    ds = DetectionDataset(records, detection_transform(preset, image_size=80, train=True), masks=True, keep_crowd=False)
    checked = 0
    for seed in range(6):
        torch.manual_seed(seed)
        for i in range(len(ds)):
            image, target = ds[i]
            assert image.dtype == torch.float32 and 0.0 <= float(image.min()) and float(image.max()) <= 1.0
            assert max(image.shape[-2:]) <= 100  # resized to 80 on the long side, then scaled by at most 1.25
            assert target["masks"].shape == (len(target["boxes"]), *image.shape[-2:])
            for box, mask, label in zip(target["boxes"], target["masks"], target["labels"], strict=True):
                ys, xs = torch.nonzero(mask, as_tuple=True)
                assert len(ys) > 0
                # The box encloses the mask (within a pixel of resampling).
                assert float(xs.min()) >= float(box[0]) - 1.5 and float(xs.max()) <= float(box[2]) + 1.5
                assert float(ys.min()) >= float(box[1]) - 1.5 and float(ys.max()) <= float(box[3]) + 1.5
                if preset != "light":
                    continue  # photometric distortion changes colours
                # Under the mask's core the image shows the object's colour.
                core = torch.nn.functional.conv2d(mask[None, None].float(), torch.ones(1, 1, 3, 3), padding=1)[0, 0] == 9
                if core.any():
                    colour = torch.tensor(COLOURS[int(label)], dtype=torch.float32) / 255
                    pixels = image[:, core].mean(dim=1)
                    assert torch.allclose(pixels, colour, atol=0.06), (pixels, colour)
                checked += 1
    assert preset != "light" or checked > 20


def test_eval_transform_resizes_boxes_with_the_image(tmp_path: Path) -> None:
    from visiontl.data.detection.dataset import DetectionDataset
    from visiontl.data.detection.transforms import detection_transform

    make_coco(tmp_path, n=2, size=(96, 64))
    records = read_coco(tmp_path / "annotations.json", tmp_path / "images").records
    ds = DetectionDataset(records, detection_transform("none", image_size=48, train=False))
    image, target = ds[0]
    assert tuple(image.shape) == (3, 32, 48)
    np.testing.assert_allclose(target["boxes"].numpy(), records[0].boxes * 0.5, atol=1e-4)
    assert target["image_id"] == 0 and target["path"].endswith("img_00.png")


def test_training_items_drop_crowd_regions_and_validation_items_keep_them(tmp_path: Path) -> None:
    from visiontl.data.detection.dataset import DetectionDataset
    from visiontl.data.detection.transforms import detection_transform

    path = _coco_with_bad_labels(tmp_path)
    records = {r.path.name: r for r in read_coco(path).records}
    train = DetectionDataset([records["b.png"]], detection_transform("none", train=True), keep_crowd=False)
    val = DetectionDataset([records["b.png"]], detection_transform("none", train=False), keep_crowd=True)
    assert len(train[0][1]["boxes"]) == 0
    assert val[0][1]["iscrowd"].tolist() == [1]


def test_unreadable_image_gives_a_marker(tmp_path: Path) -> None:
    from visiontl.data.classification import Unreadable
    from visiontl.data.detection.dataset import DetectionDataset
    from visiontl.data.detection.records import DetectionRecord
    from visiontl.data.detection.transforms import detection_transform

    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    record = DetectionRecord(bad, 10, 10, R.empty_boxes(), np.zeros(0), np.zeros(0))
    item = DetectionDataset([record], detection_transform("none", train=False))[0]
    assert isinstance(item, Unreadable) and item.reason == "not a recognised image format"


def test_category_map_doc_example() -> None:
    m = CategoryMap(ids=(1, 3, 90), names=("person", "car", "toothbrush"))
    assert (m.to_label(90), m.to_category(1)) == (2, 3) and 3 in m and 2 not in m


def test_yolo_seg_polygons_give_masks_and_box_lines_are_reported_for_segmentation(tmp_path: Path) -> None:
    yaml_path = make_yolo(tmp_path, n_train=3, n_val=2, seg=True)
    (tmp_path / "data" / "labels" / "val" / "val_00.txt").write_text("0 0.5 0.5 0.25 0.25\n")  # a box, no polygon
    scan = scan_detection(_data(format="yolo", root=str(tmp_path), yaml="config/data.yaml"), tmp_path, masks=True)
    assert scan.extras["yolo_root"] == str((tmp_path / "data").resolve()) and yaml_path.is_file()
    for record in scan.train:
        masks = record_masks(record)
        for box, mask in zip(record.boxes, masks, strict=True):
            ys, xs = np.nonzero(mask)
            # The rectangle polygon rasterises to the box (within COCO's half-pixel rule).
            assert abs(xs.min() - box[0]) <= 1 and abs(xs.max() + 1 - box[2]) <= 1
            assert abs(ys.min() - box[1]) <= 1 and abs(ys.max() + 1 - box[3]) <= 1
    val_image = tmp_path / "data" / "images" / "val" / "val_00.png"
    assert scan.problems.entries == {}
    assert scan.problems.kept == {f"{val_image}:object 1": "object has no segmentation (polygon or RLE); its box is used as its mask"}


def test_merged_polygon_covers_every_part_and_adds_no_area() -> None:
    from visiontl.data.detection.export import merge_polygons

    parts = [
        np.array([[2, 2], [12, 2], [12, 12], [2, 12]], dtype=np.float32),
        np.array([[20, 4], [30, 4], [30, 10], [20, 10]], dtype=np.float32),
        np.array([[4, 20], [10, 20], [10, 28], [4, 28]], dtype=np.float32),
    ]
    merged = merge_polygons(parts)
    union = np.maximum.reduce([polygons_to_mask([p], 32, 40) for p in parts])
    np.testing.assert_array_equal(polygons_to_mask([merged], 32, 40), union)
    np.testing.assert_allclose(np.concatenate([merged.min(0), merged.max(0)]), [2, 2, 30, 28])
    np.testing.assert_array_equal(merge_polygons(parts[:1]), parts[0])
