"""The selection engine: scenarios as properties, constraints, fits, speed, no torch."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from visiontl import select
from visiontl.cards import Figure, MacProfile, ModelCard
from visiontl.cli import cli
from visiontl.config.loader import validate_recipe
from visiontl.errors import ConfigError
from visiontl.selection.engine import pareto_front
from visiontl.selection.latency import FEATURES, fit, nnls


def _assert_respects(selection) -> None:
    for c in selection.candidates:
        if c.latency_ms is not None:
            assert c.latency_ms <= selection.budget_ms, c
        if c.size_mb is not None:
            assert c.size_mb <= selection.constraints["max_size_mb"], c
        if selection.constraints["max_params_m"] is not None:
            assert c.params_m <= selection.constraints["max_params_m"], c


def test_small_data_server_accuracy_first_is_an_efficientnet_b0_class_model_with_feature_extraction():
    s = select("classification", "server", images=3000, priority="accuracy")
    best = s.best
    assert best is not None
    assert best.params_m <= 12 and best.metric.value >= 77 and best.latency_ms <= s.budget_ms
    assert "mobile" in best.card.tags or best.card.arch in ("efficientnet", "mobilenetv4", "regnety")
    assert s.advice.strategy == "feature_extraction" and s.advice.augmentation == "strong"
    _assert_respects(s)


def test_phone_at_30_fps_is_mobilenet_class_fine_tuned_and_int8():
    s = select("classification", "mobile", images=30_000)
    best = s.best
    assert best is not None and "mobile" in best.card.tags
    assert best.params_m <= 10 and best.latency_ms <= 33
    assert s.advice.strategy == "progressive"
    assert s.advice.precision == "int8" and any("int8" in r for r in s.advice.reasons)
    _assert_respects(s)


def test_competition_in_the_cloud_is_large_models_full_fine_tuning_and_an_ensemble():
    s = select("classification", "cloud", images=100_000, priority="accuracy")
    top = s.candidates[:3]
    assert all(c.params_m >= 20 and c.metric.value >= 83 for c in top)
    assert s.advice.strategy == "full" and s.advice.ensemble
    assert s.advice.regularisation["loss.label_smoothing"] > 0
    _assert_respects(s)


def test_real_time_detection_on_a_phone_is_a_yolov8n_s_class_model():
    s = select("detection", "mobile")
    best = s.best
    assert best is not None and best.card.arch == "yolov8" and best.params_m <= 12
    assert best.latency_ms <= s.budget_ms == 50 and best.metric.name == "box_map"
    assert s.constraints["priority"] == "latency"
    _assert_respects(s)


def test_edge_segmentation_is_a_mobilenet_class_encoder_with_a_light_head():
    s = select("segmentation", "edge")
    best = s.best
    assert best is not None and "mobile" in best.card.tags
    assert best.card.arch in ("lraspp", "deeplabv3plus", "deeplabv3")
    assert best.metric.name == "encoder_top1" and "proxy" in best.reasons
    _assert_respects(s)


def test_constraints_filter_and_the_closest_rejections_say_why():
    s = select("classification", "server", images=10_000, max_params_m=4, min_metric=70)
    assert s.candidates and all(c.params_m <= 4 and c.metric.value >= 70 for c in s.candidates)
    assert s.rejected and all(("M params" in r.reason) or ("budget" in r.reason) or ("top1" in r.reason) for r in s.rejected)
    line = s.candidates[0].reasons
    assert "predicted" in line and "M params" in line and "ImageNet top-1" in line
    # the figure's source, whole (a repository path or a URL)
    assert "huggingface/pytorch-image-models@" in line or "https://github.com/pytorch/vision" in line


def test_unknown_target_and_priority_are_clear_errors():
    with pytest.raises(ConfigError, match="Did you mean 'server'"):
        select("classification", "sever")
    with pytest.raises(ConfigError, match="priority"):
        select("classification", "server", priority="fast")


def test_local_target_needs_calibration(monkeypatch, tmp_path):
    monkeypatch.setenv("VISIONTL_CACHE_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match="--calibrate"):
        select("classification", "local")


def test_pareto_front():
    pts = [(80, 10, 5), (79, 12, 5), (82, 20, 9), (80, 10, 6)]
    assert pareto_front(pts) == [True, False, True, False]


def test_nnls_recovers_non_negative_coefficients():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, (30, 4))
    x = np.array([1.0, 0.0, 2.5, 0.3])
    assert np.allclose(nnls(a, a @ x), x, atol=1e-6)
    got = nnls(a, a @ np.array([-1.0, 2.0, 0.0, 0.0]))
    assert (got >= 0).all()


def test_fit_predicts_held_out_models_from_their_profiles():
    def profile(macs, dw, layers):
        return MacProfile(macs=macs * 1e9, dense=(macs - dw) * 1e9, depthwise=dw * 1e9, layers=layers, activations=layers * 1e5)

    truth = lambda p: 1.0 + 0.05 * p.layers + 3.0 * p.dense / 1e9 + 20.0 * p.depthwise / 1e9  # noqa: E731
    pairs = [(profile(m, d, n), 0) for m, d, n in [(0.1, 0.05, 50), (0.4, 0.1, 80), (1.8, 0, 21), (4.1, 0, 54), (0.3, 0.02, 60), (2.9, 0, 120), (0.6, 0.2, 100)]]
    pairs = [(p, truth(p)) for p, _ in pairs]
    model = fit(pairs, "t", "test")
    held = profile(1.0, 0.1, 70)
    assert model.predict(held) == pytest.approx(truth(held), rel=0.05)
    assert set(model.coefficients) == set(FEATURES)


def test_committed_latency_fits_match_the_catalogue():
    from visiontl.selection.fit import FITS, all_cards, fit_all

    committed = json.loads(FITS.read_text())
    refit = fit_all(all_cards())
    assert set(committed) == set(refit)
    for key in refit:
        assert refit[key]["samples"] == committed[key]["samples"]
        for name, value in refit[key]["coefficients"].items():
            assert value == pytest.approx(committed[key]["coefficients"][name], rel=1e-6, abs=1e-9), (key, name)


def test_timm_catalogue_is_current():
    import timm
    import torch

    from visiontl.selection.profile import mac_profile
    from visiontl_timm.catalogue import cards

    catalogue = {c.id: c for c in cards()}
    assert len(catalogue) >= 30
    for name in ("resnet18", "efficientnet_b0", "vit_tiny_patch16_224"):
        card = catalogue[f"timm:{name}"]
        with torch.device("meta"):
            params = sum(p.numel() for p in timm.create_model(name).parameters()) / 1e6
        assert card.params_m == pytest.approx(params, abs=1e-3)
        assert card.profile == mac_profile(lambda n=name: timm.create_model(n), card.input_size)
        assert card.metric("top1").source.startswith("huggingface/pytorch-image-models@")



def test_cli_json_and_write_recipe(tmp_path, shapes_root):
    path = tmp_path / "chosen.yaml"
    result = CliRunner().invoke(cli, ["select", "--target", "mobile", "--data", str(shapes_root), "--json", "--write-recipe", str(path)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["data"]["images"] == 36 and out["data"]["classes"] == 3 and out["data"]["min_per_class"] == 12
    assert out["advice"]["strategy"] == "feature_extraction"
    recipe = validate_recipe(yaml.safe_load(path.read_text()))
    assert recipe.model.id == out["candidates"][0]["id"] and recipe.strategy.name == "feature_extraction"
    assert path.read_text().startswith("# Written by: visiontl select")


def test_measure_reranks_by_measured_latency():
    from visiontl.selection.measure import measure

    cards = [c for c in __import__("visiontl_timm.catalogue", fromlist=["cards"]).cards() if c.id in ("timm:lcnet_050", "timm:mobilenetv3_small_100")]
    s = select("classification", "server", candidates=cards)
    start = time.perf_counter()
    s = measure(s, threads=1, min_seconds=0.2)
    assert time.perf_counter() - start < 30
    assert all(c.measured_ms is not None and c.measured_ms > 0 for c in s.candidates)
    assert any("measured" in n and "1 threads" in n for n in s.notes)
    assert all(c.reasons.startswith("measured") for c in s.candidates)


def test_calibrate_caches_a_local_model(monkeypatch, tmp_path):
    from visiontl.selection import calibrate as cal
    from visiontl_timm.catalogue import cards

    monkeypatch.setenv("VISIONTL_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cal, "REFERENCE_MODELS", ("timm:lcnet_050", "timm:mobilenetv3_small_100", "timm:resnet18", "timm:regnety_002"))
    monkeypatch.setattr(cal, "measure_cards", lambda chosen, threads=None, min_seconds=1.0: {c.id: 1.0 + c.profile.macs / 1e8 for c in chosen})
    model = cal.calibrate(cards(), threads=1)
    assert cal.cache_path().is_file() and model.fit_error < 0.05
    s = select("classification", "local")
    assert s.candidates and s.candidates[0].latency_basis.startswith("calibrated here")


def test_figures_keep_their_provenance():
    from visiontl.catalogue import catalogue

    for card in catalogue(task="classification"):
        for figure in (*card.metrics, *card.latencies):
            assert isinstance(figure, Figure) and figure.source, (card.id, figure)
        assert isinstance(card, ModelCard)


def _card(card_id: str, *figures: Figure, macs: float = 3e8) -> ModelCard:
    profile = MacProfile(macs=macs, dense=macs, depthwise=0.0, layers=50, activations=5e6)
    return ModelCard(id=card_id, tasks=("classification",), params_m=5.0, metrics=figures, profile=profile)


def test_a_cifar10_top1_is_shown_as_such_and_never_ranked_as_imagenet():
    cifar_url = "https://example.org/papers/cifar10-results-table-with-a-long-address#model-b"
    cifar = _card("example:cifar_model", Figure("top1", 91.78, "CIFAR-10 test", cifar_url))
    imagenet = _card("example:imagenet_model", Figure("top1", 71.5, "ImageNet-1k val", "https://example.org/imagenet#model-a"))
    s = select("classification", "server", candidates=[cifar, imagenet], priority="accuracy")
    by_id = {c.id: c for c in s.candidates}
    assert [c.id for c in s.candidates] == ["example:imagenet_model", "example:cifar_model"]
    ranked, shown = by_id["example:imagenet_model"], by_id["example:cifar_model"]
    assert ranked.metric.value == 71.5 and "ImageNet top-1 71.5 (https://example.org/imagenet#model-a)" in ranked.reasons
    # The CIFAR-10 figure is no ImageNet figure: not the card's metric, shown for what it is,
    # with its whole source.
    assert shown.metric is None and shown.ranked_value == 0.0
    assert "ImageNet top-1 91.78" not in shown.reasons and "no published ImageNet top-1 figure" in shown.reasons
    assert f"top1 91.78 on CIFAR-10 test ({cifar_url}): another dataset, not ranked" in shown.reasons
    # --min-metric never counts it either.
    assert [c.id for c in select("classification", "server", candidates=[cifar, imagenet], min_metric=70).candidates] == ["example:imagenet_model"]


def test_select_advises_only_export_formats_that_exist():
    from visiontl.export.formats import FORMATS
    from visiontl.selection.targets import load_targets

    for name in load_targets():
        if name == "local":
            continue
        advice = select("classification", name, images=1000).advice
        assert advice.export and set(advice.export) <= set(FORMATS), (name, advice.export)
        assert advice.export_precision in {p for f in advice.export for p in FORMATS[f].precisions}
        assert not any("tflite" in r or "tensorrt" in r.lower() for r in advice.reasons), advice.reasons
    mobile = select("classification", "mobile", images=1000).advice
    assert mobile.export == ("onnx",) and mobile.export_precision == "int8"
    assert any("visiontl export RUN --format onnx --precision int8" in r for r in mobile.reasons)


def test_write_recipe_header_advises_an_existing_export(tmp_path, shapes_root):
    path = tmp_path / "mobile.yaml"
    result = CliRunner().invoke(cli, ["select", "--target", "mobile", "--data", str(shapes_root), "--write-recipe", str(path)])
    assert result.exit_code == 0, result.output
    header = [line for line in path.read_text().splitlines() if line.startswith("# Deploy:")]
    assert header == ["# Deploy: visiontl export RUN --format onnx --precision int8."]
    assert "tflite" not in path.read_text()


def test_select_without_measure_or_probe_does_not_import_torch_for_any_task():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from visiontl.selection.engine import select\n"
        "for task in ('classification', 'segmentation', 'detection'):\n"
        "    select(task, 'server')\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


def test_unknown_task_for_selection_has_did_you_mean():
    with pytest.raises(ConfigError, match="Did you mean 'segmentation'"):
        select("segmentaton", "server")

