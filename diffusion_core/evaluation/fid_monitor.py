"""Cheap classifier-FID during training (the report's Figures 5 and 10).

Every `fid_every` epochs the trainer draws `n` samples with the objective's fast preview sampler
(20 DDIM steps for noise models, 50 improved steps for cold ones) and measures their FID against the
dataset's held-out split with the shipped MNIST classifier. A few hundred samples keep it to seconds;
the value is higher than at 1,000 samples (see the classifier card's FID scale), so compare curves
with each other, not with the shipped models' cards.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from diffusion_core.evaluation.metrics import ReferenceStats, evaluate_samples, fid_scale, reference_stats
from diffusion_core.io.checkpoints import CheckpointError
from diffusion_core.io.data import DatasetUnavailableError, load_dataset
from diffusion_core.io.images import to_unit_numpy


class FIDMonitor:
    def __init__(self, dataset: str, n: int, seed: int, data_root: str | None = None, download: bool = True,
                 classifier_path: str | None = None) -> None:
        self.dataset, self.n, self.seed = dataset, n, seed
        self.data_root, self.download, self.classifier_path = data_root, download, classifier_path
        self._classifier: nn.Module | None = None
        self._reference: ReferenceStats | None = None
        self.floor: float | None = None  # FID of n held-out real digits (a seeded draw, as `evaluate --scale`)
        self.unavailable: str | None = None if dataset == "mnist" else (
            f"FID during training needs MNIST (the classifier knows digits, not {dataset})")

    def _prepare(self) -> bool:
        if self.unavailable is not None:
            return False
        if self._reference is None:
            from diffusion_core.evaluation.classifier import load_classifier

            try:
                self._classifier = load_classifier(self.classifier_path)
                held = load_dataset("mnist", "test", root=self.data_root, download=self.download)
                real = load_dataset("mnist", "train", root=self.data_root, download=self.download)
            except (CheckpointError, DatasetUnavailableError) as exc:
                self.unavailable = f"FID during training is off: {exc}"
                return False
            self._reference = reference_stats(self._classifier, to_unit_numpy(held.images))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                self.floor = fid_scale(self._classifier, self._reference, to_unit_numpy(real.images), self.n,
                                       self.seed)["floor"]
        return True

    def __call__(self, objective, model: nn.Module, device: torch.device | str) -> dict | None:
        """{"fid", "fid_floor", "confident_fraction", "class_entropy"} of n fresh samples (the floor: n real
        digits), or None when unavailable."""
        if not self._prepare():
            return None
        samples = to_unit_numpy(objective.preview(model, self.n, self.seed, device))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            m = evaluate_samples(samples, self._classifier, self._reference)
        return {"fid": m["fid"], "fid_floor": self.floor, "confident_fraction": m["confident_fraction"],
                "class_entropy": m["class_entropy"]}
