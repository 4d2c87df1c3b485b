"""Every registered sampler's samples on fixed seeds, saved or compared: run before a change to the samplers and
after it, and the table says whether anything but float rounding moved.

    python -m benchmarks.sampler_outputs --save before.safetensors
    python -m benchmarks.sampler_outputs --compare before.safetensors

Each noise sampler runs on default-unet at its default steps (and ddim at η = 0.5, heun at churn 0.5: its knobs
away from 0), each cold sampler on the shipped blur model; 4 samples, seed 3, float32.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from diffusion_core.io.checkpoints import load_checkpoint
from diffusion_core.process import SamplerChoice
from diffusion_core.process.base import samplers_of
from diffusion_core.sampling import sample_checkpoint

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"noise": "default-unet", "cold": "blur"}
N, SEED = 4, 3
KNOBS_AWAY_FROM_ZERO = {"ddim": {"eta": 0.5}, "heun": {"churn": 0.5}}


def runs() -> dict[str, torch.Tensor]:
    """name → samples, for every sampler of each model's process (plus the knob variants)."""
    out = {}
    for stem in MODELS.values():
        ckpt = load_checkpoint(ROOT / "checkpoints" / f"{stem}.safetensors")
        for name in samplers_of(ckpt.process.type):
            variants = [("", SamplerChoice(name, seed=SEED))]
            for knob, value in KNOBS_AWAY_FROM_ZERO.get(name, {}).items():
                variants.append((f"·{knob}={value:g}", SamplerChoice(name, seed=SEED, knobs={knob: value})))
            for suffix, choice in variants:
                out[f"{stem}/{name}{suffix}"] = sample_checkpoint(ckpt, choice, N, precision="fp32").samples
                print(f"{stem}/{name}{suffix}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--save", type=Path, metavar="FILE")
    what.add_argument("--compare", type=Path, metavar="FILE")
    args = parser.parse_args(argv)
    now = runs()
    if args.save:
        save_file({k: v.contiguous() for k, v in now.items()}, str(args.save))
        print(f"saved {len(now)} runs to {args.save}")
        return
    before = load_file(str(args.compare))
    print("| run | max abs difference |\n|---|---|")
    for name in sorted(set(before) | set(now)):
        if name not in before or name not in now:
            print(f"| {name} | {'new' if name in now else 'gone'} |")
        else:
            print(f"| {name} | {(before[name] - now[name]).abs().max().item():.3g} |")


if __name__ == "__main__":
    main()
