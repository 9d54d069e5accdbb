"""Small things found while opening the engines to every task (issue 12), each pinned here:
relative ``--data`` paths of ``benchmark``/``eval`` resolve as recipes' do, and ``visiontl
models`` counts the buildable ids beyond the catalogue, not all of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import train_tiny_run
from visiontl.cli import cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, shapes_root: Path) -> Path:
    return train_tiny_run(tmp_path_factory, shapes_root, "paper_cuts", epochs=1)


def test_models_counts_only_the_ids_beyond_the_catalogue():
    from visiontl.catalogue import buildable_ids, catalogue

    result = CliRunner().invoke(cli, ["models", "--family", "smp"])
    assert result.exit_code == 0, result.output
    listed = {c.id for c in catalogue(family="smp")}
    every = {f"smp:{n}" for n in buildable_ids(family="smp")["smp"]}
    assert listed and listed <= every
    assert f"Buildable ids beyond the catalogue: smp {len(every - listed)} (visiontl models --all)" in result.output


def test_benchmark_data_resolves_a_relative_path_against_the_data_root(shapes_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the dataset is not under the working directory
    args = ["benchmark", "timm:resnet10t", "--input-size", "32", "--data", shapes_root.name, "--data-root", str(shapes_root.parent),
            "--limit", "4", "--threads", "1", "--warmup", "1", "--repeats", "2", "--min-seconds", "0", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output[result.output.index("{"):])
    assert data["rows"] and data["conditions"]["data"] == str(shapes_root.resolve())
    missing = CliRunner().invoke(cli, [*args[:4], "--data", "no_such_dataset", "--data-root", str(tmp_path)])
    assert missing.exit_code == 1 and "Dataset 'no_such_dataset' not found" in missing.output


def test_eval_data_resolves_a_relative_path_against_the_data_root(tiny_run, shapes_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["eval", str(tiny_run), "--data", shapes_root.name, "--data-root", str(shapes_root.parent), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["num_samples"] == 18 and 0.0 <= metrics["accuracy"] <= 1.0
