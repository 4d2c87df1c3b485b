"""What a training run is asked to do (TrainConfig, checked on construction), its limits, and where it runs."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch

from diffusion_core.models import build_model
from diffusion_core.models.guidance import is_conditional
from diffusion_core.process import process_from_config
from diffusion_core.process.gaussian import noise_diffusion_config
from diffusion_core.samplers import MAX_SAMPLES, validate_seed
from diffusion_core.training.coupling import validate_coupling
from diffusion_core.training.precision import PRECISIONS

MAX_EPOCHS = 10_000


MAX_BATCH = 4096


# allowed ranges of TrainConfig's integer fields (limit: when set); the CLI checks its arguments against them
INT_RANGES = {"epochs": (1, MAX_EPOCHS), "batch_size": (1, MAX_BATCH), "preview_n": (1, 64), "warmup": (0, 1_000_000),
              "fid_every": (0, MAX_EPOCHS), "fid_samples": (16, MAX_SAMPLES), "limit": (1, 10_000_000)}


LR_DECAYS = ("none", "cosine")


def check_whole_fields(config: object, ranges: dict[str, tuple[int, int]]) -> None:
    """ValueError naming the first of `ranges`' fields of `config` that is not a whole number in its (lo, hi);
    a field "limit" may also be None (no limit)."""
    for name, (lo, hi) in ranges.items():
        value = getattr(config, name)
        if name == "limit" and value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"{name} must be an integer between {lo} and {hi}; got {value!r}")


class TrainingError(RuntimeError):
    """Training stopped for a reason the user must act on (the message says which)."""


def machine_name(device: torch.device) -> str:
    """What trained a run, for its card: the GPU's name, or the CPU's model name and threads."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    from diffusion_core.evaluation.noisy_classifier import cpu_name

    return cpu_name()


@dataclass
class TrainConfig:
    diffusion: dict = field(default_factory=lambda: noise_diffusion_config(kind="linear", beta1=1e-4, beta2=0.02,
                                                                           T=1000))
    model: dict = field(default_factory=lambda: {"arch": "cnn", "params": {}})
    dataset: str = "mnist"
    data_root: str | None = None
    download: bool = True
    limit: int | None = None  # train on the first `limit` images only (quick runs)
    epochs: int = 100
    batch_size: int = 128
    lr: float = 2e-4
    warmup: int = 0  # optimiser steps of linear learning-rate warm-up from 0
    lr_decay: str = "none"  # "cosine": the rate falls as a half cosine to 0 at the run's last step
    seed: int = 0
    ema_decay: float | None = None
    device: str = "auto"
    sample_epochs: list[int] | None = None  # None: every 10th epoch and the last
    precision: str = "auto"  # bf16 autocast where native (see precision.py), else fp32
    fid_every: int = 0  # epochs between classifier-FID measurements (0: never); see fid_monitor.py
    fid_samples: int = 256
    init_from: str | None = None  # a checkpoint whose weights start the run (same architecture)
    label_dropout: float = 0.1  # class-conditional models: P(label → none), for classifier-free guidance
    preview_n: int = 16
    # reflow / one-step distillation: train on a flow teacher's own (noise, sample) pairs (training/coupling.py)
    coupling: dict | None = None

    def validate(self) -> None:
        """Raise ValueError naming the first out-of-range field and its allowed range."""
        check_whole_fields(self, INT_RANGES)
        validate_seed(self.seed)
        if not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or not 0 < self.lr <= 1:
            raise ValueError(f"lr must be a number with 0 < lr ≤ 1; got {self.lr!r}")
        if self.lr_decay not in LR_DECAYS:
            raise ValueError(f"lr_decay must be one of {', '.join(LR_DECAYS)}; got {self.lr_decay!r}")
        if self.ema_decay is not None and not (isinstance(self.ema_decay, float) and 0 < self.ema_decay < 1):
            raise ValueError(f"ema_decay must be between 0 and 1 (e.g. 0.999), or None; got {self.ema_decay!r}")
        if isinstance(self.label_dropout, bool) or not isinstance(self.label_dropout, (int, float)) \
                or not 0 <= self.label_dropout < 1:
            raise ValueError(f"label_dropout must be a number with 0 ≤ p < 1 (e.g. 0.1); got {self.label_dropout!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}")
        if self.device not in ("auto", "cpu", "cuda", "mps"):
            raise ValueError(f"device must be auto, cpu, cuda or mps; got {self.device!r}")
        process = process_from_config(self.diffusion)  # raises for unknown types / parameters
        if is_conditional(build_model(self.model)):  # raises for unknown architectures / parameters
            if not process.takes_labels:
                raise ValueError("a class-conditional model needs Gaussian-noise diffusion; cold restorers take "
                                 "no label (drop --conditional)")
            if self.dataset not in ("mnist", "fashion-mnist") or self.model.get("params", {}).get("num_classes") != 10:
                raise ValueError("num_classes must be 10: the dataset's labels are the digits 0–9")
            if self.coupling is not None:
                raise ValueError("a teacher's (noise, sample) pairs carry no label: reflow trains an unconditional "
                                 "model (drop --conditional)")
        if self.coupling is not None:
            validate_coupling(self.coupling)
            process.coupled()  # ValueError unless this run trains a flow

    def epochs_to_sample(self) -> set[int]:
        if self.sample_epochs is not None:
            return {e for e in self.sample_epochs if 1 <= e <= self.epochs}
        return {e for e in range(10, self.epochs + 1, 10)} | {self.epochs}

    def epochs_to_measure(self) -> set[int]:
        if not self.fid_every:
            return set()
        return set(range(self.fid_every, self.epochs + 1, self.fid_every)) | {self.epochs}

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown training config field(s) {sorted(unknown)}")
        return cls(**d)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available; use --device auto or cpu")
    return torch.device(name)
