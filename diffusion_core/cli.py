"""Command line: python -m diffusion_core {train, sample, info}."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from . import __version__
from .checkpoints import CheckpointError, list_checkpoints, load_checkpoint, resolve_checkpoint, shipped_dir
from .data import DATASETS, DatasetUnavailableError
from .images import save_samples, to_unit_numpy
from .models import ARCHITECTURES
from .samplers import NOISE_SAMPLERS
from .sampling import sample_checkpoint
from .schedules import PRESETS, SCHEDULE_KINDS
from .training import TrainConfig, TrainingError, noise_diffusion_config, train


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m diffusion_core", description="Diffusion Lab: train and sample "
                                "denoising diffusion models on MNIST-sized images.")
    p.add_argument("--version", action="version", version=f"diffusion_core {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model into a run directory",
                       description="Train a denoiser. Choose a report preset or an explicit schedule; writes "
                       "config.json, metrics.jsonl, status.json, model.safetensors/.json and sample previews.")
    t.add_argument("--out", type=Path, help="run directory to create (required unless --resume)")
    t.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a run from its last complete epoch")
    g = t.add_argument_group("diffusion process")
    g.add_argument("--preset", choices=sorted(PRESETS), help="the report's schedules (default: 'default')")
    g.add_argument("--schedule", choices=SCHEDULE_KINDS, help="schedule kind, with --beta1/--beta2/--T")
    g.add_argument("--beta1", type=float, default=1e-4, help="β at t=0 (0 < β1 < β2 < 1; default 1e-4)")
    g.add_argument("--beta2", type=float, default=0.02, help="β at t=T (default 0.02)")
    g.add_argument("--T", type=int, default=1000, help="number of diffusion steps (1..100000; default 1000)")
    m = t.add_argument_group("model")
    m.add_argument("--arch", choices=sorted(ARCHITECTURES), default="cnn", help="report CNN or U-Net (default cnn)")
    m.add_argument("--hidden", type=_int_list, help="CNN hidden widths (default 16,32,32,16)")
    m.add_argument("--kernel-size", type=int, help="CNN kernel size (odd; default 7)")
    m.add_argument("--base-channels", type=int, help="U-Net base channels (multiple of 8; default 32)")
    o = t.add_argument_group("optimisation")
    o.add_argument("--epochs", type=int, default=100)
    o.add_argument("--batch-size", type=int, default=128)
    o.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate (default 2e-4)")
    o.add_argument("--ema", type=float, metavar="DECAY", help="keep an EMA of the weights (e.g. 0.999)")
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    d = t.add_argument_group("data")
    d.add_argument("--dataset", choices=DATASETS, default="mnist")
    d.add_argument("--data-root", help="dataset cache folder (default ./data or $DIFFUSION_LAB_DATA)")
    d.add_argument("--no-download", action="store_true", help="never try to download")
    d.add_argument("--limit", type=int, help="train on the first N images only")
    t.add_argument("--sample-epochs", type=_int_list, help="epochs at which to save previews "
                   "(default every 10th and the last)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    s = sub.add_parser("sample", help="generate images from a checkpoint",
                       description="Sample from a checkpoint; writes OUT.npy (N×28×28 in [0, 1]) and OUT.png.")
    s.add_argument("checkpoint", help="a .safetensors/.json pair, a run directory, or a shipped name")
    s.add_argument("--n", type=int, default=16, help="number of images (1..4096; default 16)")
    s.add_argument("--sampler", default="ancestral", help=f"one of {', '.join(NOISE_SAMPLERS)} (default ancestral)")
    s.add_argument("--steps", type=int, help="steps for ddim / dpm++2m (ancestral always takes T)")
    s.add_argument("--eta", type=float, default=0.0, help="DDIM stochasticity η in [0, 1] (default 0)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", type=Path, default=Path("samples"), help="output stem (default ./samples)")
    s.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "mps"])

    i = sub.add_parser("info", help="list shipped checkpoints, or describe one",
                       description="Without an argument, list checkpoints/; with one, print its config.")
    i.add_argument("checkpoint", nargs="?")
    return p


def cmd_train(args: argparse.Namespace) -> int:
    if args.resume is None and args.out is None:
        raise ValueError("give --out RUN_DIR for a new run, or --resume RUN_DIR to continue one")
    if args.preset and args.schedule:
        raise ValueError("give either --preset or --schedule (with --beta1/--beta2/--T), not both")
    diffusion = (noise_diffusion_config(kind=args.schedule, beta1=args.beta1, beta2=args.beta2, T=args.T)
                 if args.schedule else noise_diffusion_config(preset=args.preset or "default"))
    params: dict = {}
    if args.arch == "cnn":
        if args.hidden:
            params["hidden"] = args.hidden
        if args.kernel_size:
            params["kernel_size"] = args.kernel_size
    elif args.base_channels:
        params["base_channels"] = args.base_channels
    config = TrainConfig(
        diffusion=diffusion, model={"arch": args.arch, "params": params}, dataset=args.dataset,
        data_root=args.data_root, download=not args.no_download, limit=args.limit, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, seed=args.seed, ema_decay=args.ema, device=args.device,
        sample_epochs=args.sample_epochs,
    )
    run_dir = args.resume or args.out
    if args.resume is None and (run_dir / "config.json").exists():
        raise ValueError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
    config.validate()

    def request_stop(signum, frame):  # SIGTERM: stop cleanly at the next batch
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        (Path(run_dir) / "STOP").touch()

    signal.signal(signal.SIGTERM, request_stop)
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        def on_batch(epoch: int, b: int, nb: int, loss: float) -> None:
            nonlocal bar
            if bar is None or b == 1:
                if bar is not None:
                    bar.close()
                bar = tqdm(total=nb, desc=f"epoch {epoch}", unit="batch", leave=False, file=sys.stderr)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
    else:
        on_batch = None

    def on_epoch(r) -> None:
        print(f"epoch {r.epoch}/{r.epochs}  loss {r.loss:.5f}  wall {r.wall_time:.1f}s", flush=True)

    try:
        path = train(config, run_dir, resume=args.resume is not None, on_batch=on_batch, on_epoch=on_epoch)
    finally:
        if bar is not None:
            bar.close()
    print(f"checkpoint: {path}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    ckpt = load_checkpoint(resolve_checkpoint(args.checkpoint), device="cpu")
    from .training import resolve_device

    device = resolve_device(args.device)
    result = sample_checkpoint(ckpt, args.sampler, n=args.n, seed=args.seed, steps=args.steps, eta=args.eta,
                               device=device)
    npy, png = save_samples(to_unit_numpy(result.samples), args.out)
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
        diff = meta["diffusion"]
        what = (f"noise {diff['schedule']['kind']} T={diff['schedule']['T']}" if diff["type"] == "noise"
                else f"cold {diff['degradation'].get('kind', '?')}")
        print(f"{wpath.stem:<16} {meta['model']['arch']:<5} {what:<28} epochs={meta.get('epochs', '?')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"train": cmd_train, "sample": cmd_sample, "info": cmd_info}[args.command]
    try:
        return handler(args)
    except (ValueError, CheckpointError, DatasetUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrainingError as exc:
        print(f"training failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
