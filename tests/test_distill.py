"""Knowledge distillation in the shared loop."""

from __future__ import annotations

import pytest
import torch

from conftest import tiny_recipe
from visiontl import api
from visiontl.config.loader import validate_recipe
from visiontl.errors import ConfigError
from visiontl.train.checkpoint import load_checkpoint


def run(recipe):
    return api.run(validate_recipe(recipe))


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory, shapes_root):
    out = tmp_path_factory.mktemp("teacher")
    recipe = tiny_recipe(shapes_root, out, strategy={"name": "full"}, train={"epochs": 3}, data={"image_size": 32}, output={"name": "teacher"})
    return run(recipe).run_dir


def test_student_learns_from_a_teacher_with_another_input_size(tmp_path, shapes_root, teacher_run):
    base = tiny_recipe(shapes_root, tmp_path, strategy={"name": "full"}, train={"epochs": 2}, data={"image_size": 48}, model={"id": "timm:resnet10t"})
    plain = run({**base, "output": {**base["output"], "name": "plain"}})
    taught = run({**base, "output": {**base["output"], "name": "taught"}, "distill": {"teacher": str(teacher_run), "temperature": 3.0, "weight": 0.7}})
    info = taught.summary["distillation"]
    assert info["teachers"] == [{"source": str(teacher_run), "weight": 1.0}] and info["temperature"] == 3.0
    assert "distillation" in taught.summary["feature_cache"]["all"] or taught.summary["feature_cache"]["all"].startswith("not cached")
    # Same seed, same data: only the distillation term differs, and it must change the result.
    a = load_checkpoint(plain.run_dir / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(taught.run_dir / "checkpoints" / "last.pt")["model"]
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())
    assert taught.result.history[0]["train_loss"] != plain.result.history[0]["train_loss"]


def test_ensemble_of_teachers(tmp_path, shapes_root, teacher_run):
    recipe = tiny_recipe(shapes_root, tmp_path, train={"epochs": 1}, distill={"ensemble": {"members": [str(teacher_run), str(teacher_run)], "weights": [3, 1]}, "weight": 1.0})
    outcome = run(recipe)
    assert [t["weight"] for t in outcome.summary["distillation"]["teachers"]] == [0.75, 0.25]
    assert outcome.summary["feature_cache"]["head"] == "not cached: distillation (the teacher sees the images)"


def test_teacher_with_other_classes_is_refused(tmp_path, shapes_root, teacher_run):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(shapes_root, other)
    shutil.rmtree(other / "train" / "triangle")
    shutil.rmtree(other / "val" / "triangle")
    with pytest.raises(ConfigError, match="same classes"):
        run(tiny_recipe(other, tmp_path, distill={"teacher": str(teacher_run)}))


def test_distill_section_needs_exactly_one_teacher():
    with pytest.raises(ConfigError, match="exactly one"):
        validate_recipe({"data": {"root": "x"}, "model": {"id": "timm:resnet10t"}, "distill": {"temperature": 2}})


class _Fixed(torch.nn.Module):
    """A teacher that records its input and returns fixed logits."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits
        self.seen: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x
        return self.logits


def test_the_loss_is_the_hand_computed_weighted_kl_and_teachers_see_their_own_input():
    from visiontl.contracts import Preprocessing
    from visiontl.train.distill import Distiller, Teacher

    student_pre = Preprocessing(input_size=(8, 8), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    teacher_pre = Preprocessing(input_size=(4, 4), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    t1 = _Fixed(torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]]))
    t2 = _Fixed(torch.tensor([[0.0, 1.0, 0.0], [1.0, -2.0, 3.0]]))
    d = Distiller([Teacher(t1, teacher_pre, 0.25, "a"), Teacher(t2, teacher_pre, 0.75, "b")], student_pre, temperature=2.0, weight=0.6)
    raw = torch.rand(2, 3, 8, 8)
    inputs = (raw - 0.5) / 0.5  # normalised as the student expects
    student = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    task_loss = torch.tensor(0.8)
    # by hand: the teachers' T-softened probabilities averaged by weight, KL(teacher || student_T) * T^2
    T = 2.0
    q = 0.25 * torch.softmax(t1.logits / T, 1) + 0.75 * torch.softmax(t2.logits / T, 1)
    log_p = torch.log_softmax(student / T, 1)
    kl = (q * (q.log() - log_p)).sum(1).mean() * T * T
    expected = 0.4 * task_loss + 0.6 * kl
    assert torch.allclose(d.loss(student, inputs, task_loss), expected, atol=1e-6)
    # each teacher saw the raw image, at its own size and normalisation
    assert t1.seen is not None and tuple(t1.seen.shape[-2:]) == (4, 4)
    resized = torch.nn.functional.interpolate(raw, size=(4, 4), mode="bilinear", align_corners=False, antialias=True)
    assert torch.allclose(t1.seen, resized, atol=1e-5)
