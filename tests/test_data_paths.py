"""Dataset path resolution (one documented order for every task family) and provenance."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visiontl.config.loader import validate_recipe
from visiontl.config.schema import DataSection
from visiontl.data.classification import resolve_dir
from visiontl.data.detection.scan import scan_detection
from visiontl.data.paths import dataset_fingerprint, provenance, resolve_data_path
from visiontl.errors import DataError


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


@pytest.fixture
def places(tmp_path, monkeypatch):
    """A data root and a different working directory, both holding a folder ``ds``."""
    root, cwd = tmp_path / "root", tmp_path / "cwd"
    (root / "ds").mkdir(parents=True)
    (cwd / "ds").mkdir(parents=True)
    (cwd / "only_here").mkdir()
    monkeypatch.chdir(cwd)
    return root, cwd


def test_absolute_path_is_used_as_given(places, warnings):
    root, cwd = places
    assert resolve_data_path(str(cwd / "ds"), root) == (cwd / "ds").resolve()
    assert not _text(warnings)


def test_data_root_wins_over_the_working_directory_with_a_warning(places, warnings):
    root, cwd = places
    assert resolve_data_path("ds", root) == (root / "ds").resolve()
    text = _text(warnings)
    assert str((root / "ds").resolve()) in text and str((cwd / "ds").resolve()) in text and "using the data root's" in text
    # The compatibility wrapper follows the same order (it used to prefer the working directory).
    assert resolve_dir("ds", root) == (root / "ds").resolve()


def test_working_directory_is_the_fallback(places, warnings):
    root, cwd = places
    assert resolve_data_path("only_here", root) == (cwd / "only_here").resolve()
    assert not _text(warnings)


def test_data_root_defaults_to_the_environment(places, monkeypatch):
    root, _ = places
    monkeypatch.setenv("VISIONTL_DATA_DIR", str(root))
    assert resolve_data_path("ds") == (root / "ds").resolve()


def test_missing_path_lists_every_place_tried_and_the_fix(places):
    root, cwd = places
    with pytest.raises(DataError) as err:
        resolve_data_path("nowhere", root)
    message = str(err.value)
    assert str(root / "nowhere") in message and str(cwd / "nowhere") in message
    assert "VISIONTL_DATA_DIR" in message and "Fix:" in message
    with pytest.raises(DataError, match="is an absolute path and .* does not exist"):
        resolve_data_path(str(root / "nowhere"), root)
    # Where data.synthesize would create it: under the data root.
    assert resolve_data_path("nowhere", root, must_exist=False) == (root / "nowhere").resolve()


def _png(path: Path, size=(20, 20)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 90, dtype=np.uint8)).save(path)


def _coco(folder: Path, n: int = 3) -> None:
    images = [{"id": i, "file_name": f"{i}.png", "width": 20, "height": 20} for i in range(n)]
    anns = [{"id": i, "image_id": i, "category_id": 1, "bbox": [2, 2, 5, 5]} for i in range(n)]
    for i in range(n):
        _png(folder / f"{i}.png")
    (folder / "a.json").write_text(json.dumps({"images": images, "annotations": anns, "categories": [{"id": 1, "name": "x"}]}))


def test_detection_and_segmentation_use_the_same_order(tmp_path, monkeypatch, warnings):
    root, cwd = tmp_path / "root", tmp_path / "cwd"
    _coco(root / "ds", n=3)
    _coco(cwd / "ds", n=4)  # a same-named folder in the working directory must not win
    monkeypatch.chdir(cwd)
    scan = scan_detection(DataSection(format="coco", root="ds", train="a.json", val_last=1), root)
    assert len(scan.train) + len(scan.val) == 3 and "using the data root's" in _text(warnings)
    with pytest.raises(DataError, match="Looked in: .*root/absent .*then .*cwd/absent"):
        scan_detection(DataSection(format="coco", root="absent", train="a.json", val_last=1), root)

    from visiontl.data.segmentation.scan import scan_dataset

    for base in (root, cwd):
        for i in range(3):
            _png(base / "seg" / "images" / f"{i}.png")
            (base / "seg" / "masks").mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.eye(20, dtype=np.uint8)).save(base / "seg" / "masks" / f"{i}.png")
    seg = scan_dataset(DataSection(format="masks", root="seg", images="images", masks="masks", val_last=1), root)
    assert seg.layout is not None and seg.layout.train_images == (root / "seg" / "images").resolve()
    with pytest.raises(DataError, match="Looked in"):
        scan_dataset(DataSection(format="masks", root="absent", images="images", masks="masks", val_last=1), root)


def test_classification_task_prefers_the_data_root(tmp_path, monkeypatch):
    from visiontl.tasks.classification import ClassificationTask

    for base, n in ((tmp_path / "root", 1), (tmp_path / "cwd", 2)):
        for split in ("train", "val"):
            for cls in ("a", "b"):
                for i in range(n):
                    _png(base / "ds" / split / cls / f"{i}.png")
    monkeypatch.chdir(tmp_path / "cwd")
    recipe = validate_recipe({"data": {"root": "ds"}, "model": {"id": "timm:resnet10t"}})
    info = ClassificationTask().inspect(recipe, tmp_path / "root")
    assert info.counts["train"] == {"a": 1, "b": 1}


# --------------------------------------------------------------------------- provenance


def test_fingerprint_hashes_the_sorted_relative_file_list():
    files = [Path("/d/b/2.png"), Path("/d/a/1.png")]
    fp = dataset_fingerprint(Path("/d"), files)
    assert fp == {"path": "/d", "files": 2, "sha256": hashlib.sha256(b"a/1.png\nb/2.png").hexdigest()}
    moved = dataset_fingerprint(Path("/e"), [Path("/e/a/1.png"), Path("/e/b/2.png")])
    assert moved["sha256"] == fp["sha256"] and moved["path"] == "/e"
    renamed = dataset_fingerprint(Path("/d"), [Path("/d/a/1.png"), Path("/d/b/3.png")])
    assert renamed["sha256"] != fp["sha256"]


def test_provenance_of_each_family(tmp_path):
    prov = provenance(tmp_path, {"train": [tmp_path / "t" / "x" / "1.png", tmp_path / "t" / "y" / "2.png"], "val": [tmp_path / "v" / "3.png"]})
    assert prov["data_root"] == str(tmp_path)
    assert prov["splits"]["train"]["path"] == str(tmp_path / "t") and prov["splits"]["train"]["files"] == 2
    assert prov["splits"]["val"]["path"] == str(tmp_path / "v")
    json.dumps(prov)  # JSON-serialisable

    _coco(tmp_path / "det", n=4)
    scan = scan_detection(DataSection(format="coco", root=str(tmp_path / "det"), train="a.json", val_last=1), tmp_path)
    splits = scan.provenance["splits"]
    assert (splits["train"]["files"], splits["val"]["files"]) == (3, 1)
    assert splits["val"]["sha256"] == hashlib.sha256(b"3.png").hexdigest()

    from visiontl.data.segmentation.scan import scan_dataset

    for i in range(3):
        _png(tmp_path / "seg" / "images" / f"{i}.png")
        (tmp_path / "seg" / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.eye(20, dtype=np.uint8)).save(tmp_path / "seg" / "masks" / f"{i}.png")
    seg = scan_dataset(DataSection(format="masks", root=str(tmp_path / "seg"), images="images", masks="masks", val_last=1), tmp_path)
    assert seg.provenance["splits"]["train"] == {
        "path": str((tmp_path / "seg" / "images").resolve()),
        "files": 2,
        "sha256": hashlib.sha256(b"0.png\n1.png").hexdigest(),
        "labels": str((tmp_path / "seg" / "masks").resolve()),  # what eval prints it scored
    }
    assert seg.provenance["splits"]["val"]["carved"] == "the last 1 of 3 training image/mask pairs by file name (data.val_last: 1)"
