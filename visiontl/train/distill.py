"""Knowledge distillation in the shared loop: the student also matches a teacher's softened
class probabilities (Hinton et al., 2015).

    loss = (1 - weight) * task_loss(student, labels)
           + weight * T^2 * KL(softmax(teacher / T) || softmax(student / T))

The teacher is a trained visiontl run or checkpoint, or an ensemble of them (their softened
probabilities averaged, weighted). It sees the student's batch converted to its own input
convention: un-normalised with the student's mean/std, resized to its input size,
re-normalised with its own mean/std.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from visiontl.config.schema import DistillSection
from visiontl.contracts import Preprocessing
from visiontl.errors import ConfigError


@dataclass
class Teacher:
    model: torch.nn.Module
    preprocessing: Preprocessing
    weight: float
    source: str


class Distiller:
    """Computes the distillation loss for a batch of the student's inputs and logits."""

    def __init__(self, teachers: list[Teacher], student: Preprocessing, temperature: float, weight: float) -> None:
        self.teachers = teachers
        self.student = student
        self.temperature = temperature
        self.weight = weight

    @classmethod
    def from_section(cls, section: DistillSection, class_names: list[str], task: str, student: Preprocessing, device: torch.device) -> Distiller:
        """Load the teacher(s) named by a recipe's ``distill`` section."""
        from visiontl.trained import load_trained

        if task != "classification":
            raise ConfigError(f"distill is available for classification, not '{task}'.", fix="remove the distill section")
        if section.teacher is not None:
            paths, weights = [section.teacher], [1.0]
        else:
            assert section.ensemble is not None
            paths = list(section.ensemble.members)
            weights = list(section.ensemble.weights or [1.0] * len(paths))
        total = sum(weights)
        teachers = []
        for path, w in zip(paths, weights, strict=True):
            loaded = load_trained(Path(path))
            if loaded.task != "classification" or list(loaded.class_names) != list(class_names):
                raise ConfigError(
                    f"Teacher '{path}' predicts {loaded.class_names} ({loaded.task}); the student's classes are {class_names}.",
                    fix="distil from a classifier trained on the same classes, in the same order",
                )
            model = loaded.model.to(device).eval()
            for p in model.parameters():
                p.requires_grad_(False)
            teachers.append(Teacher(model, loaded.preprocessing, w / total, str(path)))
        return cls(teachers, student, section.temperature, section.weight)

    def _teacher_input(self, x: torch.Tensor, teacher: Preprocessing) -> torch.Tensor:
        s, t = self.student, teacher
        if s.mean != t.mean or s.std != t.std:
            mean_s = x.new_tensor(s.mean).view(1, 3, 1, 1)
            std_s = x.new_tensor(s.std).view(1, 3, 1, 1)
            raw = x * std_s + mean_s
            x = (raw - x.new_tensor(t.mean).view(1, 3, 1, 1)) / x.new_tensor(t.std).view(1, 3, 1, 1)
        if tuple(x.shape[-2:]) != tuple(t.input_size):
            x = F.interpolate(x, size=t.input_size, mode="bilinear", align_corners=False, antialias=True)
        return x

    @torch.no_grad()
    def teacher_probs(self, inputs: torch.Tensor) -> torch.Tensor:
        """The teachers' softened class probabilities, averaged by weight."""
        probs: torch.Tensor | None = None
        for teacher in self.teachers:
            logits = teacher.model(self._teacher_input(inputs, teacher.preprocessing)).float()
            p = F.softmax(logits / self.temperature, dim=1) * teacher.weight
            probs = p if probs is None else probs + p
        assert probs is not None
        return probs

    def loss(self, student_logits: torch.Tensor, inputs: torch.Tensor, task_loss: torch.Tensor) -> torch.Tensor:
        """The combined loss for one batch."""
        t = self.temperature
        log_p = F.log_softmax(student_logits.float() / t, dim=1)
        kd = F.kl_div(log_p, self.teacher_probs(inputs), reduction="batchmean") * (t * t)
        return (1.0 - self.weight) * task_loss + self.weight * kd

    def describe(self) -> dict[str, Any]:
        return {
            "teachers": [{"source": t.source, "weight": t.weight} for t in self.teachers],
            "temperature": self.temperature,
            "weight": self.weight,
        }
