"""A noise-aware MNIST classifier p(y | z_t, t) for classifier guidance (Dhariwal & Nichol 2021): the shipped
classifier's convolutional stages with the noise level t/T added to every stage (a learned per-channel shift of
sinusoidal features of t/T), trained on z_t = √ᾱ_t·x + √(1−ᾱ_t)·ε of the report's default schedule at t drawn
uniformly from 0..T.

Its checkpoint is a classifier checkpoint (evaluation/classifier.py's format and validation) whose model is
{"arch": "mnist-cnn-noisy", "params": {...}} and whose "diffusion" field names the schedule it was trained on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from diffusion_core.process.gaussian import q_sample
from diffusion_core.process.schedules import NoiseSchedule, preset_schedule

ARCH = "mnist-cnn-noisy"
SHIPPED_NAME = "noisy-classifier"
TIME_FEATURES = 16


DATA_VAR = 0.3**2  # the variance of MNIST pixels in data space (about 0.31²)


class NoisyClassifier(nn.Module):
    """logits = g(c_in·z_t, t/T): two conv stages as MNISTClassifier, each block shifted by an embedding of t/T;
    c_in = 1/√(ᾱ_t·DATA_VAR + 1 − ᾱ_t) brings z_t to unit variance at every t (without it, training on all t
    at once stalls at chance)."""

    def __init__(self, channels: tuple[int, int] | list[int] = (32, 64), feature_dim: int = 128,
                 num_classes: int = 10, schedule: NoiseSchedule | None = None) -> None:
        super().__init__()
        c1, c2 = list(channels)
        schedule = schedule or preset_schedule("default")
        self.register_buffer("alpha_bars", schedule.alpha_bars.float().clone(), persistent=False)
        self.T = schedule.T
        self.register_buffer("freqs", torch.exp(torch.linspace(0, math.log(1000.0), TIME_FEATURES // 2)),
                             persistent=False)
        self.convs = nn.ModuleList([nn.Conv2d(1, c1, 3, padding=1), nn.Conv2d(c1, c1, 3, padding=1),
                                    nn.Conv2d(c1, c2, 3, padding=1), nn.Conv2d(c2, c2, 3, padding=1)])
        self.shifts = nn.ModuleList([nn.Linear(TIME_FEATURES, c) for c in (c1, c1, c2, c2)])
        self.norms = nn.ModuleList([nn.GroupNorm(8, c) for c in (c1, c1, c2, c2)])
        self.fc = nn.Linear(c2 * 7 * 7, feature_dim)
        self.head = nn.Linear(feature_dim, num_classes)
        self.num_classes = num_classes

    def forward(self, z: torch.Tensor, t_frac: torch.Tensor) -> torch.Tensor:
        angles = t_frac.float().view(-1, 1) * self.freqs
        emb = torch.cat([angles.sin(), angles.cos()], dim=1)
        ab = self.alpha_bars[(t_frac.float() * self.T).round().long().clamp(0, self.T)].view(-1, 1, 1, 1)
        h = z / (ab * DATA_VAR + 1 - ab).sqrt()
        for i, (conv, shift, norm) in enumerate(zip(self.convs, self.shifts, self.norms, strict=True)):
            h = F.silu(norm(conv(h)) + shift(emb)[:, :, None, None])
            if i in (1, 3):
                h = F.max_pool2d(h, 2)
        return self.head(F.silu(self.fc(h.flatten(1))))


@dataclass
class NoisyTrainResult:
    model: NoisyClassifier
    history: list[dict]
    accuracy_by_t: dict[int, float]  # held-out accuracy at a few t
    wall_s: float


def train_noisy_classifier(images: torch.Tensor, labels: torch.Tensor, test_images: torch.Tensor,
                           test_labels: torch.Tensor, schedule: NoiseSchedule | None = None, epochs: int = 30,
                           batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
                           on_epoch: Callable[[int, int, float], None] | None = None) -> NoisyTrainResult:
    """Adam on cross-entropy of z_t at t ~ U{0..T} (a fresh t and ε per image and epoch); on_epoch(epoch, epochs,
    loss). Deterministic for a seed."""
    schedule = schedule or preset_schedule("default")
    if not 1 <= epochs <= 1000:
        raise ValueError(f"epochs must be from 1 to 1000; got {epochs}")
    began = time.perf_counter()
    torch.manual_seed(seed)
    model = NoisyClassifier(schedule=schedule)
    optim = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, T_max=epochs)
    gen = torch.Generator().manual_seed(seed + 1)
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(images), generator=gen)
        total = 0.0
        for b in range(0, len(order), batch_size):
            idx = order[b:b + batch_size]
            t = torch.randint(0, schedule.T + 1, (len(idx),), generator=gen)
            z = q_sample(schedule, images[idx], t, torch.randn(images[idx].shape, generator=gen))
            loss = F.cross_entropy(model(z, t.float() / schedule.T), labels[idx])
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        history.append({"epoch": epoch, "loss": total / len(images)})
        if on_epoch is not None:
            on_epoch(epoch, epochs, total / len(images))
    model.eval()
    return NoisyTrainResult(model, history, accuracy_by_t(model, test_images, test_labels, schedule),
                            time.perf_counter() - began)


@torch.no_grad()
def accuracy_by_t(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, schedule: NoiseSchedule,
                  ts: tuple[int, ...] = (0, 100, 250, 500, 750, 1000), seed: int = 0) -> dict[int, float]:
    """Held-out accuracy on z_t at each t (the same seeded ε at every t)."""
    eps = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))
    out = {}
    for t in ts:
        t = min(t, schedule.T)
        z = q_sample(schedule, images, torch.full((len(images),), t), eps)
        out[t] = float((model(z, torch.full((len(images),), t / schedule.T)).argmax(1) == labels).float().mean())
    return out


def cpu_name() -> str:
    """The CPU's model name and the cores torch uses, e.g. "Intel(R) Xeon(R) … (2 threads)"."""
    import platform
    from pathlib import Path

    name = platform.processor() or platform.machine()
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name} ({torch.get_num_threads()} threads)"


def noisy_classifier_meta(result: NoisyTrainResult, data_source: str, n_train: int, n_test: int, command: str,
                          epochs: int, batch_size: int, lr: float, seed: int) -> dict:
    """The classifier-checkpoint config of a trained noise-aware classifier (evaluation.classifier's format)."""
    return {
        "name": SHIPPED_NAME,
        "model": {"arch": ARCH, "params": {"channels": [32, 64], "feature_dim": 128, "num_classes": 10}},
        "classes": [str(i) for i in range(10)], "dataset": "mnist", "epochs": epochs,
        "training": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "n_fit": n_train,
                     "data_source": data_source, "schedule": "the report's default (linear β 1e-4 → 0.02, T = 1000)",
                     "t": "uniform on 0..T", "optimizer": "Adam", "lr_schedule": "cosine", "history": result.history},
        "metrics": {"test_accuracy_by_t": {str(t): a for t, a in result.accuracy_by_t.items()}, "n_test": n_test,
                    "wall_time_s": round(result.wall_s, 1), "command": command, "machine": cpu_name()},
    }


def noisy_classifier_card(meta: dict) -> str:
    """A short markdown card: what it is, its data and training, accuracy by t and the command."""
    tr, m = meta["training"], meta["metrics"]
    by_t = ", ".join(f"t = {t}: {100 * a:.1f} %"
                     for t, a in sorted(m["test_accuracy_by_t"].items(), key=lambda kv: int(kv[0])))
    return "\n".join([
        "# Noise-aware MNIST classifier p(y | z_t, t) (for classifier guidance)",
        "",
        "- **Architecture:** `mnist-cnn-noisy`: the shipped classifier's two conv stages (GroupNorm, SiLU), each "
        "shifted by an embedding of t/T; the input scaled to unit variance at every t.",
        f"- **Data:** {tr['data_source']}: {tr['n_fit']:,} training digits, noised as z_t = √ᾱ_t·x + √(1−ᾱ_t)·ε on "
        f"{tr['schedule']}, t {tr['t']}.",
        f"- **Training:** {tr['epochs']} epochs, batch {tr['batch_size']}, Adam lr {tr['lr']:g} (cosine), seed "
        f"{tr['seed']}; {m['wall_time_s'] / 60:.1f} min on {m.get('machine', 'a CPU')} (shared with other jobs).",
        f"- **Test accuracy by noise level** ({m['n_test']} test digits): {by_t}.",
        "",
        f"Recompute: `{m['command']}`",
        "",
    ])
