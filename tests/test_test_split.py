"""The test split and explicit evaluation: data.test is scored once at the end with the best
checkpoint and never chooses the best epoch; ``eval`` says exactly what it scored and scores
explicit folders (--images with --masks / --labels) whatever the recipe's split keys say."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from detection_fixtures import make_coco
from PIL import Image

from conftest import tiny_recipe
from visiontl import api
from visiontl.cli import cli
from visiontl.config.loader import validate_recipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _write_csv(path: Path, rows: list[tuple[Path, str]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label"])
        writer.writerows((str(p), label) for p, label in rows)
    return path


def _two_classes(root: Path, split: str) -> list[tuple[Path, str]]:
    return [(p, cls) for cls in ("circle", "square") for p in sorted((root / split / cls).glob("*.png"))]


# --------------------------------------------------------------------------- classification


@pytest.fixture(scope="module")
def swapped_run(tmp_path_factory, shapes_root):
    """Circles vs squares from CSVs; the test split is the validation images with their labels
    swapped, so on it every epoch's accuracy is exactly 1 - its validation accuracy: a test
    split that chose the best epoch would choose the worst one."""
    from visiontl.plugin_manager import set_plugins

    set_plugins(None)
    tmp = tmp_path_factory.mktemp("swapped")
    val = _two_classes(shapes_root, "val")
    _write_csv(tmp / "train.csv", _two_classes(shapes_root, "train"))
    _write_csv(tmp / "val.csv", val)
    _write_csv(tmp / "test.csv", [(p, "square" if label == "circle" else "circle") for p, label in val])
    recipe = tiny_recipe(tmp, tmp / "runs", data={"format": "csv", "train": "train.csv", "val": "val.csv", "test": "test.csv"},
                         strategy={"name": "full"}, optimizer={"lr": 0.003}, train={"epochs": 4, "threads": 1})
    return api.run(validate_recipe(recipe, "t"), data_root=tmp), tmp


def test_the_test_split_never_picks_the_best_epoch(swapped_run):
    outcome, _ = swapped_run
    summary = outcome.summary
    accuracies = [row["accuracy"] for row in outcome.result.history]
    assert len(set(accuracies)) > 1, f"the epochs must differ for this test to mean anything: {accuracies}"
    best = accuracies.index(max(accuracies)) + 1
    worst = accuracies.index(min(accuracies)) + 1
    assert summary["best"]["epoch"] == best != worst
    test = summary["test"]
    # Scored once, with best.pt: exactly the mirror of the best validation accuracy.
    assert test["scored"]["checkpoint"].endswith("best.pt") and test["scored"]["epoch"] == best
    assert test["accuracy"] == pytest.approx(1 - max(accuracies), abs=1e-9)
    assert test["scored"]["images"] == 12 and test["scored"]["labels"].endswith("test.csv")
    # Never part of the per-epoch history (metrics.csv), only of the end.
    header = (outcome.run_dir / "metrics.csv").read_text().splitlines()[0]
    assert "test" not in header
    assert summary["data"]["images"] == {"train": 24, "val": 12, "test": 12}
    report = (outcome.run_dir / "report.md").read_text()
    assert "## Test split (scored once, after training)" in report and f"Test accuracy: **{test['accuracy']:.4f}**" in report
    assert "took no part in choosing the best epoch" in report


def test_eval_prints_the_checkpoint_and_the_images_it_scored(swapped_run):
    outcome, tmp = swapped_run
    runner = CliRunner()
    result = runner.invoke(cli, ["eval", str(outcome.run_dir), "--data-root", str(tmp)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"checkpoint: {outcome.run_dir / 'checkpoints' / 'best.pt'} (epoch {outcome.summary['best']['epoch']})"
    assert lines[1].startswith("scored: val split, 12 images in ") and f"(labels: {tmp / 'val.csv'})" in lines[1]
    # The recipe's test split, scanned alone, gives the number the run recorded.
    result = runner.invoke(cli, ["eval", str(outcome.run_dir), "--split", "test", "--data-root", str(tmp), "--json"], catch_exceptions=False)
    metrics = json.loads(result.output)
    assert metrics["scored"]["split"] == "test" and metrics["accuracy"] == pytest.approx(outcome.summary["test"]["accuracy"], abs=1e-9)


def test_eval_scores_explicit_classification_folders(swapped_run, shapes_root, tmp_path):
    outcome, _ = swapped_run
    # An ImageFolder-style folder (its triangles are no class of the model: left out, named).
    metrics = api.evaluate(outcome.run_dir, images=shapes_root / "val")
    assert metrics["scored"] == {**metrics["scored"], "split": "explicit", "images": 12, "folder": str(shapes_root / "val")}
    # A CSV whose paths are relative to --images.
    rows = [(Path(p).relative_to(shapes_root / "train"), label) for p, label in _two_classes(shapes_root, "train")[:5]]
    _write_csv(tmp_path / "labels.csv", rows)
    result = CliRunner().invoke(cli, ["eval", str(outcome.run_dir), "--images", str(shapes_root / "train"), "--labels", str(tmp_path / "labels.csv"), "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    scored = json.loads(result.output)["scored"]
    assert scored["images"] == 5 and scored["labels"] == str(tmp_path / "labels.csv")


def test_eval_threads_option_and_train_threads(swapped_run, monkeypatch):
    outcome, tmp = swapped_run
    seen: list[int | None] = []
    real = api._threads

    def record(threads):
        seen.append(threads)
        return real(threads)

    monkeypatch.setattr(api, "_threads", record)
    CliRunner().invoke(cli, ["eval", str(outcome.run_dir), "--threads", "2", "--data-root", str(tmp), "--json"], catch_exceptions=False)
    CliRunner().invoke(cli, ["eval", str(outcome.run_dir), "--data-root", str(tmp), "--json"], catch_exceptions=False)
    assert seen == [2, 1]  # the option, then the recipe's train.threads


# --------------------------------------------------------------------------- segmentation


def _masks_split(root: Path, split: str, n: int, size: tuple[int, int] = (36, 48), seed: int = 0) -> None:
    """``n`` images of ``size`` (h, w) with one rectangle of class 1 and their masks."""
    rng = np.random.default_rng(seed)
    h, w = size
    for i in range(n):
        labels = np.zeros((h, w), dtype=np.uint8)
        y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
        labels[y:y + h // 2, x:x + w // 2] = 1
        image = np.where(labels[..., None] == 1, [220, 40, 40], [30, 30, 200]).astype(np.uint8)
        for d in ("images", "masks"):
            (root / split / d).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / split / "images" / f"{split}{i}.png")
        Image.fromarray(labels).save(root / split / "masks" / f"{split}{i}.png")


def test_a_carved_recipe_refuses_val_folders_and_eval_scores_explicit_folders(tmp_path):
    """The issue's case: on a val_last recipe, --set data.val_images/val_masks used to score
    carved training images; now it is refused, and --images/--masks scores those folders."""
    for split, n, seed in (("train", 8, 0), ("other", 5, 1)):
        _masks_split(tmp_path, split, n, seed=seed)
    recipe = validate_recipe({
        "task": "segmentation",
        "data": {"format": "masks", "root": str(tmp_path), "images": "train/images", "masks": "train/masks", "val_last": 3,
                 "class_names": ["bg", "square"], "image_size": 32},
        "model": {"id": "smp:unet-resnet18", "options": {"decoder_channels": [16, 16, 8, 8, 8]}},
        "strategy": {"name": "full"}, "augmentation": {"preset": "none"},
        "train": {"epochs": 1, "batch_size": 4, "progress": "none"}, "output": {"dir": str(tmp_path / "runs"), "plots": False},
    }, "t")
    run = api.run(recipe).run_dir
    runner = CliRunner()
    refused = runner.invoke(cli, ["eval", str(run), "--set", "data.val_images=other/images", "--set", "data.val_masks=other/masks"])
    assert refused.exit_code == 1 and "val_last carves the validation split out of train" in refused.output
    carved = runner.invoke(cli, ["eval", str(run)], catch_exceptions=False)
    assert "scored: val split, 3 images in " in carved.output and "(data.val_last: 3)" in carved.output
    result = runner.invoke(cli, ["eval", str(run), "--images", str(tmp_path / "other" / "images"), "--masks", str(tmp_path / "other" / "masks")],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"scored: explicit folders, 5 images in {tmp_path / 'other' / 'images'} (labels: {tmp_path / 'other' / 'masks'})" in result.output
    metrics = api.evaluate(run, images=tmp_path / "other" / "images", labels=tmp_path / "other" / "masks")
    assert metrics["num_images"] == 5 and metrics["num_pixels"] == 5 * 36 * 48
    wrong = runner.invoke(cli, ["eval", str(run), "--images", str(tmp_path / "other" / "images")])
    assert wrong.exit_code == 1 and "--masks DIR" in wrong.output


# --------------------------------------------------------------------------- detection


def test_detection_test_split_and_explicit_coco_labels(tmp_path):
    from test_detection_task import SQUEEZE, _recipe

    make_coco(tmp_path / "ds", n=8)
    make_coco(tmp_path / "holdout", n=4)
    recipe = _recipe(tmp_path / "ds", tmp_path / "runs", data={"test": str(tmp_path / "holdout" / "annotations.json"),
                                                              "test_images": str(tmp_path / "holdout" / "images")})
    assert recipe["model"]["options"] == SQUEEZE
    outcome = api.run(validate_recipe(recipe, "t"), data_root=tmp_path)
    test = outcome.summary["test"]
    assert test["num_images"] == 4 and test["scored"]["images"] == 4 and test["scored"]["labels"] == str(tmp_path / "holdout" / "annotations.json")
    assert outcome.summary["data"]["details"]["images"] == {"train": 5, "val": 3, "test": 4}
    metrics = api.evaluate(outcome.run_dir, images=tmp_path / "holdout" / "images", labels=tmp_path / "holdout" / "annotations.json", data_root=tmp_path)
    assert metrics["num_images"] == 4 and metrics["scored"]["split"] == "explicit"
    assert metrics["map"] == pytest.approx(test["map"], abs=1e-9)
    # Without --labels: YOLO labels where YOLO keeps them (images/ -> labels/), no data yaml.
    from detection_fixtures import make_yolo

    make_yolo(tmp_path / "yolo", n_train=2, n_val=3)
    yolo = api.evaluate(outcome.run_dir, images=tmp_path / "yolo" / "data" / "images" / "val")
    assert yolo["num_images"] == 3 and yolo["scored"]["images"] == 3
