"""Command line: python -m diffusion_core {train, sample, info, evaluate, ship, figures, train-classifier,
train-noisy-classifier}.

Every numeric argument is checked against the library's own limits when argparse reads it, so a bad
value is refused in one line ("error: argument --n: …") before any checkpoint or data is loaded."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import torch

from diffusion_core import __version__
from diffusion_core.evaluation import classifier as _classifier
from diffusion_core.io.checkpoints import (
    CheckpointError,
    list_checkpoints,
    load_checkpoint,
    resolve_checkpoint,
    shipped_dir,
)
from diffusion_core.io.data import DATASETS, DatasetUnavailableError
from diffusion_core.io.images import save_samples, to_unit_numpy
from diffusion_core.models import ARCHITECTURES
from diffusion_core.models.guidance import MAX_GUIDANCE, NO_LABEL
from diffusion_core.process import SamplerChoice, process_from_config
from diffusion_core.process.cold import COLD_LOSSES, COLD_STARTS
from diffusion_core.process.degradations import DEFAULT_T, DEGRADATION_KINDS, STRENGTH_SCHEDULES
from diffusion_core.process.degradations import MAX_T as DEGRADATION_MAX_T
from diffusion_core.process.knobs import Knob
from diffusion_core.process.schedules import MAX_T, PRESETS, SCHEDULE_KINDS
from diffusion_core.process.spacing import SPACINGS
from diffusion_core.process.targets import DEFAULT_GAMMA, PREDICTIONS, WEIGHTINGS
from diffusion_core.samplers import MAX_SAMPLES, SamplerStep, samplers_of, validate_seed
from diffusion_core.samplers.registry import SAMPLERS
from diffusion_core.sampling import sample_checkpoint
from diffusion_core.training.options import TRAIN_OPTIONS, parse_key_value, train_config
from diffusion_core.training.precision import PRECISIONS
from diffusion_core.training.recipes import RECIPES
from diffusion_core.training.trainer import (
    INT_RANGES,
    LR_DECAYS,
    TrainConfig,
    TrainingError,
    train,
)

DIGIT_RANGE = (NO_LABEL, 9)  # a digit, or -1: unconditional (guidance.sample_labels)
# the models check widths and kernels only from below; these keep a typo from allocating gigabytes
MAX_WIDTH, MAX_KERNEL = 1024, 27


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, "error: argument --n: …", like the commands' own."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _whole(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse type: an integer in lo..hi."""
    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = lo - 1
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be an integer between {lo} and {hi}; got {text!r}")
        return value
    return whole


def _seed(text: str) -> int:
    """An argparse type: a seed, as samplers.validate_seed takes it."""
    try:
        value = int(text)
        validate_seed(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer below 2**63; got {text!r}") from None
    return value


def _number(lo: float, hi: float = math.inf, open_lo: bool = False, open_hi: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number between lo and hi (each end excluded when open)."""
    rule = " ".join([f"{lo:g}", "<" if open_lo else "≤", "value"] +
                    ([] if hi == math.inf else ["<" if open_hi else "≤", f"{hi:g}"]))

    def number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and (lo < value if open_lo else lo <= value)
                and (value < hi if open_hi else value <= hi)):
            raise argparse.ArgumentTypeError(f"must be a number with {rule}; got {text!r}")
        return value
    return number


def _int_list(lo: int, hi: int) -> Callable[[str], list[int]]:
    """An argparse type: comma-separated integers, each in lo..hi."""
    def int_list(text: str) -> list[int]:
        try:
            values = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            values = []
        if not values or not lo <= min(values) <= max(values) <= hi:
            raise argparse.ArgumentTypeError(f"must be comma-separated integers between {lo} and {hi}; got {text!r}")
        return values
    return int_list


def _key_value(text: str) -> tuple[str, object]:
    """KEY=VALUE with VALUE read as an integer, a number, none, or text (training.options.parse_key_value)."""
    try:
        return parse_key_value(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


N_SAMPLES = _whole(1, MAX_SAMPLES)  # samplers.validate_sample_count
STEPS = _whole(1, max(MAX_T, DEGRADATION_MAX_T))  # at most the checkpoint's own T: checked once it is loaded
RHO = _number(0, 100, open_lo=True)


def _spacing_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("where the steps go (noise models; see process/spacing.py)")
    g.add_argument("--spacing", choices=SPACINGS, help="uniform in t, log-snr, karras (ρ) or edm (default: the "
                   "sampler's own — ddim uniform, dpm++ log-snr, euler/heun/euler-a/pc karras)")
    g.add_argument("--rho", type=RHO, default=7.0, help="ρ of the Karras spacing, > 0 (default 7)")
    _knob_arguments(parser)


def _knob_arguments(parser: argparse.ArgumentParser) -> None:
    """A flag for every registered sampler knob (samplers/*.py declare them: process/knobs.py), e.g. --eta."""
    g = parser.add_argument_group("sampler knobs (each applies to the samplers named; others refuse it)")
    for name, (knob, samplers) in _registered_knobs().items():
        g.add_argument(f"--{name.replace('_', '-')}", dest=name, type=_number(knob.lo, knob.hi),
                       metavar=name.upper(), help=f"{', '.join(samplers)}: {knob.label} — {knob.help} "
                       f"({knob.lo:g}..{knob.hi:g}; default {knob.default:g})")


def _registered_knobs() -> dict[str, tuple[Knob, list[str]]]:
    """Every registered knob by name, with the samplers that take it."""
    knobs: dict[str, tuple[Knob, list[str]]] = {}
    for spec in sorted(SAMPLERS.values(), key=lambda s: (s.process, s.order)):
        for knob in spec.knobs:
            knobs.setdefault(knob.name, (knob, []))[1].append(spec.name)
    return knobs


def _given_knobs(args: argparse.Namespace) -> dict[str, float]:
    """The sampler knobs given on the command line (the others stay at the sampler's defaults)."""
    return {name: getattr(args, name) for name in _registered_knobs() if getattr(args, name, None) is not None}


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m diffusion_core", description="Diffusion Lab: train and sample "
                                "denoising diffusion models on MNIST-sized images.")
    p.add_argument("--version", action="version", version=f"diffusion_core {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    _train_parser(sub.add_parser)
    _sample_parser(sub.add_parser)
    _info_parser(sub.add_parser)
    _evaluate_parser(sub.add_parser)
    _ship_parser(sub.add_parser)
    _figures_parser(sub.add_parser)
    _train_noisy_classifier_parser(sub.add_parser)
    _train_classifier_parser(sub.add_parser)
    return p


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
                   "default 1000)")
    g.add_argument("--prediction", choices=PREDICTIONS, help="what the network predicts: eps (the report's), x0 "
                   "or v = √ᾱ·ε − √(1−ᾱ)·x0 (default eps)")
    g.add_argument("--weighting", choices=WEIGHTINGS, help="loss weight over noise levels: uniform (the plain "
                   "MSE of the target; default), min-snr or soft-min-snr (Hang et al.)")
    g.add_argument("--snr-gamma", type=_number(0, 1e4, open_lo=True), metavar="GAMMA",
                   help=f"γ of min-snr / soft-min-snr (default {DEFAULT_GAMMA:g})")
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


def _evaluate_parser(add: Callable[..., argparse.ArgumentParser]) -> None:
    """The `evaluate` command's options."""
    e = add("evaluate", help="classifier metrics of a checkpoint's samples or of a .npy of images",
            description="Classifier-FID, confidence, class histogram / entropy and Inception-Score "
            "analogue of SOURCE: a .npy of N×28×28 images in [0, 1], or a checkpoint to sample from. "
            "Prints JSON.")
    e.add_argument("source", help="a .npy file, a .safetensors/.json pair, a run directory or a shipped name")
    e.add_argument("--n", type=N_SAMPLES, default=1000, help="samples to draw from a checkpoint (default 1000)")
    e.add_argument("--sampler", help="sampler for a checkpoint (default: its first, e.g. ancestral)")
    e.add_argument("--steps", type=STEPS, help="steps for few-step samplers")
    _spacing_arguments(e)
    e.add_argument("--seed", type=_seed, default=0, help="sampling seed and the floor's draw (default 0)")
    e.add_argument("--reference", choices=["test", "train"], default="test",
                   help="real split the FID compares against (default test); the floor uses the other split")
    e.add_argument("--scale", action="store_true", help="also compute the FID floor (held-out real digits) and "
                   "ceilings (pure noise, black images) at the same sample count")
    e.add_argument("--classifier", type=Path, help="classifier checkpoint (default checkpoints/classifier)")
    e.add_argument("--save-samples", type=Path, metavar="STEM", help="keep a checkpoint's samples as STEM.npy/.png")
    e.add_argument("--out", type=Path, help="also write the JSON to this file")
    _data_arguments(e)
    _device_argument(e)
    _precision_argument(e)
    _class_arguments(e)
    _quiet_argument(e)


def _ship_parser(add: Callable[..., argparse.ArgumentParser]) -> None:
    """The `ship` command's options."""
    h = add("ship", help="copy a finished run into checkpoints/ with measured metrics and a card",
            description="Sample N images from RUN_DIR's model with its default sampler, measure "
            "classifier-FID (with the floor and ceilings at N), confidence and class entropy, and write "
            "OUT_DIR/NAME.safetensors, .json (metrics inside) and .md (the card).")
    h.add_argument("run", type=Path, metavar="RUN_DIR")
    h.add_argument("--name", required=True, help="shipped name, e.g. default-unet")
    h.add_argument("--out-dir", type=Path, default=shipped_dir(), help="default: the project's checkpoints/")
    h.add_argument("--n", type=N_SAMPLES, default=1000, help="samples to measure (default 1000)")
    h.add_argument("--sampler", help="default: the model's first sampler")
    h.add_argument("--steps", type=STEPS)
    _spacing_arguments(h)
    h.add_argument("--seed", type=_seed, default=0)
    h.add_argument("--reference", choices=["test", "train"], default="test")
    _data_arguments(h)
    _device_argument(h)
    _class_arguments(h, ship=True)
    _quiet_argument(h)


def _figures_parser(add: Callable[..., argparse.ArgumentParser]) -> None:
    """The `figures` command's options."""
    f = add("figures", help="write the report's figures as HTML files",
            description="Write the report's figures (ᾱ_t, sample grids, samples at epochs, loss and "
            "FID curves, blur schedule, noise vs blur, densities, PCA clusters) as offline HTML.")
    f.add_argument("--out", type=Path, required=True, help="folder for the .html files")
    f.add_argument("--runs", type=Path, nargs="*", default=[], help="training run directories (curves, previews)")
    f.add_argument("--samples", nargs="*", default=[], metavar="NAME=FILE.npy", help="sample sets in [0, 1]")
    f.add_argument("--checkpoints", nargs="*", default=[], help="checkpoints to sample --n images from")
    f.add_argument("--n", type=N_SAMPLES, default=16, help="images per checkpoint (default 16)")
    f.add_argument("--sampler", help="sampler for the checkpoints (default: each one's first)")
    f.add_argument("--steps", type=STEPS, help="steps for few-step samplers")
    f.add_argument("--seed", type=_seed, default=0)
    f.add_argument("--real-n", type=N_SAMPLES, default=500, help="real test digits in the density / PCA views "
                   f"(1..{MAX_SAMPLES}; default 500)")
    f.add_argument("--fid-floor", type=_number(0), help="draw this real-data FID floor on the FID curves")
    f.add_argument("--classifier", type=Path, help="classifier checkpoint (default checkpoints/classifier)")
    f.add_argument("--self-contained", action="store_true", help="embed plotly.js in every file (default: one "
                   "plotly.min.js next to them)")
    _data_arguments(f)
    _quiet_argument(f)


def _train_noisy_classifier_parser(add: Callable[..., argparse.ArgumentParser]) -> None:
    """The `train-noisy-classifier` command's options."""
    nc = add("train-noisy-classifier", help="train the noise-aware classifier for classifier guidance",
             description="Train p(y | z_t, t) on noised digits of the report's default schedule and write "
             "OUT.safetensors, OUT.json and the card OUT.md.")
    nc.add_argument("--out", type=Path, default=Path("checkpoints/noisy-classifier"), help="output stem "
                    "(default checkpoints/noisy-classifier)")
    nc.add_argument("--epochs", type=_whole(1, 1000), default=30)
    nc.add_argument("--batch-size", type=_whole(1, 4096), default=64)
    nc.add_argument("--lr", type=_number(0, 1, open_lo=True), default=1e-3)
    nc.add_argument("--seed", type=_seed, default=0)
    _data_arguments(nc)


def _train_classifier_parser(add: Callable[..., argparse.ArgumentParser]) -> None:
    """The `train-classifier` command's options."""
    c = add("train-classifier", help="train the MNIST classifier behind the metrics",
            description="Train the small MNIST CNN used for classifier-FID and write OUT.safetensors, "
            "OUT.json and the card OUT.md.")
    c.add_argument("--out", type=Path, default=Path("checkpoints/classifier"), help="output stem "
                   "(default checkpoints/classifier)")
    ranges = _classifier.INT_RANGES
    c.add_argument("--epochs", type=_whole(*ranges["epochs"]), default=15)
    c.add_argument("--batch-size", type=_whole(*ranges["batch_size"]), default=64)
    c.add_argument("--lr", type=_number(0, 1, open_lo=True), default=1e-3)
    c.add_argument("--seed", type=_seed, default=0)
    c.add_argument("--val-size", type=_whole(*ranges["val_size"]), default=500,
                   help="training digits held out for validation")
    c.add_argument("--no-augment", action="store_true", help="no random rotation / scale / shift")
    c.add_argument("--limit", type=_whole(*ranges["limit"]), help="use only the first N training digits "
                   "(quick checks)")
    _data_arguments(c)



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

    try:
        path = train(config, run_dir, resume=resume is not None, on_batch=on_batch, on_epoch=on_epoch)
    finally:
        if bar is not None:
            bar.close()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    print(f"checkpoint: {path}")
    return 0


def _precision_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup, default: str = "auto") -> None:
    parser.add_argument("--precision", default=default, choices=PRECISIONS, help="auto: bf16 autocast where the "
                        "CPU/GPU runs it natively, else fp32 (default); fp32 opts out; bf16 forces it")


def _class_arguments(parser: argparse.ArgumentParser, ship: bool = False) -> None:
    g = parser.add_argument_group("class-conditional models (trained with --conditional)")
    g.add_argument("--digit", type=_whole(*DIGIT_RANGE), help="generate this digit 0–9 (-1: unconditional; "
                   "default: 0–9 in turn)")
    g.add_argument("--guidance", type=_number(0, MAX_GUIDANCE), help=f"classifier-free guidance scale "
                   f"0 ≤ w ≤ {MAX_GUIDANCE:g}: ε̃ = (1+w)·ε(z,t,y) − w·ε(z,t,∅) ("
                   + ("stored as the model's default" if ship else "default: the model's own") + ")")


def _data_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--data-root", help="dataset cache folder (default ./data or $DIFFUSION_LAB_DATA)")
    parser.add_argument("--no-download", action="store_true", help="never try to download")


def _device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda", "mps"])


def _quiet_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bar (on stderr) while sampling")


@contextlib.contextmanager
def _progress(total: int, desc: str, quiet: bool) -> Iterator[Callable[[SamplerStep], None] | None]:
    """An on_step callback driving a tqdm bar on stderr over a run's `total` network steps (None if quiet)."""
    if quiet:
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit="step", file=sys.stderr) as bar:
        def on_step(frame: SamplerStep) -> None:
            if frame.t > 0:  # the last frame (t = 0) is the result, not a step
                bar.update(1)
        yield on_step


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


def _unit_split(split: str, args: argparse.Namespace, limit: int | None = None):
    """(images N×28×28 in [0, 1], labels, source) of an MNIST split."""
    from diffusion_core.io.data import load_dataset

    ds = load_dataset("mnist", split, root=args.data_root, download=not args.no_download)
    imgs = to_unit_numpy(ds.images[:limit] if limit else ds.images)
    return imgs, ds.labels[:len(imgs)].numpy(), ds.source


def _load_npy(path: Path):
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read {path} as a .npy array of N×28×28 images in [0, 1]: {exc}") from None


def _short_name(checkpoint: str) -> str:
    """A checkpoint's name without folder or suffix, for labels."""
    return Path(checkpoint).stem if checkpoint.endswith((".json", ".safetensors")) else Path(checkpoint).name


def _checkpoint_images(name: str, args: argparse.Namespace, n: int):
    """(n images N×28×28 in [0, 1], sampler) from a checkpoint, with a progress bar unless args.quiet."""
    from diffusion_core.training.trainer import resolve_device

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


def _metrics_report(images, classifier, args: argparse.Namespace) -> dict:
    """Metrics of images in [0, 1] against args.reference, plus the FID scale when args.scale."""
    from diffusion_core.evaluation.metrics import evaluate_samples, fid_scale, reference_stats

    ref_images, _, ref_source = _unit_split(args.reference, args)
    ref = reference_stats(classifier, ref_images)
    report = {"reference": f"mnist {args.reference} split ({ref_source})", **evaluate_samples(images, classifier, ref)}
    if args.scale:
        other = "train" if args.reference == "test" else "test"
        held, _, _ = _unit_split(other, args)
        scale = fid_scale(classifier, ref, held, n=report["n"], seed=args.seed)
        report.update(scale={**scale, "floor_images": f"mnist {other} split"},
                      fid_over_floor=report["fid"] / scale["floor"] if report["fid"] is not None else None)
    return report


def cmd_ship(args: argparse.Namespace) -> int:
    """Copy a run's checkpoint into checkpoints/ with measured metrics and a card."""
    import shlex

    from diffusion_core.evaluation.classifier import load_classifier
    from diffusion_core.io.cards import model_card
    from diffusion_core.io.checkpoints import save_checkpoint
    from diffusion_core.io.files import atomic_write_bytes, read_jsonl
    from diffusion_core.io.mixtures import MIXTURE_DIR, ship_mixture
    from diffusion_core.models import count_parameters

    if not (args.run / "model.json").is_file():
        raise ValueError(f"{args.run} is not a finished run directory (no model.json)")
    if args.digit is not None:
        raise ValueError("ship measures all ten digits in turn; drop --digit")
    ckpt = load_checkpoint(args.run / "model.safetensors")
    fitted = ckpt.process.fitted_start(SamplerChoice(ckpt.process.samplers[0]))  # (degradation, t) of a fit
    if fitted is not None and args.out_dir.resolve() == MIXTURE_DIR.parent.resolve():
        # the app's mixture start, fitted once here (and measured below from the file) instead of at the first
        # cold generation on every machine
        for path in ship_mixture(ckpt.process.degradation, ckpt.config.get("dataset", "mnist")):
            print(f"mixture start: {path}")
    images, sampler = _checkpoint_images(str(args.run), args, args.n)
    args.scale = True
    report = {"sampler": sampler, "steps": args.steps, "seed": args.seed,
              **_metrics_report(images, load_classifier(None), args)}
    rows = read_jsonl(args.run / "metrics.jsonl")
    recompute = ["python", "-m", "diffusion_core", "evaluate", args.name, "--n", str(args.n), "--sampler", sampler,
                 "--seed", str(args.seed), "--scale"] + (["--steps", str(args.steps)] if args.steps else []) + (
        ["--spacing", args.spacing] if args.spacing else [])
    keep = ("fid", "fid_over_floor", "confident_fraction", "mean_confidence", "class_entropy", "classes_present",
            "inception_score", "n")
    metrics = {**ckpt.config.get("metrics", {}), **{k: report[k] for k in keep}, "sampler": sampler,
               "steps": args.steps, "fid_floor": report["scale"]["floor"], "optimizer_steps": rows[-1]["steps"],
               **({"guidance": args.guidance} if args.guidance is not None else {})}
    out = args.out_dir / args.name
    shipped = {**ckpt.config, "name": args.name, "metrics": metrics}
    if args.guidance is not None:  # the model's default from now on (sampling.checkpoint_frames)
        shipped["guidance"] = args.guidance
    save_checkpoint(out, ckpt.model, shipped)
    card = model_card(args.name, shipped, rows, report, shlex.join(recompute), count_parameters(ckpt.model))
    atomic_write_bytes(out.with_suffix(".md"), card.encode())
    # the training curves travel with the model (the Evaluate page draws <name>.metrics.jsonl)
    atomic_write_bytes(out.with_suffix(".metrics.jsonl"), (args.run / "metrics.jsonl").read_bytes())
    print(card)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from diffusion_core.evaluation.classifier import load_classifier
    from diffusion_core.io.files import atomic_write_json

    classifier = load_classifier(args.classifier)
    report: dict = {"source": str(args.source)}
    if str(args.source).endswith(".npy"):
        images = _load_npy(Path(args.source))
        report["kind"] = "samples"
    else:
        images, sampler = _checkpoint_images(args.source, args, args.n)
        report.update(kind="checkpoint", sampler=sampler, steps=args.steps, seed=args.seed,
                      **({"spacing": args.spacing} if args.spacing else {}))
        if args.save_samples:
            save_samples(images, args.save_samples)
    report.update(_metrics_report(images, classifier, args))
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out, report)
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    import html

    from diffusion_core.evaluation.classifier import load_classifier
    from diffusion_core.figures import report_figures, write_html

    samples = {}
    for item in args.samples:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--samples takes NAME=FILE.npy; got {item!r}")
        samples[name] = _load_npy(Path(path))
    for name in args.checkpoints:
        samples[_short_name(name)] = _checkpoint_images(name, args, args.n)[0]
    try:
        classifier = load_classifier(args.classifier)
    except CheckpointError as exc:
        if args.classifier is not None:
            raise
        print(f"note: no density / PCA figures ({exc})", file=sys.stderr)
        classifier = None
    real, labels, _ = _unit_split("test", args, limit=args.real_n)
    figs = report_figures(args.runs, samples, classifier, real, labels, fid_floor=args.fid_floor, seed=args.seed)
    links = []
    for stem, fig in figs.items():
        path = write_html(fig, args.out / f"{stem}.html", self_contained=args.self_contained)
        links.append(f'<li><a href="{html.escape(path.name)}">{html.escape(stem)}</a></li>')
        print(path)
    index = "<!doctype html><title>Diffusion Lab figures</title><h1>Figures</h1><ul>" + "".join(links) + "</ul>"
    (args.out / "index.html").write_text(index, encoding="utf-8")
    print(args.out / "index.html")
    return 0


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


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a refused argument (already reported in one line)
        return exc.code if isinstance(exc.code, int) else 0
    handler = {"train": cmd_train, "sample": cmd_sample, "info": cmd_info, "evaluate": cmd_evaluate,
               "figures": cmd_figures, "train-classifier": cmd_train_classifier, "ship": cmd_ship,
               "train-noisy-classifier": cmd_train_noisy_classifier}[args.command]
    try:
        return handler(args)
    except (ValueError, CheckpointError, DatasetUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrainingError as exc:
        print(f"training failed: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file that cannot be read or written: say which and why
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
