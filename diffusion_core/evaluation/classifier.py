"""A small MNIST CNN classifier: the feature extractor behind classifier-FID and the sample metrics.

Images go in as data-space tensors N×1×28×28 (x/255 − 0.5), like everything else in the library.
`features(x)` is the penultimate layer (what the Fréchet distance compares); `forward(x)` the logits.

Checkpoints follow the project's convention (checkpoints.py): `<stem>.safetensors` holds only
tensors, `<stem>.json` the architecture, data, training and metrics plus the weights' SHA-256. A
classifier config has its own format tag and no "diffusion" field, so it has its own strict
validator. Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from diffusion_core.io.checkpoints import (
    MAX_CHECKPOINT_BYTES,
    CheckpointError,
    check_fields,
    checkpoint_paths,
    load_weights,
)
from diffusion_core.process.runs import validate_seed
from diffusion_core.training.config import check_whole_fields

FORMAT = "diffusion-lab-classifier"
VERSION = 1
ARCH = "mnist-cnn"
REQUIRED_FIELDS = {"format", "version", "model", "weights_sha256"}
OPTIONAL_FIELDS = {"name", "classes", "dataset", "epochs", "training", "metrics", "notes"}
PARAMS = {"channels", "feature_dim", "num_classes"}
DEFAULT_PARAMS = {"channels": [32, 64], "feature_dim": 128, "num_classes": 10}
SHIPPED_NAME = "classifier"
# allowed ranges of ClassifierTrainConfig's integer fields (limit: when set); the CLI checks against them
INT_RANGES = {"epochs": (1, 1000), "batch_size": (1, 4096), "val_size": (1, 100_000), "limit": (2, 10_000_000)}


class MNISTClassifier(nn.Module):
    """Two conv stages (2 × [3×3 conv → BatchNorm → ReLU] → 2×2 max-pool), 28→14→7,
    then a linear layer to `feature_dim` features (ReLU) and a linear layer to the logits."""

    def __init__(self, channels: tuple[int, int] | list[int] = (32, 64), feature_dim: int = 128,
                 num_classes: int = 10) -> None:
        super().__init__()
        channels = list(channels)
        if len(channels) != 2 or not all(isinstance(c, int) and 1 <= c <= 512 for c in channels):
            raise ValueError(f"channels must be two integers between 1 and 512 (e.g. [32, 64]); got {channels!r}")
        if isinstance(feature_dim, bool) or not isinstance(feature_dim, int) or not 2 <= feature_dim <= 4096:
            raise ValueError(f"feature_dim must be an integer between 2 and 4096; got {feature_dim!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or not 2 <= num_classes <= 1000:
            raise ValueError(f"num_classes must be an integer between 2 and 1000; got {num_classes!r}")
        c1, c2 = channels
        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.conv = nn.Sequential(*block(1, c1), *block(c1, c1), nn.MaxPool2d(2),
                                  *block(c1, c2), *block(c2, c2), nn.MaxPool2d(2))
        self.fc = nn.Linear(c2 * 7 * 7, feature_dim)
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(feature_dim, num_classes)
        self.feature_dim = feature_dim
        self.num_classes = num_classes

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features (N×feature_dim) of data-space images N×1×28×28."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"classifier input must be N×1×28×28 data-space images; got shape {tuple(x.shape)}")
        return F.relu(self.fc(self.conv(x).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits N×num_classes."""
        return self.head(self.dropout(self.features(x)))


def build_classifier(model_config: dict) -> nn.Module:
    """Build from {"arch": "mnist-cnn" (or "mnist-cnn-noisy", the noise-aware one), "params": {...}}; unknown keys
    are refused."""
    from diffusion_core.evaluation.noisy_classifier import ARCH as NOISY_ARCH
    from diffusion_core.evaluation.noisy_classifier import NoisyClassifier

    arch = model_config.get("arch") if isinstance(model_config, dict) else None
    if arch not in (ARCH, NOISY_ARCH):
        raise ValueError(f'classifier model must be {{"arch": "{ARCH}" or "{NOISY_ARCH}", "params": {{...}}}}; '
                         f"got {model_config!r}")
    params = model_config.get("params", {})
    if not isinstance(params, dict):
        raise ValueError('classifier "params" must be a JSON object')
    unknown = set(params) - PARAMS
    if unknown:
        raise ValueError(f"unknown classifier parameter(s) {sorted(unknown)}; allowed: {sorted(PARAMS)}")
    return (MNISTClassifier if arch == ARCH else NoisyClassifier)(**{**DEFAULT_PARAMS, **params})


# ---------------------------------------------------------------------------------------- training


@dataclass
class ClassifierTrainConfig:
    epochs: int = 15
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    val_size: int = 500  # held out from the training split for validation
    augment: bool = True  # random affine maps (rotation, scale, shift) of the training digits
    max_shift: float = 2.0  # pixels
    max_rotation: float = 10.0  # degrees
    max_scale: float = 0.1  # relative
    dataset: str = "mnist"
    data_root: str | None = None
    download: bool = True
    limit: int | None = None  # use only the first N training digits (tests)
    params: dict | None = None

    def validate(self) -> None:
        check_whole_fields(self, INT_RANGES)
        for name, value, hi in (("max_shift", self.max_shift, 8), ("max_rotation", self.max_rotation, 45),
                                ("max_scale", self.max_scale, 0.5)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= hi:
                raise ValueError(f"{name} must be a number between 0 and {hi}; got {value!r}")
        validate_seed(self.seed)
        if not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or not 0 < self.lr <= 1:
            raise ValueError(f"lr must be a number with 0 < lr ≤ 1; got {self.lr!r}")
        build_classifier({"arch": ARCH, "params": self.params or {}})


@dataclass
class ClassifierResult:
    model: MNISTClassifier
    config: dict  # the checkpoint config (model, data, training, metrics)


def random_affine(x: torch.Tensor, max_shift: float, max_rotation: float, max_scale: float,
                  generator: torch.Generator) -> torch.Tensor:
    """Augment data-space images with a random affine map each: rotation θ ~ U(±max_rotation°),
    scale s ~ U(1 ± max_scale), shift ~ U(±max_shift px); the background stays black (−0.5)."""
    n = x.shape[0]
    u = torch.rand((n, 4), generator=generator) * 2 - 1  # U(−1, 1)
    theta = u[:, 0] * math.radians(max_rotation)
    scale = 1 + u[:, 1] * max_scale
    cos, sin = torch.cos(theta) / scale, torch.sin(theta) / scale
    shift = u[:, 2:] * max_shift / 14.0  # grid coordinates span 28 px as [−1, 1]
    mat = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(mat, list(x.shape), align_corners=False)
    # sample x + 0.5 so that zero padding is the black background, then return to data space
    return F.grid_sample(x + 0.5, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 0.5


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict_logits(model, x).argmax(1) == y).float().mean())


def train_classifier(
    config: ClassifierTrainConfig | None = None,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> ClassifierResult:
    """Train on the training split minus a seeded validation hold-out (Adam, cross-entropy,
    optional random shifts); report validation and test accuracy. Deterministic for a seed."""
    from diffusion_core.io.data import load_dataset

    config = config or ClassifierTrainConfig()
    config.validate()
    t_start, cpu_start = time.perf_counter(), time.process_time()
    train = load_dataset(config.dataset, "train", root=config.data_root, download=config.download)
    test = load_dataset(config.dataset, "test", root=config.data_root, download=config.download)
    x, y = train.images, train.labels
    if config.limit:
        x, y = x[: config.limit], y[: config.limit]
    if config.val_size >= len(x):
        raise ValueError(f"val_size must be smaller than the {len(x)} training images; got {config.val_size}")
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(config.seed))
    val_idx, fit_idx = perm[: config.val_size], perm[config.val_size:]
    x_fit, y_fit, x_val, y_val = x[fit_idx], y[fit_idx], x[val_idx], y[val_idx]

    torch.manual_seed(config.seed)
    model_config = {"arch": ARCH, "params": {**DEFAULT_PARAMS, **(config.params or {})}}
    model = build_classifier(model_config)
    optim = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(optim, T_max=config.epochs)
    gen = torch.Generator().manual_seed(config.seed + 1)
    history = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(len(x_fit), generator=gen)
        total = 0.0
        for b in range(0, len(order), config.batch_size):
            idx = order[b:b + config.batch_size]
            xb = x_fit[idx]
            if config.augment:
                xb = random_affine(xb, config.max_shift, config.max_rotation, config.max_scale, gen)
            loss = F.cross_entropy(model(xb), y_fit[idx])
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            total += loss.item() * len(idx)
        sched.step()
        val_acc = accuracy(model, x_val, y_val)
        history.append({"epoch": epoch, "loss": total / len(x_fit), "val_accuracy": val_acc})
        if on_epoch is not None:
            on_epoch(epoch, total / len(x_fit), val_acc)
    wall, cpu = time.perf_counter() - t_start, time.process_time() - cpu_start
    model.eval()
    meta = {
        "name": SHIPPED_NAME,
        "model": model_config,
        "classes": train.classes or [str(i) for i in range(10)],
        "dataset": config.dataset,
        "epochs": config.epochs,
        "training": {**asdict(config), "n_fit": len(x_fit), "n_val": len(x_val), "data_source": train.source,
                     "optimizer": "Adam", "lr_schedule": "cosine", "loss": "cross-entropy",
                     "history": history},
        "metrics": {"val_accuracy": history[-1]["val_accuracy"], "test_accuracy": accuracy(model, test.images,
                    test.labels), "n_test": len(test), "test_source": test.source, "wall_time_s": round(wall, 1),
                    "cpu_time_s": round(cpu, 1), "threads": torch.get_num_threads()},
    }
    return ClassifierResult(model=model, config=meta)


# ------------------------------------------------------------------------------ save / load


def validate_classifier_config(meta: object) -> dict:
    """Check a classifier config's structure; raise CheckpointError naming the problem."""
    check_fields(meta, REQUIRED_FIELDS, OPTIONAL_FIELDS, "classifier", FORMAT, VERSION)
    if not isinstance(meta["weights_sha256"], str) or len(meta["weights_sha256"]) != 64:
        raise CheckpointError("classifier config's weights_sha256 must be a 64-character hex string")
    try:
        build_classifier(meta["model"])
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"classifier config describes a model that cannot be built: {exc}") from None
    return meta


def save_classifier(path: str | Path, model: MNISTClassifier, config: dict) -> Path:
    """Write `<stem>.safetensors` and `<stem>.json` (with the weights' hash) as one atomic pair."""
    from diffusion_core.io.checkpoints import write_pair

    return write_pair(path, model, config, REQUIRED_FIELDS | OPTIONAL_FIELDS, FORMAT, VERSION,
                      validate_classifier_config)


def load_classifier(path: str | Path | None = None, device: torch.device | str = "cpu") -> MNISTClassifier:
    """Load a classifier pair (default: the shipped checkpoints/classifier); the model is in eval mode
    and carries its config as `.config`. Raises CheckpointError for anything wrong with the files."""
    if path is None:
        from diffusion_core.io.checkpoints import shipped_dir

        path = shipped_dir() / SHIPPED_NAME
    wpath, cpath = checkpoint_paths(path)
    for p in (wpath, cpath):
        if not p.is_file():
            hint = " (retrain it with: python -m diffusion_core train-classifier --out checkpoints/classifier)"
            raise CheckpointError(f"classifier file {p} not found{hint}")
    if wpath.stat().st_size > MAX_CHECKPOINT_BYTES or cpath.stat().st_size > 1024 * 1024:
        raise CheckpointError(f"{wpath.name} / {cpath.name} are too large to be a classifier checkpoint")
    try:
        meta = json.loads(cpath.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{cpath.name} is not valid JSON: {exc}") from None
    validate_classifier_config(meta)
    data = wpath.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta["weights_sha256"]:
        raise CheckpointError(f"{wpath.name} does not match {cpath.name} (SHA-256 differs): the pair is torn, "
                              "corrupt or mismatched")
    state = load_weights(data, source=wpath.name)
    model = build_classifier(meta["model"])
    expected = model.state_dict()
    if set(state) != set(expected) or any(tuple(state[k].shape) != tuple(expected[k].shape) for k in state):
        raise CheckpointError(f"{wpath.name} does not fit the classifier described in {cpath.name}")
    model.load_state_dict(state, strict=True)
    model.config = meta
    return model.to(device).eval()


def classifier_card(meta: dict, command: str) -> str:
    """A short markdown card: data, epochs, time, accuracy and the command that reproduces it."""
    tr, m = meta.get("training", {}), meta.get("metrics", {})
    p = meta["model"]["params"]
    n_params = sum(t.numel() for t in build_classifier(meta["model"]).parameters())
    return "\n".join([
        "# MNIST classifier (feature extractor for classifier-FID)",
        "",
        f"- **Architecture:** `{meta['model']['arch']}`: 2×(3×3 conv → BatchNorm → ReLU) → max-pool with "
        f"{p['channels'][0]} channels, the same with {p['channels'][1]} channels, linear → {p['feature_dim']} "
        "features (ReLU; the "
        f"penultimate layer used by FID) → linear → {p['num_classes']} logits; {n_params:,} parameters.",
        f"- **Data:** {tr.get('data_source', '?')}: {tr.get('n_fit', '?'):,} training digits, "
        f"{tr.get('n_val', '?'):,} held out for validation (seed {tr.get('seed', '?')}); "
        f"test: {m.get('n_test', '?'):,} digits ({m.get('test_source', '?')}).",
        f"- **Training:** {meta.get('epochs', '?')} epochs of Adam (lr {tr.get('lr', '?')}, cosine decay, batch "
        f"{tr.get('batch_size', '?')}), cross-entropy, dropout 0.3"
        + (f", random affine augmentation (±{tr.get('max_rotation')}°, ±{tr.get('max_shift')} px, scale "
           f"±{tr.get('max_scale')})" if tr.get("augment") else "") + ".",
        f"- **Time:** {m.get('wall_time_s', '?')} s wall, {m.get('cpu_time_s', '?')} s CPU "
        f"({m.get('threads', '?')} threads on a CPU shared with other jobs, so wall time varies).",
        f"- **Accuracy:** validation {100 * m.get('val_accuracy', float('nan')):.1f}%, "
        f"test {100 * m.get('test_accuracy', float('nan')):.1f}%.",
        "",
        "Reproduce (deterministic for the seed on one machine; a few minutes of CPU):",
        "",
        "```",
        command,
        "```",
        "",
        "Weights: `classifier.safetensors` (tensors only); config and SHA-256: `classifier.json`.",
        "",
    ])
