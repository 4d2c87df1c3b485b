"""Inpainting three ways (#16 item 2) on test digits: replacement and RePaint with a noise model, and the cold mask
model, all on the mask model's own centre disc at step t (so the three fill the same pixels), plus the two noise
methods on the preset masks. For each: RMSE on the filled pixels (mean ± SE over digits), SSIM and the share of
results the classifier labels as the original digit.

    python benchmarks/inpainting.py                       # 20 test digits, 2 seeds, 50 steps
    python benchmarks/inpainting.py --digits 4 --steps 10  # a smoke run

Writes benchmarks/results/inpainting.json.
"""

from __future__ import annotations

import argparse
import datetime
import math
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks.report import save_result  # noqa: E402
from diffusion_core.editing.inpainting import compare, disc_mask, preset_mask  # noqa: E402
from diffusion_core.evaluation.classifier import load_classifier  # noqa: E402
from diffusion_core.evaluation.noisy_classifier import cpu_name  # noqa: E402
from diffusion_core.io.checkpoints import load_checkpoint, resolve_checkpoint  # noqa: E402
from diffusion_core.io.data import load_dataset  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "inpainting.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default-unet", help="the noise model (shipped name or path)")
    parser.add_argument("--cold", default="mask-unet", help="the cold mask model (shipped name or path)")
    parser.add_argument("--t", type=int, default=40, help="the disc's step t (its radius grows with t)")
    parser.add_argument("--digits", type=int, default=20, help="test digits (the first of the split)")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    noise = load_checkpoint(resolve_checkpoint(args.model))
    cold = load_checkpoint(resolve_checkpoint(args.cold))
    classifier = load_classifier(None)
    test = load_dataset("mnist", "test", download=False)
    masks = {f"disc t={args.t}": (disc_mask(cold, args.t), True), "left half": (preset_mask("left half"), False),
             "random pixels": (preset_mask("random pixels"), False)}
    result = {"model": args.model, "cold": args.cold, "digits": args.digits, "seeds": args.seeds,
              "steps": args.steps, "machine": cpu_name(), "data": test.source,
              "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "masks": {}}
    for mask_name, (mask, with_cold) in masks.items():
        per: dict[str, dict[str, list]] = {}
        started = time.perf_counter()
        for i in range(args.digits):
            x, label = test.images[i: i + 1], int(test.labels[i])
            for score in compare(noise, x, mask, args.seeds, args.steps, classifier, cold if with_cold else None,
                                 args.t if with_cold else None):
                row = per.setdefault(score.method, {"rmse": [], "ssim": [], "kept": []})
                row["rmse"].append(score.rmse)
                row["ssim"].append(score.ssim)
                row["kept"] += [d == label for d, _ in score.labels]
        result["masks"][mask_name] = {
            "filled_pixels": int((1 - mask).sum()), "seconds": round(time.perf_counter() - started, 1),
            "methods": {m: {"rmse": float(np.mean(r["rmse"])),
                            "rmse_se": float(np.std(r["rmse"], ddof=1) / math.sqrt(len(r["rmse"]))),
                            "ssim": float(np.mean(r["ssim"])), "label_kept": float(np.mean(r["kept"]))}
                        for m, r in per.items()}}
        print(f"{mask_name} ({result['masks'][mask_name]['filled_pixels']} pixels filled):")
        for m, r in result["masks"][mask_name]["methods"].items():
            print(f"  {m:16s} RMSE {r['rmse']:.3f} ± {r['rmse_se']:.3f}  SSIM {r['ssim']:.3f}  "
                  f"label kept {r['label_kept']:.0%}", flush=True)
    save_result(args.out, result)


if __name__ == "__main__":
    main()
