"""CAM-in-mask scores follow the run's class map: on a multi-class mask the explained class's
own pixels are the object, not "everything but 0 and 255"."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from visiontl.config.loader import validate_recipe
from visiontl.explain.score import ObjectRule, score_result

# A 3-class street-like mask, stored with panoptic-style ids: 0 road, 7 car, 9 sky, 255 void.
STORED = np.zeros((4, 6), dtype=np.uint8)
STORED[1:3, 1:3] = 7  # the car: 4 pixels
STORED[0, :] = 9  # the sky
STORED[3, 5] = 255  # void
CAM = np.arange(24, dtype=np.float64).reshape(4, 6) / 23.0


def result(class_name: str) -> SimpleNamespace:
    """A CamResult stand-in whose frame is the image itself."""
    peak = np.unravel_index(int(np.argmax(CAM)), CAM.shape)
    return SimpleNamespace(cam=CAM, peak=peak, class_name=class_name,
                           prepared=SimpleNamespace(frame=lambda img, nearest=True: img))


def segmentation_run(**data) -> SimpleNamespace:
    recipe = validate_recipe({"task": "segmentation", "model": {"id": "torchvision:deeplabv3"},
                              "data": {"root": "x", "format": "masks", **data}}, "test")
    return SimpleNamespace(task="segmentation", recipe=recipe, class_names=["road", "car", "sky"])


def test_the_explained_class_is_the_object_by_hand():
    rule = ObjectRule.for_model(segmentation_run(value_map={0: 0, 7: 1, 9: 2}))
    energy, area, peak_inside = score_result(result("car"), STORED, rule)
    car = STORED == 7
    assert energy == pytest.approx(CAM[car].sum() / CAM.sum())
    assert area == pytest.approx(4 / 24)
    assert peak_inside is False  # the CAM peaks in the bottom-right corner (void)
    # the binary rule (every value but 0 and 255) counted the sky as "object" too
    old_energy, old_area, _ = score_result(result("car"), STORED, None)
    assert old_area == pytest.approx((4 + 6) / 24) and old_energy != pytest.approx(energy)
    # another class explained: its own pixels
    sky_energy, sky_area, _ = score_result(result("sky"), STORED, rule)
    assert sky_area == pytest.approx(6 / 24) and sky_energy == pytest.approx(CAM[0].sum() / CAM.sum())


def test_explicit_values_win_and_other_runs_keep_the_binary_rule():
    explicit = ObjectRule.for_model(segmentation_run(value_map={0: 0, 7: 1, 9: 2}), object_values=[7, 9])
    _, area, _ = score_result(result("car"), STORED, explicit)
    assert area == pytest.approx(10 / 24)
    classifier = SimpleNamespace(task="classification", recipe=None, class_names=["a", "b"])
    assert ObjectRule.for_model(classifier) == ObjectRule()
    with pytest.raises(ValueError, match="not one of the run's classes"):
        score_result(result("bus"), STORED, ObjectRule.for_model(segmentation_run(value_map={0: 0, 7: 1, 9: 2})))


def test_cli_refuses_malformed_object_values(tmp_path):
    from click.testing import CliRunner

    from visiontl.cli import cli

    res = CliRunner().invoke(cli, ["explain", str(tmp_path), str(tmp_path), "--object-values", "car"])
    assert res.exit_code == 1 and "--object-values 'car'" in res.output and "Traceback" not in res.output
