# ruff: noqa: E402  (the project root goes on sys.path before the project imports)
"""Speed benchmark: a literal implementation of the report (benchmarks/reference.py) against
diffusion_core's fast paths, same model and same weights, printed as one table.

    python benchmarks/run.py [--quick] [--model CHECKPOINT] [--out benchmarks/results] [--threads N]

Timings are medians of repeats after warm-up, on torch.get_num_threads() threads (torch's default, one
per core, unless --threads sets torch.set_num_threads). Writes OUT/latest.json (the whole table) and
OUT/quality_vs_speed.json (classifier-FID and seconds per sampler and step count, shown on the Evaluate
page). --quick: few repeats, 64 FID samples and no 1000-step FID rows — minutes instead of the full run.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as `python benchmarks/run.py`: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from benchmarks import measure
from benchmarks.quality import QUALITY_STEPS, quality_plan, quality_vs_speed
from benchmarks.report import evaluate_targets, format_table, row, write_results
from diffusion_core.io.checkpoints import (
    CheckpointError,
    LoadedCheckpoint,
    load_checkpoint,
    resolve_checkpoint,
)
from diffusion_core.io.data import load_dataset
from diffusion_core.models import ReportCNN, build_model
from diffusion_core.process.gaussian import noise_diffusion_config
from diffusion_core.process.schedules import PRESETS
from diffusion_core.services.catalog import default_checkpoint
from diffusion_core.training.precision import cpu_has_native_bf16, resolve_precision, with_precision

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_PLAN = (("ancestral", None), ("ddim", 50), ("ddim", 20), ("dpm++2m", 20), ("dpm++2m", 10),
               ("dpm++2m-sde", 20), ("dpm++2m-sde", 10))


@dataclass
class BenchConfig:
    """How much to measure. The defaults are the full run; quick_config() is --quick."""

    quick: bool = False
    seed: int = 0
    batch_size: int = 128
    train_images: int | None = None  # limit the training set (tests)
    train_steps: int = 10  # optimiser steps per timed group
    train_repeats: int = 5
    train_warmup: int = 2
    sample_n: int = 16
    sample_plan: tuple = SAMPLE_PLAN
    sample_repeats: int = 3
    step_batches: tuple[int, ...] = (1, 16, 64)
    step_repeats: int = 30
    step_warmup: int = 3
    matmul_n: int = 2048
    matmul_repeats: int = 5
    quality_n: int = 1000
    quality_steps: tuple[int, ...] = QUALITY_STEPS
    quality_max_steps: int | None = None
    app: bool = True
    notes: list[str] = field(default_factory=list)


def quick_config() -> BenchConfig:
    return BenchConfig(quick=True, train_steps=2, train_repeats=3, train_warmup=1, sample_repeats=1,
                       step_repeats=10, step_warmup=2, matmul_repeats=3, quality_n=64, quality_max_steps=100)


# ------------------------------------------------------------------------------------------- model


def fresh_checkpoint(seed: int) -> LoadedCheckpoint:
    """An untrained report CNN with the report's default schedule."""
    p = PRESETS["default"]
    config = {"model": {"arch": "cnn", "params": {}},
              "diffusion": noise_diffusion_config(kind=p["kind"], beta1=p["beta1"], beta2=p["beta2"], T=p["T"])}
    torch.manual_seed(seed)
    return LoadedCheckpoint(model=build_model(config["model"]).eval(), config=config, path=Path("<untrained>"))


def resolve_model(arg: str | None, seed: int) -> tuple[LoadedCheckpoint, str, str | None]:
    """(checkpoint, description, warning). Only noise models with the report's linear schedule can be
    compared with the reference."""
    path = resolve_checkpoint(arg) if arg else default_checkpoint("noise_levels")
    if path is None:
        return (fresh_checkpoint(seed), "untrained report CNN (no noise checkpoint shipped)",
                "no trained noise model is shipped: the benchmark uses a freshly initialised report CNN, so its "
                "quality (FID) numbers are meaningless; pass --model CHECKPOINT for a trained one")
    ckpt = load_checkpoint(path)
    if not ckpt.process.noise_levels:
        raise ValueError(f"--model must be a noise (Gaussian) model; {path.stem} is a {ckpt.process.type} model")
    schedule = ckpt.process.schedule
    if schedule.kind != "linear":
        raise ValueError(f"--model must use the report's linear β schedule (the reference implements only that); "
                         f"{path.stem} uses {schedule.kind!r}")
    name = arg or path.stem
    return ckpt, f"{name} ({ckpt.config['model']['arch']}, {schedule.kind} T={schedule.T})", None


# ------------------------------------------------------------------------------------------ stages


def _log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def measure_ceiling(cfg: BenchConfig) -> dict[str, float]:
    return {"fp32": measure.matmul_gflops(cfg.matmul_n, torch.float32, cfg.matmul_repeats),
            "bf16": measure.matmul_gflops(cfg.matmul_n, torch.bfloat16, cfg.matmul_repeats)}


def ceiling_rows(cfg: BenchConfig, ceiling: dict[str, float], native: bool) -> list[dict]:
    n, fp32, bf16 = cfg.matmul_n, ceiling["fp32"], ceiling["bf16"]
    kind = "native" if native else "emulated (no avx512_bf16/AMX)"
    return [row("ceiling.fp32", "ceiling", f"fp32 matmul {n}×{n}", "GFLOP/s", fast=fp32,
                note="2n³ FLOPs / fastest run, measured before and after training"),
            row("ceiling.bf16", "ceiling", f"bf16 matmul {n}×{n}", "GFLOP/s", fast=bf16,
                note=f"bf16 {kind}: {bf16 / fp32:.2f}× fp32")]


def bench_training(cfg: BenchConfig, ckpt: LoadedCheckpoint, native: bool) -> tuple[list[dict], dict, dict]:
    schedule = ckpt.process.schedule
    if isinstance(ckpt.model, ReportCNN):
        net, which = ckpt.model, "the model's weights"
    else:
        torch.manual_seed(cfg.seed)
        net, which = ReportCNN(), "fresh weights (the model is not the report CNN)"
    images = load_dataset("mnist", "train", download=False).images
    images = images[: cfg.train_images] if cfg.train_images else images
    b, k = cfg.batch_size, cfg.train_steps
    auto = str(resolve_precision("auto", "cpu")).replace("torch.", "")
    _log(f"training: reference loop vs diffusion_core (precision auto = {auto}, and bf16 forced), interleaved")
    runs = measure.time_trainers({
        "ref": measure.reference_trainer(net, schedule, images, b, cfg.seed),
        "auto": measure.fast_trainer(net, schedule, images, b, cfg.seed, "auto"),
        "bf16": measure.fast_trainer(net, schedule, images, b, cfg.seed, "bf16"),
    }, b, k, cfg.train_repeats, cfg.train_warmup)
    ref, fast, bf16 = runs["ref"], runs["auto"], runs["bf16"]
    flops = measure.train_step_flops(net, schedule, b, cfg.seed)
    g = [flops / r.step_s / 1e9 for r in (ref, fast, bf16)]
    bf16_note = ("native bf16" if native else "bf16 EMULATED here (no avx512_bf16/AMX)") + \
        f": {bf16.images_per_s / ref.images_per_s:.2f}× reference"
    rows = [
        row("train.fp32_vs_auto", "training", f"report CNN, batch {b}, precision auto → {auto}", "images/s",
            ref.images_per_s, fast.images_per_s, note=f"{which}; Adam lr 2e-4"),
        row("train.bf16", "training", f"report CNN, batch {b}, bf16 autocast forced", "images/s",
            ref.images_per_s, bf16.images_per_s, note=bf16_note),
        row("train.loss", "training", f"mean loss of the last {k} steps (same init, {ref.steps} steps each)", "loss",
            ref.final_loss, fast.final_loss, note=f"bf16 forced: {bf16.final_loss:.4f}"),
    ]
    gflops = {"mflop_per_image": flops / b / 1e6, "ref": g[0], "auto": g[1], "bf16": g[2]}
    return rows, {"speedup": fast.images_per_s / ref.images_per_s, "bf16_speedup": bf16.images_per_s /
                  ref.images_per_s}, gflops


def gflops_row(g: dict, ceiling: dict[str, float]) -> dict:
    """Achieved GFLOP/s of the training step (FLOPs from FlopCounterMode ÷ median step time) against the ceiling."""
    return row("train.gflops", "training", f"achieved, {g['mflop_per_image']:.0f} MFLOP/image fwd+bwd (auto)",
               "GFLOP/s", g["ref"], g["auto"],
               note=f"{g['auto'] / ceiling['fp32']:.0%} of the fp32 matmul ceiling (reference "
                    f"{g['ref'] / ceiling['fp32']:.0%}); bf16 forced {g['bf16']:.1f} GFLOP/s = "
                    f"{g['bf16'] / ceiling['bf16']:.0%} of the bf16 ceiling")


def app_sampler(ckpt: LoadedCheckpoint) -> tuple[str, int | None]:
    """(sampler, steps) of the home page's Generate (process.quick_choice): rows key on these two, and
    the DDIM rows are η = 0, so a quick sampler with η > 0 could not be told apart."""
    choice = ckpt.process.quick_choice()
    if any(choice.knob_values().values()):
        raise ValueError(f"the benchmark cannot tell {choice.describe()} from its rows, whose knobs are all 0")
    return choice.sampler, choice.steps


def bench_sampling(cfg: BenchConfig, ckpt: LoadedCheckpoint, app_key: tuple[str, int | None]
                   ) -> tuple[list[dict], dict]:
    schedule = ckpt.process.schedule
    T, n = schedule.T, cfg.sample_n
    ddpm = measure.reference_ddpm(ckpt.model, schedule)
    plan = list(dict.fromkeys((s, T if k is None else min(k, T)) for s, k in cfg.sample_plan))
    plan += [app_key] if app_key not in plan else []
    fns = {"reference": measure.reference_sampler(ddpm, n, cfg.seed)}
    fns |= {f"{s} {k}": measure.fast_sampler(ckpt, s, k, n, cfg.seed) for s, k in plan}
    # one short untimed run of each path, so the long runs need no warm-up of their own
    with torch.no_grad():
        ddpm.eval().reverse_step(torch.zeros(n, 1, 28, 28), T, torch.Generator().manual_seed(cfg.seed))
    measure.fast_sampler(ckpt, "ddim", min(5, T), n, cfg.seed)()
    _log(f"sampling 16 images: reference Algorithm 2 ({T} steps) and {len(plan)} diffusion_core runs, interleaved")
    t = measure.interleaved_medians(fns, cfg.sample_repeats, 0)
    ref = t["reference"]
    rows = [row("sample16.ancestral.reference", "sample 16", f"reference Algorithm 2, {T} steps", "s", ref, None,
                note="torch.no_grad, per-step tensor indexing")]
    for s, k in plan:
        rows.append(row(f"sample16.{s}.{k}", "sample 16", f"diffusion_core {s}, {k} steps", "s", ref, t[f"{s} {k}"],
                        note="the app's Generate" if (s, k) == app_key else ""))
    return rows, {"speedup": ref / t[f"{app_key[0]} {app_key[1]}"]}


def bench_steps(cfg: BenchConfig, ckpt: LoadedCheckpoint, native: bool) -> tuple[list[dict], dict]:
    schedule = ckpt.process.schedule
    ddpm = measure.reference_ddpm(ckpt.model, schedule)
    bf16 = LoadedCheckpoint(with_precision(ckpt.model, "bf16", "cpu"), ckpt.config, ckpt.path)
    calls = cfg.step_repeats + cfg.step_warmup
    rows, ms16 = [], None
    for b in cfg.step_batches:
        _log(f"one reverse step, batch {b}")
        fns = {"ref": measure.reference_step(ddpm, b, cfg.seed), "fast": measure.fast_step(ckpt, b, calls, cfg.seed)}
        if b == 16:
            fns["bf16"] = measure.fast_step(bf16, b, calls, cfg.seed)
        t = {k: v * 1e3 for k, v in measure.interleaved_medians(fns, cfg.step_repeats, cfg.step_warmup).items()}
        rows.append(row(f"step.b{b}", "reverse step", f"one ancestral step, batch {b}", "ms", t["ref"], t["fast"],
                        note="inference_mode, float coefficients" if b == cfg.step_batches[0] else ""))
        if b == 16:
            ms16 = t["fast"]
            rows.append(row("step.b16.bf16", "reverse step", "one ancestral step, batch 16, bf16 forced", "ms",
                            t["ref"], t["bf16"],
                            note="the app samples with precision auto: " + ("bf16 here" if native else "fp32 here")))
    return rows, {"ms16": ms16}


def bench_quality(cfg: BenchConfig, ckpt: LoadedCheckpoint, app_key: tuple[str, int | None]
                  ) -> tuple[list[dict], list[dict], dict]:
    T = ckpt.config["diffusion"]["schedule"]["T"]
    plan = quality_plan(T, cfg.quality_steps, cfg.quality_max_steps)
    if cfg.quality_max_steps is not None and cfg.quality_max_steps < T:
        cfg.notes.append(f"--quick: FID rows with more than {cfg.quality_max_steps} steps are skipped "
                         f"(ancestral {T} and the {max(cfg.quality_steps)}-step rows)")
    _log(f"quality vs speed: {len(plan)} rows × {cfg.quality_n} samples")
    quality, source, scale = quality_vs_speed(ckpt, plan, cfg.quality_n, cfg.seed)
    rows = [row(f"quality.{q['sampler']}.{q['steps']}", f"FID n={q['n']}", f"{q['sampler']}, {q['steps']} steps",
                "FID", fast=q["fid"], note=f"{q['seconds']:.2f} s for {q['n']} images") for q in quality]
    rows.append(row("quality.scale", f"FID n={cfg.quality_n}", f"scale: {scale['n']} real training digits (floor)",
                    "FID", fast=scale["floor"], note=f"ceilings: pure noise {scale['ceiling_noise']:.1f}, "
                                                     f"black images {scale['ceiling_black']:.1f}"))
    if cfg.quality_n <= 128:
        cfg.notes.append(f"FID from n={cfg.quality_n} ≤ 128 (the classifier's feature dimension) is biased high and "
                         "unreliable; compare rows with each other only")
    cfg.notes.append(f"FID reference: MNIST test split ({source})")
    app = next((q["fid"] for q in quality if (q["sampler"], q["steps"]) == app_key), None)
    anc = next((q["fid"] for q in quality if q["sampler"] == "ancestral"), None)
    return rows, quality, {"app_fid": app, "ancestral_fid": anc}


def bench_app(cfg: BenchConfig) -> list[dict]:
    from benchmarks.app_start import cold_start

    if not cfg.app:
        res = {"health_s": None, "first_page_s": None, "first_page": "skipped (--skip-app)", "server_peak_mib": None}
        health_note = "skipped (--skip-app)"
    else:
        _log("app cold start")
        try:
            res = cold_start()
            health_note = "streamlit run → /_stcore/health answers"
        except Exception as exc:  # report, do not abort the whole table
            res = {"health_s": None, "first_page_s": None, "first_page": f"failed: {exc}"[:200],
                   "server_peak_mib": None}
            health_note = res["first_page"]
    return [row("app.health", "app", "cold start to health check", "s", fast=res["health_s"], note=health_note),
            row("app.first_page", "app", "cold start to first page (Generate)", "s", fast=res["first_page_s"],
                note=res["first_page"]),
            row("memory.app", "memory", "peak RSS, streamlit server at first page", "MiB",
                fast=res["server_peak_mib"], note="VmHWM of the subprocess" if res["server_peak_mib"] else
                health_note)]


def bench_memory(stage_peaks: dict[str, float]) -> list[dict]:
    grew = ", ".join(f"{k} {v:,.0f}" for k, v in stage_peaks.items())
    return [row("memory.self", "memory", "peak RSS, benchmark process (all stages)", "MiB",
                fast=measure.peak_rss_mib(), note=f"ru_maxrss after: {grew} MiB")]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_benchmark(cfg: BenchConfig, ckpt: LoadedCheckpoint, model_desc: str, warning: str | None,
                  out_dir: Path | None) -> dict:
    """Measure everything, return {"meta", "rows", "targets", "quality"}; write the JSON files to out_dir."""
    native = cpu_has_native_bf16()
    app_key = app_sampler(ckpt)
    if warning:
        cfg.notes.append(warning)
    load, cores, threads = os.getloadavg()[0], os.cpu_count() or 1, torch.get_num_threads()
    if load > cores and threads > 1:
        cfg.notes.append(f"the machine is busy (load {load:.1f} on {cores} cores) and torch uses {threads} threads: "
                         "OpenMP then waits for descheduled threads and small ops can run ~100× slower; compare "
                         "rows within this run only, or rerun with --threads 1")
    meta = {
        "run": ("quick" if cfg.quick else "full") + f", {datetime.datetime.now().isoformat(timespec='seconds')}",
        "model": model_desc,
        "machine": f"{cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__}, "
                   f"torch.get_num_threads() = {torch.get_num_threads()} (set with --threads)",
        "native bf16": ("yes" if native else "NO: this CPU lacks avx512_bf16 and AMX, so bf16 autocast is emulated "
                        "(slower); precision auto runs fp32"),
        "load": f"load average {os.getloadavg()[0]:.1f} at start, niceness {os.nice(0)}",
        "timing": "median of repeats after warm-up; speed-up = how many times faster diffusion_core is",
        "notes": cfg.notes,
    }
    peaks: dict[str, float] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        _log("matmul ceiling")
        before = measure_ceiling(cfg)
        train_rows, train, train_gflops = bench_training(cfg, ckpt, native)
        after = measure_ceiling(cfg)
        ceiling = {k: max(before[k], after[k]) for k in before}
        train_rows.append(gflops_row(train_gflops, ceiling))
        rows = ceiling_rows(cfg, ceiling, native)
        peaks["training"] = measure.peak_rss_mib()
        sample_rows, sample = bench_sampling(cfg, ckpt, app_key)
        step_rows, step = bench_steps(cfg, ckpt, native)
        peaks["sampling"] = measure.peak_rss_mib()
        quality_rows, quality, fids = bench_quality(cfg, ckpt, app_key)
        peaks["FID"] = measure.peak_rss_mib()
    app_rows = bench_app(cfg)
    rows = train_rows + rows + sample_rows + step_rows + quality_rows + app_rows[:2] + bench_memory(peaks) + \
        app_rows[2:]
    label = "{} {} steps".format(*app_key)
    targets = evaluate_targets(train["speedup"], sample["speedup"], step["ms16"], fids["app_fid"],
                               fids["ancestral_fid"], label)
    targets[0]["note"] = (f"bf16 forced: {train['bf16_speedup']:.2f}× ("
                          + ("native" if native else "emulated: no native bf16 here, so auto runs fp32") + "); "
                          f"fp32 cannot beat {ceiling['fp32'] / train_gflops['ref']:.2f}× here (the matmul "
                          "ceiling ÷ the reference's GFLOP/s)")
    meta["bf16 measured"] = next(r["note"] for r in rows if r["id"] == "train.bf16")
    report = {"meta": meta, "rows": rows, "targets": targets, "quality": quality}
    if out_dir is not None:
        write_results(out_dir, meta, rows, targets, quality)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repeats, 64 FID samples, no 1000-step FID rows")
    parser.add_argument("--model", help="checkpoint path or shipped name (default: the app's default noise model)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder for the JSON results")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's, one per core)")
    parser.add_argument("--fid-samples", type=int, help="samples per FID row (default 1000, --quick 64)")
    parser.add_argument("--skip-app", action="store_true", help="do not measure the app's cold start")
    args = parser.parse_args(argv)
    cfg = quick_config() if args.quick else BenchConfig()
    cfg.app = not args.skip_app
    try:
        if args.threads is not None:
            if args.threads < 1:
                raise ValueError(f"--threads must be a positive integer; got {args.threads}")
            torch.set_num_threads(args.threads)
        if args.fid_samples is not None:
            if not 2 <= args.fid_samples <= 4096:
                raise ValueError(f"--fid-samples must be between 2 and 4096; got {args.fid_samples}")
            cfg.quality_n = args.fid_samples
        ckpt, desc, warning = resolve_model(args.model, cfg.seed)
    except (ValueError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if warning:
        _log(f"warning: {warning}")
    report = run_benchmark(cfg, ckpt, desc, warning, Path(args.out))
    print(format_table(report["meta"], report["rows"], report["targets"]))
    print(f"\nwrote {Path(args.out) / 'latest.json'} and {Path(args.out) / 'quality_vs_speed.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
