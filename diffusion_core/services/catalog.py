"""The models the lab offers: shipped checkpoints and trained runs, their labels, and the default model
(Home's, the pages' first choice, and the benchmark's)."""

from __future__ import annotations

import os
from pathlib import Path

from diffusion_core.io.checkpoints import list_checkpoints
from diffusion_core.process import DiffusionProcess, process_from_config
from diffusion_core.services import run_status

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


# what a page may ask of a model's process (a capability, never its type), and how a message names such models
OFFERS = {"noise_levels": "noise model", "degrades": "cold-diffusion model (one trained with a degradation)"}


def offers(meta_diffusion: object, capability: str | None, degradation: str | None = None) -> bool:
    """Whether a checkpoint's "diffusion" config gives a process with `capability` (a key of OFFERS; None: any),
    and, with `degradation`, one of that degradation kind."""
    if capability is None:
        return True
    if capability not in OFFERS:
        raise ValueError(f"a model can be asked for {', '.join(OFFERS)}; got {capability!r}")
    kind = DiffusionProcess.PROCESS_TYPES.get(meta_diffusion.get("type")) if isinstance(meta_diffusion, dict) else None
    if kind is None or not getattr(kind, capability):
        return False
    found = meta_diffusion.get("degradation", {})
    return degradation is None or (isinstance(found, dict) and found.get("kind") == degradation)


def default_checkpoint(capability: str | None = None, unconditional: bool = False) -> Path | None:
    """The default model: $DIFFUSION_LAB_DEFAULT_MODEL, a preferred shipped name, else the first shipped noise
    model, else the first shipped model; None when nothing fits. `capability` keeps only models that offer it;
    `unconditional` (a view that runs the model without a label) prefers the shipped unconditional U-Nets."""
    shipped = [(w, meta) for w, meta in list_checkpoints() if offers(meta.get("diffusion"), capability)]
    by_name = {w.stem: w for w, _ in shipped}
    for name in (os.environ.get(DEFAULT_ENV), *(UNCONDITIONAL_NAMES if unconditional else ()), *DEFAULT_NAMES):
        if name and name in by_name:
            return by_name[name]
    noise = [w for w, meta in shipped if offers(meta.get("diffusion"), "noise_levels")]
    return (noise or [w for w, _ in shipped] or [None])[0]


def model_sources(capability: str | None = None,
                  degradation: str | None = None) -> dict[str, tuple[str, Path]]:
    """Loadable models: key → (label, weights path). Keys are 'shipped:<name>' and 'run:<run id>'.
    `capability` keeps only models whose process offers it (OFFERS); `degradation` only those of that kind."""
    found: dict[str, tuple[str, Path]] = {}
    for wpath, meta in list_checkpoints():
        if offers(meta.get("diffusion"), capability, degradation):
            found[f"shipped:{wpath.stem}"] = (f"Shipped · {wpath.stem} ({checkpoint_label(meta)})", wpath)
    try:
        runs = run_status.list_runs()
    except (OSError, ValueError):
        runs = []
    for run in runs:
        if not offers(run.config.get("diffusion"), capability, degradation):
            continue
        if run.checkpoint is not None:
            progress = f"{run.state}, epoch {run.epoch}/{run.epochs}"
            found[f"run:{run.run_id}"] = (f"Run · {run.title} ({run.describe()}; {progress})", run.checkpoint)
    return found
