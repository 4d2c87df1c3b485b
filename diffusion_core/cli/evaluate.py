"""`evaluate`, `ship` and `figures`: their arguments and what they run."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from diffusion_core.cli.arguments import (
    N_SAMPLES,
    STEPS,
    _class_arguments,
    _data_arguments,
    _device_argument,
    _number,
    _precision_argument,
    _quiet_argument,
    _seed,
    _spacing_arguments,
)
from diffusion_core.cli.sample import _checkpoint_images, _short_name
from diffusion_core.io.checkpoints import (
    CheckpointError,
    load_checkpoint,
    shipped_dir,
)
from diffusion_core.io.images import save_samples, to_unit_numpy
from diffusion_core.process import SamplerChoice
from diffusion_core.samplers import MAX_SAMPLES


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
