"""Command line: python -m diffusion_core {train, sample, info, evaluate, ship, figures, train-classifier,
train-noisy-classifier, lessons}.

Every numeric argument is checked against the library's own limits when argparse reads it, so a bad
value is refused in one line ("error: argument --n: …") before any checkpoint or data is loaded."""

from __future__ import annotations

import argparse
import sys

from diffusion_core import __version__
from diffusion_core.cli.arguments import _Parser
from diffusion_core.cli.evaluate import (
    _evaluate_parser,
    _figures_parser,
    _ship_parser,
    cmd_evaluate,
    cmd_figures,
    cmd_ship,
)
from diffusion_core.cli.lessons import _lessons_parser, cmd_lessons
from diffusion_core.cli.sample import _info_parser, _sample_parser, cmd_info, cmd_sample
from diffusion_core.cli.train import (
    _train_classifier_parser,
    _train_noisy_classifier_parser,
    _train_parser,
    cmd_train,
    cmd_train_classifier,
    cmd_train_noisy_classifier,
)
from diffusion_core.io.checkpoints import CheckpointError
from diffusion_core.io.data import DatasetUnavailableError
from diffusion_core.training.config import TrainingError

__all__ = ["build_parser", "main"]


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
    _lessons_parser(sub.add_parser)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a refused argument (already reported in one line)
        return exc.code if isinstance(exc.code, int) else 0
    handler = {"train": cmd_train, "sample": cmd_sample, "info": cmd_info, "evaluate": cmd_evaluate,
               "figures": cmd_figures, "train-classifier": cmd_train_classifier, "ship": cmd_ship,
               "train-noisy-classifier": cmd_train_noisy_classifier, "lessons": cmd_lessons}[args.command]
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
