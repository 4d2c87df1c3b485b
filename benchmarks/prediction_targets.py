"""Prediction targets and loss weightings on MNIST at an equal training budget: the same U-Net, data, seed,
optimiser and number of Adam steps for ε, x0 and v prediction (uniform weighting: each target's plain MSE) and
for ε with min-SNR-γ and soft-min-SNR weighting; then classifier-FID ± SE, KID ± SE and the confident fraction
of n samples from each (DPM-Solver++(2M) SDE, 20 steps, the app's quick sampler).

    python benchmarks/prediction_targets.py                 # 15 epochs each, n = 1000 (about 45 min on 2 cores)
    python benchmarks/prediction_targets.py --epochs 2 --n 200 --limit 640   # a smoke run

Each run is a real `python -m diffusion_core train` job in runs/prediction-targets/<name>; a finished run is
reused. Writes benchmarks/results/prediction_targets.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from benchmarks.report import save_result  # noqa: E402
from diffusion_core.evaluation.classifier import load_classifier  # noqa: E402
from diffusion_core.evaluation.metrics import (  # noqa: E402
    classifier_outputs,
    confident_fraction,
    kernel_inception_distance,
)
from diffusion_core.io.checkpoints import load_checkpoint  # noqa: E402
from diffusion_core.io.files import PROJECT_ROOT  # noqa: E402
from diffusion_core.io.images import to_unit_numpy  # noqa: E402
from diffusion_core.io.runs import read_json_or_empty  # noqa: E402
from diffusion_core.process import SamplerChoice  # noqa: E402
from diffusion_core.sampling import sample_in_chunks  # noqa: E402
from diffusion_core.views.sampler_costs import fid_with_se, mnist_test_reference  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "prediction_targets.json"
CONFIGS = {  # name → train flags beyond the shared ones
    "eps": ["--prediction", "eps"],
    "x0": ["--prediction", "x0"],
    "v": ["--prediction", "v"],
    "eps-min-snr": ["--prediction", "eps", "--weighting", "min-snr"],
    "eps-soft-min-snr": ["--prediction", "eps", "--weighting", "soft-min-snr"],
}
SHARED = ["--arch", "unet", "--base-channels", "16", "--batch-size", "64", "--lr", "1e-3", "--ema", "0.995",
          "--seed", "0", "--no-download", "--fid-every", "0"]
CHUNK = 250


def train(name: str, epochs: int, limit: int | None, root: Path) -> dict:
    out = root / name
    status = read_json_or_empty(out / "status.json")
    if status.get("state") != "finished" or status.get("epochs") != epochs:
        cmd = [sys.executable, "-m", "diffusion_core", "train", "--out", str(out), "--epochs", str(epochs),
               *SHARED, *CONFIGS[name], *(["--limit", str(limit)] if limit else [])]
        if out.exists():
            cmd = [sys.executable, "-m", "diffusion_core", "train", "--resume", str(out), "--epochs", str(epochs)]
        print(" ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, check=True, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    status = read_json_or_empty(out / "status.json")  # as the finished run left it
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    epochs_rows = [r for r in rows if "loss" in r and "epoch" in r]
    return {"wall_s": sum(r.get("epoch_time_s", 0.0) for r in epochs_rows), "final_loss": epochs_rows[-1]["loss"],
            "n_train": status.get("n_train"), "precision": status.get("precision")}


def quality(path: Path, n: int, seed: int, classifier, ref) -> dict:
    checkpoint = load_checkpoint(path)
    choice = SamplerChoice("dpm++2m-sde", 20, seed=seed)
    images = to_unit_numpy(sample_in_chunks(checkpoint, choice, n, CHUNK))
    feats, probs = classifier_outputs(classifier, images)
    fid, fid_se = fid_with_se(feats, ref, seed)
    kid, kid_se = kernel_inception_distance(feats, ref.features, seed)
    return {"fid": fid, "fid_se": fid_se, "kid": kid, "kid_se": kid_se, "confident": confident_fraction(probs),
            "digits_present": int(len(set(probs.argmax(1).tolist())))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--limit", type=int, help="train on this many images (smoke runs)")
    parser.add_argument("--only", nargs="+", choices=sorted(CONFIGS), help="a subset of the configurations")
    parser.add_argument("--runs", type=Path, default=PROJECT_ROOT / "runs" / "prediction-targets")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    classifier = load_classifier(None)
    ref, source = mnist_test_reference(classifier)
    result = {"epochs": args.epochs, "n": args.n, "shared_flags": SHARED, "sampler": "dpm++2m-sde, 20 steps",
              "reference": f"MNIST test split ({source})", "rows": {},
              "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
              "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    for name in args.only or CONFIGS:
        row = {"flags": CONFIGS[name], **train(name, args.epochs, args.limit, args.runs)}
        row.update(quality(args.runs / name / "model.safetensors", args.n, 0, classifier, ref))
        result["rows"][name] = row
        print(f"{name:17s} FID {row['fid']:7.1f} ± {row['fid_se']:4.1f}  KID {row['kid'] * 1e3:6.1f} ± "
              f"{row['kid_se'] * 1e3:4.1f} ×1e-3  confident {row['confident']:.0%}  digits {row['digits_present']}  "
              f"loss {row['final_loss']:.4f}  train {row['wall_s'] / 60:.1f} min", flush=True)
    save_result(args.out, result)


if __name__ == "__main__":
    main()
