"""Diffusion against flow matching, reflow and one-step distillation: FID (over the real-data floor), KID and the
share of confident digits at 1, 2, 4, 8 and 20 network calls, each model at its best few-step sampler per budget
(views/nfe_curves.py). Writes benchmarks/results/flow_vs_diffusion.json, which the Evaluate page draws.

    python benchmarks/flow_vs_diffusion.py                       # the shipped models (about 4 min on 2 cores)
    python benchmarks/flow_vs_diffusion.py --train-minutes 15    # also: the same U-Net trained from scratch for
                                                                 # 15 min as diffusion and as flow matching

With --train-minutes both runs use the `uncond-unet` network and optimiser (constant learning rate, EMA), one with
its v-prediction noise process, one as a flow (logit-normal t); each is stopped after the same wall-clock time
(the trainer's STOP file: the last complete epoch is kept). The training and reflow cost of each model is read
from its checkpoint. The flow maths itself is checked against Meta's library by benchmarks/flow_match.py.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from diffusion_core.evaluation.noisy_classifier import cpu_name  # noqa: E402
from diffusion_core.io.checkpoints import CheckpointError, load_checkpoint, resolve_checkpoint  # noqa: E402
from diffusion_core.io.files import atomic_write_json  # noqa: E402
from diffusion_core.training.precision import resolve_precision  # noqa: E402
from diffusion_core.views.nfe_curves import NFE_BUDGETS, nfe_curve, results_path, table  # noqa: E402

SHIPPED = ("uncond-unet", "flow-unet", "flow-reflow", "flow-two-step", "flow-one-step")
NETWORK = ["--arch", "unet", "--base-channels", "48", "--patch", "2", "--batch-size", "64", "--lr", "0.002",
           "--warmup", "100", "--ema", "0.999", "--epochs", "10000", "--seed", "0", "--quiet"]
FAMILIES = {"diffusion": ["--preset", "default", "--prediction", "v"], "flow": ["--flow", "--time-sampling",
                                                                                  "logit-normal"]}


def train_for(minutes: float, folder: Path) -> dict[str, Path]:
    """Both families trained from scratch for `minutes` each (one after the other, so each has the machine)."""
    runs = {}
    for family, flags in FAMILIES.items():
        out = folder / f"{family}-{minutes:g}min"
        proc = subprocess.Popen([sys.executable, "-m", "diffusion_core", "train", "--out", str(out), *flags,
                                 *NETWORK], cwd=Path(__file__).resolve().parent.parent)
        deadline = time.monotonic() + minutes * 60
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(2)
        (out / "STOP").touch()
        if proc.wait() != 0:
            raise SystemExit(f"training the {family} model failed (see above)")
        runs[out.name] = out / "model.safetensors"
        print(f"{out.name}: trained {minutes:g} min", flush=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", help=f"checkpoints (names, paths or run folders; default: those of "
                        f"{', '.join(SHIPPED)} that are shipped)")
    parser.add_argument("--n", type=int, default=500, help="samples per point (default 500)")
    parser.add_argument("--nfe", type=int, nargs="+", default=list(NFE_BUDGETS), help="budgets of network calls")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-minutes", type=float, help="also train both families from scratch for this long")
    parser.add_argument("--out", type=Path, default=results_path())
    args = parser.parse_args()
    models: dict[str, Path] = {}
    for name in args.models or SHIPPED:
        try:
            models[Path(name).stem if Path(name).suffix else name] = resolve_checkpoint(name)
        except CheckpointError as exc:
            if args.models:
                raise SystemExit(f"error: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="flow-vs-diffusion-") as tmp:
        if args.train_minutes:
            models.update(train_for(args.train_minutes, Path(tmp)))
        rows, costs = [], {}
        for name, path in models.items():
            ckpt = load_checkpoint(path)
            training = ckpt.config.get("training", {})
            costs[name] = {"train_minutes": round((ckpt.config.get("metrics") or {}).get("wall_time_s", 0) / 60, 1),
                           "epochs": ckpt.config.get("epochs"), "coupling": training.get("coupling"),
                           "init_from": training.get("init_from")}
            t0 = time.perf_counter()
            rows += nfe_curve(ckpt, args.n, args.nfe, args.seed, name=name,
                              on_row=lambda r: print(f"{r['model']:>16} {r['nfe']:>3} calls: {r['sampler']:<12} "
                                                     f"FID {r['fid']:6.1f} ({r['fid_over_floor']:.2f}× floor), "
                                                     f"{r['confident']:.0%} confident", flush=True))
            print(f"{name}: measured in {time.perf_counter() - t0:.0f} s", flush=True)
    atomic_write_json(args.out, {
        "rows": rows, "n": args.n, "seed": args.seed, "costs": costs, "machine": cpu_name(),
        "precision": str(resolve_precision("auto", "cpu")).replace("torch.", ""),
        "measured": datetime.date.today().isoformat(),
        "command": "python benchmarks/flow_vs_diffusion.py " + " ".join(sys.argv[1:])})
    print(f"\n{table(rows)}\n\nwrote {args.out}")


if __name__ == "__main__":
    main()
