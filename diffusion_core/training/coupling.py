"""Reflow and one-step distillation on images (rectified flow, Liu et al. 2023): a flow model trained on its
teacher's own (noise, sample) coupling instead of independent noise and data.

    z1 ~ N(0, I),  x0 = ODE_teacher(z1)             (a deterministic sampler, from t = 1 down to 0)
    reflow:    ‖(z1 − x0) − v(z_t, t)‖²,  z_t = (1 − t)·x0 + t·z1,  t as the teacher's process draws it
    distil N:  the same at the N-step Euler grid's times only (N = 1: t = 1, so that x̂0 = z1 − v(z1, 1) lands where
               the teacher's ODE does; N = 2: t = 1 and ½, …)

A run draws its pairs once, into <run>/pairs.safetensors (tensors only, with what drew them), and reads them back
when it resumes. The 2-D lab does the same on points (views/points.py: reflow_points, distil_points).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save

from diffusion_core.io.checkpoints import LoadedCheckpoint, checkpoint_name, load_checkpoint
from diffusion_core.io.data import Dataset
from diffusion_core.io.files import atomic_write_bytes
from diffusion_core.process import SamplerChoice, Start
from diffusion_core.process.flow import MAX_DISTIL_STEPS
from diffusion_core.process.runs import SeedBatch
from diffusion_core.sampling import checkpoint_frames

# deterministic samplers only: the coupling is the teacher ODE's map from noise to sample
PAIR_SAMPLERS = ("flow-heun", "flow-euler", "dpm++2m", "ddim")
PAIRS_RANGE, STEPS_RANGE = (64, 100_000), (1, 200)
DEFAULT_PAIRS, DEFAULT_SAMPLER, DEFAULT_STEPS = 10_000, "flow-heun", 10
PAIRS_FILE = "pairs.safetensors"
CHUNK = 250  # pairs drawn per network batch


def validate_coupling(coupling: dict) -> None:
    """ValueError naming the first field of a run's coupling ({"teacher", "pairs", "sampler", "steps", "distil_steps"})
    that is missing or out of range."""
    fields = {"teacher", "pairs", "sampler", "steps", "distil_steps"}
    if not isinstance(coupling, dict) or set(coupling) != fields:
        raise ValueError(f"a coupling names exactly {', '.join(sorted(fields))}; got {coupling!r}")
    if not isinstance(coupling["teacher"], str) or not coupling["teacher"]:
        raise ValueError(f"the coupling's teacher must be a checkpoint path; got {coupling['teacher']!r}")
    for name, (lo, hi) in (("pairs", PAIRS_RANGE), ("steps", STEPS_RANGE)):
        value = coupling[name]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"the coupling's {name} must be a whole number from {lo} to {hi}; got {value!r}")
    if coupling["sampler"] not in PAIR_SAMPLERS:
        raise ValueError(f"the teacher's pairs need a deterministic sampler, one of {', '.join(PAIR_SAMPLERS)}; "
                         f"got {coupling['sampler']!r}")
    n = coupling["distil_steps"]
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_DISTIL_STEPS:
        raise ValueError(f"the coupling's distil_steps must be a whole number from 0 (reflow) to {MAX_DISTIL_STEPS}; "
                         f"got {n!r}")


def draw_pairs(teacher: LoadedCheckpoint, n: int, sampler: str, steps: int, seed: int,
               device: torch.device | str = "cpu", precision: str = "auto",
               on_chunk: Callable[[int, int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0, z1): n noises z1 (pair k's from seed + k, as a sampled image's) and where the teacher's ODE carries
    them, `steps` steps of `sampler` from t = 1; on_chunk(done, n) after each batch."""
    T = teacher.process.T
    x0s, z1s = [], []
    for i in range(0, n, CHUNK):
        m = min(CHUNK, n - i)
        z1 = SeedBatch(seed + i, m).rows(lambda g: torch.randn((1, *teacher.process.data_shape), generator=g))
        choice = SamplerChoice(sampler, steps, seed=seed + i, start=Start(states=z1), t_start=T)
        for frame in checkpoint_frames(teacher, choice, m, device, precision):
            last = frame
        x0s.append(last.z.cpu().float())
        z1s.append(z1)
        if on_chunk is not None:
            on_chunk(i + m, n)
    return torch.cat(x0s), torch.cat(z1s)


def _pairs_metadata(teacher: LoadedCheckpoint, coupling: dict, seed: int) -> dict[str, str]:
    return {"teacher_sha256": str(teacher.config.get("weights_sha256", "")), "pairs": str(coupling["pairs"]),
            "sampler": coupling["sampler"], "steps": str(coupling["steps"]), "seed": str(seed)}


def coupling_dataset(coupling: dict, seed: int, run_dir: Path, device: torch.device | str = "cpu",
                     precision: str = "auto", write: bool = True,
                     on_chunk: Callable[[int, int], None] | None = None) -> Dataset:
    """The run's training rows: each pair (x0, z1) joined along the last dimension (N×C×H×2W), as a flow's
    coupled() process reads them. Drawn from the teacher (write: and saved to <run>/pairs.safetensors) unless
    that file holds this very coupling; ValueError when it holds another."""
    validate_coupling(coupling)
    teacher = load_checkpoint(coupling["teacher"], device)
    teacher.process.coupled()  # ValueError unless the teacher is a flow model
    meta = _pairs_metadata(teacher, coupling, seed)
    path = Path(run_dir) / PAIRS_FILE
    if path.is_file():
        with safe_open(str(path), "pt") as f:
            saved = f.metadata() or {}
        if saved != meta:
            raise ValueError(f"{path} holds pairs drawn another way ({saved}) than this run asks ({meta}); delete "
                             "it to draw them afresh")
        tensors = load_file(str(path))
        x0, z1 = tensors["x0"], tensors["z1"]
    else:
        x0, z1 = draw_pairs(teacher, coupling["pairs"], coupling["sampler"], coupling["steps"], seed, device,
                            precision, on_chunk)
        if write:
            atomic_write_bytes(path, save({"x0": x0.contiguous(), "z1": z1.contiguous()}, metadata=meta))
    source = (f"{len(x0):,} (noise, sample) pairs of {checkpoint_name(coupling['teacher'])} ({coupling['sampler']}, "
              f"{coupling['steps']} steps)")
    return Dataset(images=torch.cat([x0, z1], dim=-1), labels=torch.zeros(len(x0), dtype=torch.long),
                   name="coupling", source=source)

