"""`train`, `train-classifier` and `train-noisy-classifier`: their arguments and what they run."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from diffusion_core.cli.arguments import (
    MAX_KERNEL,
    MAX_WIDTH,
    _data_arguments,
    _int_list,
    _key_value,
    _number,
    _precision_argument,
    _seed,
    _whole,
)
from diffusion_core.evaluation import classifier as _classifier
from diffusion_core.io.data import DATASETS
from diffusion_core.models import ARCHITECTURES
from diffusion_core.process.cold import COLD_LOSSES
from diffusion_core.process.degradations import DEFAULT_T, DEGRADATION_KINDS, STRENGTH_SCHEDULES
from diffusion_core.process.degradations import MAX_T as DEGRADATION_MAX_T
from diffusion_core.process.flow import MAX_DISTIL_STEPS, TIME_SAMPLINGS
from diffusion_core.process.schedules import MAX_T, PRESETS, SCHEDULE_KINDS
from diffusion_core.process.targets import DEFAULT_GAMMA, PREDICTIONS, WEIGHTINGS
from diffusion_core.training.config import INT_RANGES, LR_DECAYS, TrainConfig
from diffusion_core.training.coupling import (
    DEFAULT_PAIRS,
    DEFAULT_SAMPLER,
    DEFAULT_STEPS,
    PAIR_SAMPLERS,
    PAIRS_RANGE,
    STEPS_RANGE,
)
from diffusion_core.training.options import TRAIN_OPTIONS, train_config
from diffusion_core.training.recipes import RECIPES
from diffusion_core.training.trainer import train


def _train_parser(add: Callable[..., argparse.ArgumentParser]) -> None:
    """The `train` command's options."""
    # no defaults here: an option not given is absent, and training.options fills in TrainConfig's defaults
    t = add("train", help="train a model into a run directory", argument_default=argparse.SUPPRESS,
            description="Train a denoiser. Choose a report preset or an explicit schedule; writes "
            "config.json, metrics.jsonl, status.json, model.safetensors/.json and sample previews.")
    t.add_argument("--out", type=Path, help="run directory to create (required unless --resume)")
    t.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a run from its last complete epoch")
    t.add_argument("--config", type=Path, metavar="FILE", help="a training config as JSON (what the app's jobs "
                   "write), instead of the options below")
    t.add_argument("--recipe", choices=list(RECIPES), help="start from a named recipe; options given here win. quick: "
                   "recognisable digits in about 10 minutes on 2 CPU cores; report: the source report's CNN recipe "
                   "(100 epochs). Without it, each option's own default")
    g = t.add_argument_group("diffusion process")
    g.add_argument("--preset", choices=sorted(PRESETS), help="the report's schedules (default: 'default')")
    g.add_argument("--schedule", choices=SCHEDULE_KINDS, help="schedule kind, with --beta1/--beta2/--T")
    beta = _number(0, 1, open_lo=True, open_hi=True)
    g.add_argument("--beta1", type=beta, help="with --schedule: β at t=0 (0 < β1 < β2 < 1; default 1e-4)")
    g.add_argument("--beta2", type=beta, help="with --schedule: β at t=T (default 0.02)")
    g.add_argument("--T", type=_whole(1, MAX_T), help=f"with --schedule: number of diffusion steps (1..{MAX_T}; "
                   "default 1000); with --flow: steps of its time grid t = k/T (default 1000)")
    g.add_argument("--prediction", choices=PREDICTIONS, help="what the network predicts: eps (the report's), x0 "
                   "or v = √ᾱ·ε − √(1−ᾱ)·x0 (default eps)")
    g.add_argument("--weighting", choices=WEIGHTINGS, help="loss weight over noise levels: uniform (the plain "
                   "MSE of the target; default), min-snr or soft-min-snr (Hang et al.)")
    g.add_argument("--snr-gamma", type=_number(0, 1e4, open_lo=True), metavar="GAMMA",
                   help=f"γ of min-snr / soft-min-snr (default {DEFAULT_GAMMA:g})")
    _flow_arguments(t)
    _cold_arguments(t)
    m = t.add_argument_group("model")
    m.add_argument("--arch", choices=sorted(ARCHITECTURES), help="report CNN or U-Net (default cnn)")
    m.add_argument("--init-from", metavar="CHECKPOINT", help="start from this checkpoint's weights (a path, run "
                   "directory or shipped name; its architecture is used, with a fresh optimiser)")
    m.add_argument("--hidden", type=_int_list(1, MAX_WIDTH), help="CNN hidden widths (default 16,32,32,16)")
    m.add_argument("--kernel-size", type=_whole(1, MAX_KERNEL), help=f"CNN kernel size (odd, 1..{MAX_KERNEL}; "
                   "default 7)")
    m.add_argument("--base-channels", type=_whole(8, MAX_WIDTH), help="U-Net base channels (multiple of 8; default 32)")
    m.add_argument("--patch", choices=("1", "2", "4"), help="U-Net only: fold p×p pixel blocks into channels "
                   "first (2: the network runs at 14×14 and 7×7, about 3× faster a step; default 1)")
    m.add_argument("--conditional", action="store_true", help="U-Net only: class-conditional on the digit labels, "
                   "for classifier-free guidance (an unconditional --init-from starts with a zero label embedding)")
    m.add_argument("--label-dropout", type=_number(0, 1, open_hi=True), metavar="P",
                   help="with --conditional: probability (0 ≤ P < 1) of training a label as 'none', so the same "
                   "net learns the unconditional ε (default 0.1)")
    o = t.add_argument_group("optimisation")
    o.add_argument("--epochs", type=_whole(*INT_RANGES["epochs"]), help="epochs to train (default 100); with "
                   "--resume, the total to reach (default: the run's own total)")
    o.add_argument("--batch-size", type=_whole(*INT_RANGES["batch_size"]), help="default 128")
    o.add_argument("--lr", type=_number(0, 1, open_lo=True), help="Adam learning rate (default 2e-4)")
    o.add_argument("--warmup", type=_whole(*INT_RANGES["warmup"]), metavar="STEPS",
                   help="linear learning-rate warm-up over this many optimiser steps (default 0: none)")
    o.add_argument("--lr-decay", choices=LR_DECAYS, help="learning-rate decay over the run: cosine (a half "
                   "cosine to 0 at the last step) or none (default)")
    o.add_argument("--ema", type=_number(0, 1, open_lo=True, open_hi=True), metavar="DECAY",
                   help="keep an EMA of the weights (e.g. 0.999)")
    o.add_argument("--seed", type=_seed, help="default 0")
    o.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="default auto")
    _precision_argument(o, default=argparse.SUPPRESS)
    d = t.add_argument_group("data")
    d.add_argument("--dataset", choices=DATASETS, help="default mnist")
    _data_arguments(d)
    d.add_argument("--limit", type=_whole(*INT_RANGES["limit"]), help="train on the first N images only")
    t.add_argument("--sample-epochs", type=_int_list(*INT_RANGES["epochs"]), help="epochs at which to save previews "
                   "(default every 10th and the last)")
    t.add_argument("--fid-every", type=_whole(*INT_RANGES["fid_every"]), metavar="N",
                   help="measure classifier-FID every N epochs and at the end (default 0: never; MNIST only)")
    t.add_argument("--fid-samples", type=_whole(*INT_RANGES["fid_samples"]),
                   help="samples per FID measurement (default 256)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")


def _flow_arguments(t: argparse.ArgumentParser) -> None:
    """`train`'s flow-matching options (process/flow.py)."""
    f = t.add_argument_group("flow matching (instead of noise)")
    f.add_argument("--flow", action="store_true", help="train a flow-matching model on the linear path z_t = "
                   "(1 − t)·x + t·ε, predicting the velocity ε − x (rectified flow)")
    f.add_argument("--time-sampling", choices=TIME_SAMPLINGS, help="with --flow: how training draws t — uniform "
                   "(default) or logit-normal (SD3), which favours the middle of the path")
    f.add_argument("--logit-mean", type=_number(-3, 3), help="with --time-sampling logit-normal: m (default 0)")
    f.add_argument("--logit-std", type=_number(0.1, 3), help="with --time-sampling logit-normal: s (default 1)")
    r = t.add_argument_group("rectified flow: reflow and one-step distillation of a trained flow")
    r.add_argument("--reflow-from", metavar="TEACHER", help="train on this flow model's own (noise, sample) pairs "
                   "(a path, run directory or shipped name): its process and architecture, starting from its weights "
                   "unless --init-from says otherwise; straighter paths, fewer steps")
    r.add_argument("--pairs", type=_whole(*PAIRS_RANGE), help=f"with --reflow-from: pairs the teacher draws "
                   f"(default {DEFAULT_PAIRS:,}; drawn once into the run directory)")
    r.add_argument("--pair-sampler", choices=PAIR_SAMPLERS, help=f"with --reflow-from: the teacher's deterministic "
                   f"sampler (default {DEFAULT_SAMPLER})")
    r.add_argument("--pair-steps", type=_whole(*STEPS_RANGE), help=f"with --reflow-from: its steps (default "
                   f"{DEFAULT_STEPS})")
    r.add_argument("--distil-steps", type=_whole(1, MAX_DISTIL_STEPS), metavar="N", help="with --reflow-from: "
                   "distil an N-step generator — train only at the N-step Euler grid's times, so that N Euler steps "
                   "land where the teacher's ODE does (1: one network call, x̂0 = z1 − v(z1, 1))")


def _cold_arguments(t: argparse.ArgumentParser) -> None:
    """`train`'s cold-diffusion options (a degradation instead of noise)."""
    c = t.add_argument_group("cold diffusion (instead of noise)")
    c.add_argument("--degradation", choices=DEGRADATION_KINDS, help="train a restorer for this degradation "
                   "(Algorithm 3); 'blur' is the report's (σ_t = 0.02 + 0.01·t, T = 500)")
    c.add_argument("--degradation-T", type=_whole(1, DEGRADATION_MAX_T), help="degradation steps (default per kind: " +
                   ", ".join(f"{k} {v}" for k, v in DEFAULT_T.items()) + ")")
    c.add_argument("--degradation-schedule", choices=STRENGTH_SCHEDULES,
                   help="strength schedule s(t/T) (default linear, as the report)")
    c.add_argument("--degradation-param", type=_key_value, action="append", metavar="KEY=VALUE",
                   help="a degradation parameter, e.g. sigma_max=3.0, min_size=7, fill=0, target=0.13, "
                   "noise_std=0.1 (repeatable)")
    c.add_argument("--loss", choices=COLD_LOSSES, help="restoration loss (default l2; the paper uses l1)")


def cmd_train(args: argparse.Namespace) -> int:
    out, resume = getattr(args, "out", None), getattr(args, "resume", None)
    if resume is None and out is None:
        raise ValueError("give --out RUN_DIR for a new run, or --resume RUN_DIR to continue one")
    options = {k: v for k, v in vars(args).items() if k in TRAIN_OPTIONS}
    if getattr(args, "config", None) is not None:
        if options or resume is not None:
            drop = ", ".join(f"--{k.replace('_', '-')}" for k in sorted(options)) or "--resume"
            raise ValueError(f"--config holds every setting of a new run; drop {drop}")
        try:
            saved = json.loads(args.config.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{args.config} is not a training config (invalid JSON: {exc})") from None
        if not isinstance(saved, dict):
            raise ValueError(f"{args.config} is not a training config (expected a JSON object)")
        config = TrainConfig.from_dict(saved)
        config.validate()
    else:
        config = train_config(options, resume=resume is not None)
    run_dir = resume or out
    first_rank = int(os.environ.get("RANK", "0")) == 0  # under torchrun, rank 0 creates the run directory
    if resume is None and first_rank and (run_dir / "config.json").exists():
        raise ValueError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")

    def request_stop(signum, frame):  # SIGTERM: stop cleanly at the next batch
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        (Path(run_dir) / "STOP").touch()

    signal.signal(signal.SIGTERM, request_stop)
    bar = None
    if not getattr(args, "quiet", False):
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

    finished = False
    try:
        path = train(config, run_dir, resume=resume is not None, on_batch=on_batch, on_epoch=on_epoch)
        finished = True
    finally:
        if bar is not None:
            bar.close()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            if finished:  # every rank tears the group down together (one leaving early aborted the other)
                torch.distributed.barrier()
            torch.distributed.destroy_process_group()
    print(f"checkpoint: {path}")
    return 0


def _train_noisy_classifier_parser(add: Callable[..., argparse.ArgumentParser]) -> None:
    """The `train-noisy-classifier` command's options."""
    nc = add("train-noisy-classifier", help="train the noise-aware classifier for classifier guidance",
             description="Train p(y | z_t, t) on noised digits of the report's default schedule and write "
             "OUT.safetensors, OUT.json and the card OUT.md.")
    _classifier_run_arguments(nc, "checkpoints/noisy-classifier", epochs=(1, 1000, 30), batch=(1, 4096))


def _train_classifier_parser(add: Callable[..., argparse.ArgumentParser]) -> None:
    """The `train-classifier` command's options."""
    c = add("train-classifier", help="train the MNIST classifier behind the metrics",
            description="Train the small MNIST CNN used for classifier-FID and write OUT.safetensors, "
            "OUT.json and the card OUT.md.")
    ranges = _classifier.INT_RANGES
    _classifier_run_arguments(c, "checkpoints/classifier", epochs=(*ranges["epochs"], 15), batch=ranges["batch_size"])
    c.add_argument("--val-size", type=_whole(*ranges["val_size"]), default=500,
                   help="training digits held out for validation")
    c.add_argument("--no-augment", action="store_true", help="no random rotation / scale / shift")
    c.add_argument("--limit", type=_whole(*ranges["limit"]), help="use only the first N training digits "
                   "(quick checks)")


def _classifier_run_arguments(parser: argparse.ArgumentParser, out: str, epochs: tuple[int, int, int],
                              batch: tuple[int, int]) -> None:
    """--out, --epochs (lo, hi, default), --batch-size (lo, hi; default 64), --lr, --seed and the data options of
    a classifier's training command."""
    parser.add_argument("--out", type=Path, default=Path(out), help=f"output stem (default {out})")
    parser.add_argument("--epochs", type=_whole(*epochs[:2]), default=epochs[2])
    parser.add_argument("--batch-size", type=_whole(*batch), default=64)
    parser.add_argument("--lr", type=_number(0, 1, open_lo=True), default=1e-3)
    parser.add_argument("--seed", type=_seed, default=0)
    _data_arguments(parser)


def cmd_train_classifier(args: argparse.Namespace) -> int:
    from diffusion_core.evaluation.classifier import (
        ClassifierTrainConfig,
        classifier_card,
        save_classifier,
        train_classifier,
    )
    from diffusion_core.io.files import atomic_write_bytes

    config = ClassifierTrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                   val_size=args.val_size, augment=not args.no_augment, data_root=args.data_root,
                                   download=not args.no_download, limit=args.limit)
    config.validate()

    def on_epoch(epoch: int, loss: float, val_acc: float) -> None:
        print(f"epoch {epoch}/{config.epochs}  loss {loss:.4f}  validation accuracy {100 * val_acc:.1f}%", flush=True)

    result = train_classifier(config, on_epoch=on_epoch)
    path = save_classifier(args.out, result.model, result.config)
    command = (f"python -m diffusion_core train-classifier --out {args.out} --epochs {args.epochs} --batch-size "
               f"{args.batch_size} --lr {args.lr:g} --seed {args.seed} --val-size {args.val_size}"
               + (" --no-augment" if args.no_augment else "") + (f" --limit {args.limit}" if args.limit else ""))
    card = path.with_suffix(".md")
    atomic_write_bytes(card, classifier_card(result.config, command).encode())
    m = result.config["metrics"]
    print(f"validation accuracy {100 * m['val_accuracy']:.2f}%, test accuracy {100 * m['test_accuracy']:.2f}% "
          f"({m['wall_time_s']} s)\nwrote {path}, {path.with_suffix('.json')} and {card}")
    return 0


def cmd_train_noisy_classifier(args: argparse.Namespace) -> int:
    from diffusion_core.evaluation.classifier import save_classifier
    from diffusion_core.evaluation.noisy_classifier import (
        noisy_classifier_card,
        noisy_classifier_meta,
        train_noisy_classifier,
    )
    from diffusion_core.io.data import load_dataset
    from diffusion_core.io.files import atomic_write_bytes

    train = load_dataset("mnist", "train", root=args.data_root, download=not args.no_download)
    test = load_dataset("mnist", "test", root=args.data_root, download=not args.no_download)
    result = train_noisy_classifier(train.images, train.labels, test.images, test.labels, epochs=args.epochs,
                                    batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                    on_epoch=lambda e, n, loss: print(f"epoch {e}/{n}  loss {loss:.4f}", flush=True))
    command = (f"python -m diffusion_core train-noisy-classifier --out {args.out} --epochs {args.epochs} "
               f"--batch-size {args.batch_size} --lr {args.lr:g} --seed {args.seed}")
    meta = noisy_classifier_meta(result, train.source, len(train), len(test), command, args.epochs,
                                 args.batch_size, args.lr, args.seed)
    path = save_classifier(args.out, result.model, meta)
    card = path.with_suffix(".md")
    atomic_write_bytes(card, noisy_classifier_card(meta).encode())
    print(f"test accuracy by t: {meta['metrics']['test_accuracy_by_t']}\nwrote {path}, {path.with_suffix('.json')} "
          f"and {card}")
    return 0
