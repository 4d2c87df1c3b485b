"""Every registered sampler's samples on fixed seeds, saved or compared: run before a change to the samplers and
after it, and the table says whether anything but float rounding moved.

    python -m benchmarks.sampler_outputs --save before.safetensors
    python -m benchmarks.sampler_outputs --compare before.safetensors

Each noise sampler runs on default-unet at its default steps (and ddim at η = 0.5, heun at churn 0.5: its knobs
away from 0), each cold sampler on the shipped blur model, four on quick-unet (cosine, v); 4 samples, seed 3,
float32; DDIM inversion of ddim's samples and their decoding (10 steps), and a DDIM run from a given z_t at t = 500.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from diffusion_core.editing.inversion import decode, invert
from diffusion_core.io.checkpoints import load_checkpoint
from diffusion_core.process import SamplerChoice
from diffusion_core.process.base import samplers_of
from diffusion_core.sampling import sample_checkpoint

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"noise": "default-unet", "cold": "blur"}
# a cosine schedule (σ_T ≈ 2·10⁴: the σ-space samplers' hardest case) with a v-predicting network
COSINE_V = ("quick-unet", ("ancestral", "ddim", "dpm++2m", "dpm++2m-sde"))
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
    ckpt = load_checkpoint(ROOT / "checkpoints" / f"{COSINE_V[0]}.safetensors")
    for name in COSINE_V[1]:
        out[f"{COSINE_V[0]}/{name}"] = sample_checkpoint(ckpt, SamplerChoice(name, seed=SEED), N,
                                                         precision="fp32").samples
    ckpt = load_checkpoint(ROOT / "checkpoints" / f"{MODELS['noise']}.safetensors")
    start = out[f"{MODELS['noise']}/ddim"]
    z_T = invert(ckpt, start, steps=10)  # DDIM inversion (the Edit page's round trip) and back
    out["default-unet/ddim·inversion"], out["default-unet/ddim·decoded"] = z_T, decode(ckpt, z_T, steps=10)
    midway = SamplerChoice("ddim", 10, seed=SEED, start=z_T * 0.5, t_start=500)  # a run from z_t at t = 500
    out["default-unet/ddim·from t=500"] = sample_checkpoint(ckpt, midway, N, precision="fp32").samples
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
