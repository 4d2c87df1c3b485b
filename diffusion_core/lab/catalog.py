"""The models the lab offers: shipped checkpoints and trained runs, their labels, and the default model
(Home's, the pages' first choice, and the benchmark's)."""

from __future__ import annotations

import os
from pathlib import Path

from diffusion_core.io.checkpoints import list_checkpoints
from diffusion_core.lab import run_status
from diffusion_core.process import DiffusionProcess, GaussianProcess, process_from_config

DEFAULT_ENV = "DIFFUSION_LAB_DEFAULT_MODEL"
# Preferred names for the default model, best first; otherwise the first shipped noise model.
DEFAULT_NAMES = ("default-unet", "unet", "default")
# For views that run a model without a label (inversion, interpolation, inpainting, classifier guidance): the
# shipped unconditional U-Nets, best first; a class-conditional model's unconditional mode is its weakest.
UNCONDITIONAL_NAMES = ("uncond-unet", "quick-unet")


def checkpoint_label(meta: dict) -> str:
    """'cnn · noise default T=1000 · 100 epochs' from a checkpoint config."""
    try:
        what = process_from_config(meta.get("diffusion")).label()
    except ValueError:
        what = "?"
    epochs = meta.get("epochs")
    trained = f" · {epochs} epoch{'s' if epochs != 1 else ''}" if epochs else ""
    return f"{meta.get('model', {}).get('arch', '?')} · {what}{trained}"


def _of(meta_diffusion: object, process: type[DiffusionProcess] | None, degradation: str | None = None) -> bool:
    if process is None:
        return True
    if not (isinstance(meta_diffusion, dict) and meta_diffusion.get("type") == process.type):
        return False
    kind = meta_diffusion.get("degradation", {})
    return degradation is None or (isinstance(kind, dict) and kind.get("kind") == degradation)


def default_checkpoint(process: type[DiffusionProcess] | None = None, unconditional: bool = False) -> Path | None:
    """The default model: $DIFFUSION_LAB_DEFAULT_MODEL, a preferred shipped name, else the first shipped noise
    model, else (process None) the first shipped model; None when nothing fits. `process` keeps only its models;
    `unconditional` (a view that runs the model without a label) prefers the shipped unconditional U-Nets."""
    shipped = [(w, meta) for w, meta in list_checkpoints() if _of(meta.get("diffusion"), process)]
    by_name = {w.stem: w for w, _ in shipped}
    for name in (os.environ.get(DEFAULT_ENV), *(UNCONDITIONAL_NAMES if unconditional else ()), *DEFAULT_NAMES):
        if name and name in by_name:
            return by_name[name]
    noise = [w for w, meta in shipped if _of(meta.get("diffusion"), GaussianProcess)]
    return (noise or [w for w, _ in shipped] or [None])[0]


def model_sources(process: type[DiffusionProcess] | None = None,
                  degradation: str | None = None) -> dict[str, tuple[str, Path]]:
    """Loadable models: key → (label, weights path). Keys are 'shipped:<name>' and 'run:<run id>'.
    `process` keeps only models of that process; `degradation` (with the cold process) only those of that kind."""
    found: dict[str, tuple[str, Path]] = {}
    for wpath, meta in list_checkpoints():
        if _of(meta.get("diffusion"), process, degradation):
            found[f"shipped:{wpath.stem}"] = (f"Shipped · {wpath.stem} ({checkpoint_label(meta)})", wpath)
    try:
        runs = run_status.list_runs()
    except (OSError, ValueError):
        runs = []
    for run in runs:
        if not _of(run.config.get("diffusion"), process, degradation):
            continue
        if run.checkpoint is not None:
            progress = f"{run.state}, epoch {run.epoch}/{run.epochs}"
            found[f"run:{run.run_id}"] = (f"Run · {run.title} ({run.describe()}; {progress})", run.checkpoint)
    return found
