"""`sample` and `info`: their arguments and what they run."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from diffusion_core.cli.arguments import (
    N_SAMPLES,
    STEPS,
    _class_arguments,
    _device_argument,
    _given_knobs,
    _precision_argument,
    _progress,
    _quiet_argument,
    _seed,
    _spacing_arguments,
)
from diffusion_core.io.checkpoints import (
    list_checkpoints,
    load_checkpoint,
    resolve_checkpoint,
    shipped_dir,
)
from diffusion_core.io.images import save_samples, to_unit_numpy
from diffusion_core.process import SamplerChoice, process_from_config
from diffusion_core.process.cold import COLD_STARTS
from diffusion_core.samplers import MAX_SAMPLES, samplers_of
from diffusion_core.sampling import sample_checkpoint


def _sample_parser(add: Callable[..., argparse.ArgumentParser]) -> None:
    """The `sample` command's options."""
    s = add("sample", help="generate images from a checkpoint",
            description="Sample from a checkpoint; writes OUT.npy (N×28×28 in [0, 1]) and OUT.png.")
    s.add_argument("checkpoint", help="a .safetensors/.json pair, a run directory, or a shipped name")
    s.add_argument("--n", type=N_SAMPLES, default=16, help=f"number of images (1..{MAX_SAMPLES}; default 16)")
    s.add_argument("--sampler", help=f"noise: one of {', '.join(samplers_of('noise'))} (default ancestral); "
                   f"cold: one of {', '.join(samplers_of('cold'))} (default improved)")
    s.add_argument("--steps", type=STEPS, help="steps for ddim / dpm++2m and the cold naive / improved samplers "
                   "(ancestral always takes T; cold default: all T)")
    s.add_argument("--start", choices=COLD_STARTS, help="cold checkpoints: start from a Gaussian mixture fitted "
                   "to degraded training images (default) or from a black image (the report)")
    _spacing_arguments(s)
    s.add_argument("--seed", type=_seed, default=0)
    s.add_argument("--out", type=Path, default=Path("samples"), help="output stem (default ./samples)")
    _device_argument(s)
    _precision_argument(s)
    _class_arguments(s)
    _quiet_argument(s)


def _info_parser(add: Callable[..., argparse.ArgumentParser]) -> None:
    """The `info` command's options."""
    i = add("info", help="list shipped checkpoints, or describe one",
            description="Without an argument, list the shipped checkpoints in checkpoints/ "
            "(or $DIFFUSION_LAB_CHECKPOINTS); with one, print its config.")
    i.add_argument("checkpoint", nargs="?", help="a checkpoint path, run directory or shipped name")


def cmd_sample(args: argparse.Namespace) -> int:
    images, _ = _checkpoint_images(args.checkpoint, args, args.n)
    npy, png = save_samples(images, args.out)
    print(f"wrote {npy} and {png}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    if args.checkpoint:
        ckpt = load_checkpoint(resolve_checkpoint(args.checkpoint))
        print(json.dumps(ckpt.config, indent=2, sort_keys=True))
        return 0
    rows = list_checkpoints()
    if not rows:
        print(f"no checkpoints in {shipped_dir()}")
    for wpath, meta in rows:
        what = process_from_config(meta["diffusion"]).label()
        print(f"{wpath.stem:<16} {meta['model']['arch']:<5} {what:<28} epochs={meta.get('epochs', '?')}")
    return 0


def _checkpoint_images(name: str, args: argparse.Namespace, n: int):
    """(n images N×28×28 in [0, 1], sampler) from a checkpoint, with a progress bar unless args.quiet."""
    from diffusion_core.training.config import resolve_device

    ckpt = load_checkpoint(resolve_checkpoint(name), device="cpu")
    start = getattr(args, "start", None)
    if start and start not in ckpt.process.starts:
        raise ValueError("--start applies to cold (degradation) checkpoints only")
    sampler = args.sampler or ckpt.process.samplers[0]
    choice = SamplerChoice(sampler, args.steps, args.seed, start,
                           getattr(args, "digit", None), getattr(args, "guidance", None),
                           spacing=getattr(args, "spacing", None), rho=getattr(args, "rho", 7.0),
                           knobs=_given_knobs(args))
    total = ckpt.process.step_count(choice)  # refuses a sampler or step count this model cannot take
    choice.knob_values()  # … and a knob it does not take (--eta on heun) or one out of range
    with _progress(total, f"{_short_name(name)} ({sampler})", args.quiet) as on_step:
        result = sample_checkpoint(ckpt, choice, n, resolve_device(getattr(args, "device", "cpu")),
                                   getattr(args, "precision", "auto"), on_step=on_step)
    return to_unit_numpy(result.samples), sampler


def _short_name(checkpoint: str) -> str:
    """A checkpoint's name without folder or suffix, for labels."""
    return Path(checkpoint).stem if checkpoint.endswith((".json", ".safetensors")) else Path(checkpoint).name
