"""Ensembles: the weighted softmax average, re-normalisation between members, an ensemble of
two runs evaluated, predicted, benchmarked and exported like one model, and clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from click.testing import CliRunner
from torch import nn

from conftest import tiny_recipe
from visiontl import api
from visiontl.cli import cli
from visiontl.config.loader import validate_recipe
from visiontl.contracts import Preprocessing
from visiontl.ensemble import EnsembleModel, Renormalise
from visiontl.errors import ConfigError, RunError
from visiontl.train.checkpoint import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def two_runs(shapes_root: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two tiny classifiers of the shapes (resnet10t at 32 px, 2 epochs) with different seeds."""
    out = tmp_path_factory.mktemp("runs")
    runs = []
    for seed in (0, 1):
        recipe = tiny_recipe(shapes_root, out, train={"seed": seed, "threads": 1}, output={"name": f"m{seed}"})
        runs.append(api.run(validate_recipe(recipe, "t")).run_dir)
    return runs


def write_ensemble(path: Path, root: Path, members: list[Any], weights: list[float] | None = None, **extra: Any) -> Path:
    recipe: dict[str, Any] = {
        "task": "classification",
        "data": {"format": "imagefolder", "root": str(root)},
        "model": {"id": "timm:resnet10t"},
        "train": {"batch_size": 8},
        "ensemble": {"members": [str(m) for m in members], **({"weights": weights} if weights else {})},
    }
    for key, value in extra.items():
        recipe[key] = {**recipe[key], **value} if isinstance(value, dict) else value
    path.write_text(yaml.safe_dump(recipe))
    return path


def altered(run: Path, path: Path, edit: Any) -> Path:
    """A copy of ``run``'s best checkpoint with ``edit(checkpoint)`` applied."""
    ckpt = load_checkpoint(run / "checkpoints" / "best.pt")
    edit(ckpt)
    save_checkpoint(path, ckpt)
    return path


# --------------------------------------------------------------------------- the module


def _linear(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 3))


def test_output_is_the_log_of_the_weighted_mean_of_softmaxes() -> None:
    a, b = _linear(0), _linear(1)
    ens = EnsembleModel([a, b], [3.0, 1.0]).eval()
    x = torch.randn(5, 3, 2, 2)
    expected = 0.75 * torch.softmax(a(x), 1) + 0.25 * torch.softmax(b(x), 1)
    out = ens(x)
    assert out.shape == (5, 3)
    assert torch.allclose(out.exp(), expected, atol=1e-6)
    assert ens.weights == pytest.approx([0.75, 0.25])
    # Log-probabilities act as logits: softmax gives the averaged probabilities back, and
    # cross-entropy is the ensemble's negative log-likelihood.
    assert torch.allclose(torch.softmax(out, 1), expected, atol=1e-6)
    y = torch.tensor([0, 1, 2, 0, 1])
    assert torch.nn.functional.cross_entropy(out, y).item() == pytest.approx(-expected[torch.arange(5), y].log().mean().item(), abs=1e-6)
    assert torch.allclose(ens.combine(ens.member_logits(x)), out)
    with pytest.raises(ValueError, match="at least 2 members"):
        EnsembleModel([a])
    with pytest.raises(ValueError, match="positive weight"):
        EnsembleModel([a, b], [1.0, 0.0])


def test_renormalise_maps_one_input_convention_onto_another() -> None:
    imagenet = Preprocessing()
    inception = Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    raw = torch.rand(2, 3, 4, 4)

    def norm(pre: Preprocessing) -> torch.Tensor:
        return (raw - torch.tensor(pre.mean).view(1, 3, 1, 1)) / torch.tensor(pre.std).view(1, 3, 1, 1)

    assert torch.allclose(Renormalise(imagenet, inception)(norm(imagenet)), norm(inception), atol=1e-6)


# --------------------------------------------------------------------------- two real runs


def test_an_ensemble_of_two_runs_evaluates_predicts_and_benchmarks_like_one_model(two_runs: list[Path], shapes_root: Path, tmp_path: Path) -> None:
    from visiontl.benchmark.harness import benchmark_module
    from visiontl.contracts import BenchmarkRequest

    recipe = write_ensemble(tmp_path / "ens.yaml", shapes_root, two_runs, [2, 1])
    loaded = api.load_trained(recipe)
    assert isinstance(loaded.model, EnsembleModel) and loaded.built is None
    assert loaded.model_id == "ensemble:ens" and loaded.task == "classification" and loaded.checkpoint == recipe
    assert loaded.member_names == ["m0", "m1"] and loaded.class_names == ["circle", "square", "triangle"]
    assert all(isinstance(a, nn.Identity) for a in loaded.model.adapters)  # same normalisation

    # eval: the ensemble, and each member next to it, on the same batches.
    metrics = api.evaluate(recipe)
    singles = [api.evaluate(run) for run in two_runs]
    rows = metrics["members"]
    assert [r["name"] for r in rows] == ["m0", "m1"] and [r["weight"] for r in rows] == pytest.approx([2 / 3, 1 / 3])
    for row, single, key in zip(rows, singles, ("accuracy@m0", "accuracy@m1"), strict=True):
        assert row["accuracy"] == single["accuracy"] == metrics[key]
        assert row["val_loss"] == pytest.approx(single["val_loss"], abs=1e-5)
    assert metrics["num_samples"] == 18

    # predict: the ensemble's probabilities are the weighted mean of the members'.
    images = sorted((shapes_root / "val").rglob("*.png"))
    ens_preds = api.predict(recipe, images, topk=3)
    member_preds = [api.predict(run, images, topk=3) for run in two_runs]
    correct = 0
    for e, p0, p1 in zip(ens_preds, *member_preds, strict=True):
        probs = {name: 2 / 3 * dict(p0.top)[name] + 1 / 3 * dict(p1.top)[name] for name in loaded.class_names}
        assert dict(e.top) == pytest.approx(probs, abs=1e-5)
        correct += e.top[0][0] == Path(e.path).parent.name
    assert metrics["accuracy"] == pytest.approx(correct / len(images))

    # benchmark: the generic harness measures it like any module.
    bench = benchmark_module(loaded.model, loaded.model_id, BenchmarkRequest(input_size=(32, 32), threads=1, warmup=1, min_repeats=3, min_seconds=0.0))
    assert bench.params == sum(sum(p.numel() for p in m.model.parameters()) for m in loaded.members)
    assert bench.latency_ms_p50 > 0 and bench.model_id == "ensemble:ens"

    # The command line takes the recipe where it takes a run.
    out = CliRunner().invoke(cli, ["eval", str(recipe)], catch_exceptions=False).output
    assert "accuracy@m0" in out and "accuracy@m1" in out and f"accuracy: {metrics['accuracy']:.4f}" in out
    out = CliRunner().invoke(cli, ["predict", str(recipe), str(images[0])], catch_exceptions=False).output
    assert out.startswith(f"{images[0]}: {ens_preds[0].top[0][0]} {ens_preds[0].top[0][1]:.3f}")


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_an_ensemble_exports_like_one_model(two_runs: list[Path], shapes_root: Path, tmp_path: Path) -> None:
    import numpy as np
    import onnxruntime

    loaded = api.load_trained(write_ensemble(tmp_path / "ens.yaml", shapes_root, two_runs))
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        reference = loaded.model(x)
        traced = torch.jit.trace(loaded.model, torch.rand(1, 3, 32, 32))
        assert torch.allclose(traced(x), reference, atol=1e-5)
    path = tmp_path / "ens.onnx"
    torch.onnx.export(loaded.model, (torch.rand(1, 3, 32, 32),), str(path), input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}}, dynamo=False)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {"x": x.numpy()})[0]
    assert np.abs(out - reference.numpy()).max() < 1e-4


def test_members_with_another_normalisation_are_fed_their_own(two_runs: list[Path], shapes_root: Path, tmp_path: Path) -> None:
    """A member whose checkpoint says mean/std 0.5 is re-normalised inside the ensemble: scored
    as a member it gives exactly what it gives evaluated on its own."""

    def half(ckpt: dict) -> None:
        ckpt["preprocessing"]["mean"] = [0.5, 0.5, 0.5]
        ckpt["preprocessing"]["std"] = [0.5, 0.5, 0.5]

    other = altered(two_runs[1], tmp_path / "half.pt", half)
    recipe = write_ensemble(tmp_path / "ens.yaml", shapes_root, [two_runs[0], other])
    loaded = api.load_trained(recipe)
    assert isinstance(loaded.model.adapters[0], nn.Identity) and isinstance(loaded.model.adapters[1], Renormalise)
    row = api.evaluate(recipe)["members"][1]
    alone = api.evaluate(other)
    assert row["name"] == "half" and row["accuracy"] == alone["accuracy"]
    assert row["val_loss"] == pytest.approx(alone["val_loss"], abs=1e-4)


def test_relative_members_are_found_beside_the_recipe(two_runs: list[Path], shapes_root: Path) -> None:
    folder = two_runs[0].parent
    recipe = write_ensemble(folder / "ens.yaml", shapes_root, [two_runs[0].name, f"{two_runs[1].name}/checkpoints/last.pt"])
    loaded = api.load_trained(recipe)
    assert loaded.member_names == ["m0", "m1/last"]


def test_the_competition_ensemble_recipe_evaluates_its_runs(two_runs: list[Path], shapes_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """recipes/competition_ensemble.yaml as shipped: its relative members are found from the
    current directory, and --set ensemble.members=[...] points it at other runs."""
    import shutil

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "competition_ensemble.yaml"
    for run, name in zip(two_runs, ("competition", "competition-seed1"), strict=True):
        shutil.copytree(run, tmp_path / "runs" / "classification" / name)
    monkeypatch.chdir(tmp_path)
    data = f"data.root={shapes_root}"
    out = CliRunner().invoke(cli, ["eval", str(recipe), "--set", data], catch_exceptions=False).output
    assert "accuracy@competition:" in out and "accuracy@competition-seed1:" in out, out
    members = f"ensemble.members=[{two_runs[1]},{two_runs[0]}]"
    metrics = api.evaluate(recipe, [data, members])
    assert [r["name"] for r in metrics["members"]] == ["m1", "m0"] and metrics["num_samples"] == 18


def test_ensemble_errors_name_the_member_and_the_fix(two_runs: list[Path], shapes_root: Path, tmp_path: Path) -> None:
    run0, run1 = two_runs

    def expect(error: type[Exception], pattern: str, members: list[Any], weights: list[float] | None = None, **extra: Any) -> None:
        path = write_ensemble(tmp_path / "e.yaml", shapes_root, members, weights, **extra)
        with pytest.raises(error, match=pattern):
            api.load_trained(path)

    reordered = altered(run1, tmp_path / "reordered.pt", lambda c: c.update(class_names=list(reversed(c["class_names"]))))
    expect(RunError, r"predicts \['triangle', 'square', 'circle'\].*same order", [run0, reordered])
    bigger = altered(run1, tmp_path / "bigger.pt", lambda c: c["recipe"]["data"].update(image_size=48))
    expect(RunError, r"takes \(48, 48\) px images.*share their input size", [run0, bigger])
    segmenter = altered(run1, tmp_path / "seg.pt", lambda c: c.update(task="segmentation"))
    expect(RunError, "is a segmentation model", [run0, segmenter])
    expect(RunError, "'nowhere' not found", [run0, "nowhere"])
    expect(ConfigError, "is a recipe", [run0, tmp_path / "other.yaml"])
    expect(ConfigError, r"have weight 0.*remove them", [run0, run1], [1.0, 0.0])
    expect(ConfigError, "has task 'segmentation'", [run0, run1], task="segmentation")
    expect(ConfigError, "sets data.image_size 64", [run0, run1], data={"image_size": 64})
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump(tiny_recipe(shapes_root, tmp_path)))
    with pytest.raises(ConfigError, match="has no ensemble section.*visiontl run"):
        api.load_trained(plain)
    # an ensemble recipe has nothing to train: run refuses it instead of training model.id
    with pytest.raises(ConfigError, match="ensemble section.*nothing to train"):
        api.run(write_ensemble(tmp_path / "e.yaml", shapes_root, [run0, run1]))
