"""No file a user hands visiontl runs code: every place that reads a weights or checkpoint file
is given a crafted pickle whose loading would create a marker file, and the marker must never
appear. A real Ultralytics checkpoint still loads through the safe path; trusting a file is an
explicit, per-recipe opt-in that warns. Weight downloads honour proxies.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from click.testing import CliRunner

from conftest import tiny_recipe
from visiontl.cli import cli
from visiontl.contracts import BuildRequest
from visiontl.errors import RunError, WeightsError
from visiontl.ids import parse_model_id

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _RunsCommand:
    """Unpickling this runs ``touch MARKER``: what a crafted weights file does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch '{self.marker}'",))


def crafted(path: Path, marker: Path, *, layout: str = "visiontl", legacy: bool = False) -> Path:
    """A file shaped like a checkpoint of ``layout`` with a command inside."""
    evil = _RunsCommand(marker)
    payload: dict[str, Any] = {
        "visiontl": {"format": "visiontl-checkpoint", "version": 1, "model": evil, "recipe": {}},
        "state_dict": {"conv.weight": torch.zeros(1), "extra": evil},
        "ultralytics": {"model": evil, "ema": None, "epoch": -1, "train_args": {}},
    }[layout]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    out = tmp_path / "CODE_RAN"
    yield out
    assert not out.exists(), "a crafted file ran a command"


def build(model_id: str, task: str, weights: Path, **kwargs: Any) -> Any:
    from visiontl.plugin_manager import get_plugins

    plugins = get_plugins()
    request = BuildRequest(parse_model_id(model_id), task, 2, weights=weights, class_names=("a", "b"), **kwargs)
    return plugins.hook.visiontl_build(request=request)


# --------------------------------------------------------------------------- model.weights, every family

FAMILIES = [
    ("timm:resnet10t", "classification", {}),
    ("torchvision:squeezenet1_1", "classification", {}),
    ("torchvision:fasterrcnn", "detection", {"backbone": "torchvision:squeezenet1_1", "representation_size": 16}),
    ("torchvision:deeplabv3", "segmentation", {"backbone": "torchvision:squeezenet1_1", "channels": 8}),
    ("smp:unet-resnet18", "segmentation", {"decoder_channels": [16, 8, 8, 8, 8]}),
    ("ultralytics:yolov8n", "detection", {}),
]


@pytest.mark.parametrize(("model_id", "task", "options"), FAMILIES, ids=[f[0] for f in FAMILIES])
@pytest.mark.parametrize("layout", ["state_dict", "ultralytics"])
def test_model_weights_never_run_code(model_id, task, options, layout, tmp_path, marker):
    path = crafted(tmp_path / "w.pt", marker, layout=layout)
    with pytest.raises(WeightsError) as err:
        build(model_id, task, path, options=options)
    assert str(path) in str(err.value)


def test_legacy_pickle_format_is_refused_too(tmp_path, marker):
    path = crafted(tmp_path / "w.pt", marker, layout="ultralytics", legacy=True)
    for model_id, task, options in (FAMILIES[0], FAMILIES[-1]):
        with pytest.raises(WeightsError):
            build(model_id, task, path, options=options)


# --------------------------------------------------------------------------- Ultralytics


def test_ultralytics_refusal_names_what_the_file_asks_for_and_the_opt_in(tmp_path, marker):
    path = crafted(tmp_path / "best.pt", marker, layout="ultralytics")
    with pytest.raises(WeightsError) as err:
        build("ultralytics:yolov8n", "detection", path)
    text = str(err.value)
    assert "system" in text and "could run code" in text and "model.trust_weights" in text


def test_a_genuine_ultralytics_checkpoint_loads_without_the_full_unpickle(tmp_path, monkeypatch):
    import ultralytics.nn.tasks as tasks

    from visiontl_ultralytics.build import make_network
    from visiontl_ultralytics.names import SPECS

    net = make_network(SPECS["yolov8n"], 2)
    from ultralytics.cfg import get_cfg

    # Ultralytics' layout: the EMA network in half precision, its training arguments beside it
    ckpt = {"model": None, "ema": net.half(), "train_args": vars(get_cfg()), "epoch": 3, "date": "2026-01-01"}
    torch.save(ckpt, tmp_path / "last.pt")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the full unpickle was used")

    monkeypatch.setattr(tasks, "torch_safe_load", refuse)
    built = build("ultralytics:yolov8n", "detection", tmp_path / "last.pt")
    assert built.weights.loaded > 300 and not built.weights.reinitialised
    assert torch.equal(built.model.net.model[0].conv.weight, net.model[0].conv.weight.float())


def test_trusting_a_file_is_an_explicit_opt_in_that_warns(tmp_path, caplog):
    from fractions import Fraction

    from visiontl_ultralytics.build import make_network
    from visiontl_ultralytics.names import SPECS

    # benign, but outside the allow-list: refused unless trusted
    torch.save({"model": make_network(SPECS["yolov8n"], 2), "extra": Fraction(1, 3)}, tmp_path / "odd.pt")
    with pytest.raises(WeightsError, match="fractions.Fraction"):
        build("ultralytics:yolov8n", "detection", tmp_path / "odd.pt")
    built = build("ultralytics:yolov8n", "detection", tmp_path / "odd.pt", trust_weights=True)
    assert built.weights.loaded > 300
    assert any("trust_weights" in r.message and "runs any code" in r.message for r in caplog.records)


def test_recipe_and_cli_carry_the_opt_in(tmp_path, shapes_root):
    from visiontl.config.loader import load_recipe

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(shapes_root, tmp_path)))
    assert load_recipe(path).model.trust_weights is False
    assert load_recipe(path, ["model.trust_weights=true"]).model.trust_weights is True
    result = CliRunner().invoke(cli, ["run", "--help"])
    assert "--trust-weights" in result.output


def test_pretrained_yolo_is_never_taken_from_the_working_directory(tmp_path, monkeypatch, marker):
    from visiontl_ultralytics import build as build_module

    monkeypatch.setattr(build_module, "weights_dir", lambda: tmp_path / "weights")
    monkeypatch.chdir(tmp_path)
    crafted(tmp_path / "yolov8n.pt", marker, layout="ultralytics")  # planted where a user runs
    monkeypatch.setenv("VISIONTL_OFFLINE", "1")
    with pytest.raises(WeightsError) as err:
        from visiontl.plugin_manager import get_plugins

        get_plugins().hook.visiontl_build(request=BuildRequest(parse_model_id("ultralytics:yolov8n"), "detection", 2, pretrained=True))
    assert str(tmp_path / "weights") in str(err.value)  # it looked in the weights directory only


def test_pretrained_yolo_in_the_weights_directory_goes_through_the_safe_reader(tmp_path, monkeypatch, marker):
    from visiontl.plugin_manager import get_plugins
    from visiontl_ultralytics import build as build_module

    monkeypatch.setattr(build_module, "weights_dir", lambda: tmp_path / "weights")
    crafted(tmp_path / "weights" / "yolov8n.pt", marker, layout="ultralytics")
    with pytest.raises(WeightsError, match="Refusing to load"):
        get_plugins().hook.visiontl_build(request=BuildRequest(parse_model_id("ultralytics:yolov8n"), "detection", 2, pretrained=True))


# --------------------------------------------------------------------------- checkpoints of runs


def crafted_run(root: Path, marker: Path, data: Path | None = None) -> Path:
    """A run directory whose checkpoints are crafted (its recipe reads ``data``)."""
    run = root / "runs" / "classification" / "evil"
    for name in ("best.pt", "last.pt"):
        crafted(run / "checkpoints" / name, marker)
    recipe = tiny_recipe(data or root, root) if data else {"task": "classification", "model": {"id": "timm:resnet10t"}, "data": {"root": "x"}}
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return run


@pytest.mark.parametrize("command", ["eval", "predict", "benchmark", "export", "resume"])
def test_run_checkpoints_never_run_code(command, tmp_path, marker, shapes_root):
    run = crafted_run(tmp_path, marker, shapes_root)
    args = {
        "eval": ["eval", str(run)],
        "predict": ["predict", str(run), str(shapes_root / "val")],
        "benchmark": ["benchmark", str(run)],
        "export": ["export", str(run), "--format", "onnx"],
        "resume": ["run", "--resume", str(run)],
    }[command]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "checkpoint" in result.output.lower() or "evil" in result.output


def test_checkpoint_file_itself_is_refused(tmp_path, marker):
    from visiontl.train.checkpoint import load_checkpoint

    with pytest.raises(RunError):
        load_checkpoint(crafted(tmp_path / "c.pt", marker))
    with pytest.raises(RunError):
        load_checkpoint(crafted(tmp_path / "legacy.pt", marker, legacy=True))


def test_ensemble_members_and_teachers_never_run_code(tmp_path, marker, shapes_root):
    from visiontl import api
    from visiontl.config.loader import validate_recipe
    from visiontl.errors import VisiontlError

    run = crafted_run(tmp_path, marker)
    ensemble = tmp_path / "ensemble.yaml"
    recipe = tiny_recipe(shapes_root, tmp_path)
    ensemble.write_text(yaml.safe_dump({**recipe, "ensemble": {"members": [str(run), str(run)]}}))
    with pytest.raises(VisiontlError, match="evil"):
        api.load_trained(ensemble)
    student = validate_recipe(tiny_recipe(shapes_root, tmp_path, distill={"teacher": str(run)}, train={"epochs": 1}), "test")
    with pytest.raises(VisiontlError, match="evil"):
        api.run(student)


# --------------------------------------------------------------------------- proxies


class _RecordingProxy:
    """A loopback HTTP proxy that records CONNECT lines and answers 200 (no tunnel behind it)."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(4)
        self.server.settimeout(5)
        self.port = self.server.getsockname()[1]
        self.requests: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        for _ in range(4):  # bounded: a handful of probes at most
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = conn.recv(1024).decode(errors="replace")
                self.requests.append(data)
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")

    def close(self) -> None:
        self.server.close()
        self.thread.join(timeout=5)


@pytest.fixture
def proxy(monkeypatch):
    from visiontl import weights

    monkeypatch.setattr(weights, "_REACHABLE", {})
    for key in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(key, raising=False)
    server = _RecordingProxy()
    yield server
    server.close()


def test_probe_goes_through_a_configured_proxy(proxy, monkeypatch):
    from visiontl.weights import host_reachable, require_reachable

    monkeypatch.setenv("HTTPS_PROXY", f"http://user:secret@127.0.0.1:{proxy.port}")
    # the host does not resolve from here: only the proxy can say it is reachable
    assert host_reachable("weights.example.invalid") is True
    require_reachable("https://weights.example.invalid/m.pt", "m", fix="-")
    assert proxy.requests and proxy.requests[0].startswith("CONNECT weights.example.invalid:443 HTTP/1.1")
    assert "Proxy-Authorization: Basic dXNlcjpzZWNyZXQ=" in proxy.requests[0]


def test_no_proxy_bypasses_it_and_a_dead_proxy_is_named(proxy, monkeypatch):
    from visiontl import weights

    monkeypatch.setenv("https_proxy", f"127.0.0.1:{proxy.port}")
    monkeypatch.setenv("NO_PROXY", ".example.invalid")
    assert weights.proxy_for("https", "weights.example.invalid") is None
    assert weights.host_reachable("weights.example.invalid") is False  # direct: does not resolve
    assert proxy.requests == []
    monkeypatch.delenv("NO_PROXY")
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(WeightsError, match="through the proxy 127.0.0.1:9"):
        weights.require_reachable("https://weights.example.invalid/m.pt", "m", fix="-")
