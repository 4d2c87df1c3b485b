"""Computed answers: the numbers a lesson's questions ask for, computed from the library (schedules, samplers,
shipped checkpoints and committed benchmark results) when the lesson is checked — never typed in by hand, so a
change to the code or to a shipped model changes the answer with it.

A lesson names one as `answer: alpha_bar_crosses(preset=model1, level=0.5)`; `ANSWERS` lists them with what each
returns (the README's lesson format and `python -m diffusion_core lessons answers` show the list).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from diffusion_core.io.files import PROJECT_ROOT
from diffusion_core.io.runs import read_json_or_empty
from diffusion_core.process.schedules import PRESETS, preset_schedule

from .registry import resolve

ANSWERS: dict[str, Callable[..., float]] = {}
RESULTS = PROJECT_ROOT / "benchmarks" / "results"


def answer(fn: Callable[..., float]) -> Callable[..., float]:
    ANSWERS[fn.__name__] = fn
    return fn


def _preset(preset: str):
    if preset not in PRESETS:
        raise ValueError(f"preset {preset!r}: one of {', '.join(PRESETS)}")
    return preset_schedule(preset)


@answer
def alpha_bar_crosses(preset: str, level: float) -> float:
    """The first t at which ᾱ_t of a report preset falls below `level`."""
    below = (_preset(preset).alpha_bars < float(level)).nonzero()
    if not len(below):
        raise ValueError(f"ᾱ_t of {preset} never falls below {level}")
    return float(below[0])


@answer
def alpha_bar_end(preset: str) -> float:
    """ᾱ_T of a report preset: how much of the digit is left at the last step."""
    return float(_preset(preset).alpha_bars[-1])


@answer
def steps_of(preset: str) -> float:
    """T of a report preset."""
    return float(_preset(preset).T)


@answer
def network_calls(sampler: str, steps: int) -> float:
    """Network evaluations of one run of `sampler` with `steps` steps (Heun's second evaluations counted)."""
    from diffusion_core.samplers.registry import SAMPLERS, discover

    discover()

    if sampler not in SAMPLERS:
        raise ValueError(f"sampler {sampler!r}: one of {', '.join(sorted(SAMPLERS))}")
    return float(SAMPLERS[sampler].nfe(int(steps)))


def benchmark_results(name: str) -> dict:
    data = read_json_or_empty(RESULTS / f"{name}.json")
    if not data:
        raise ValueError(f"the benchmark results {Path('benchmarks/results') / f'{name}.json'} are missing")
    return data


@answer
def benchmark_fid(sampler: str, nfe: int, spacing: str | None = None) -> float:
    """Classifier-FID of the shipped default-unet with `sampler` at `nfe` network calls on `spacing` (default: the
    sampler's own, e.g. Karras for Heun) (samplers_nfe.json)."""
    from diffusion_core.samplers.registry import SAMPLERS, discover

    discover()
    if spacing is None:
        spacing = SAMPLERS[sampler].spacing if sampler in SAMPLERS else "uniform"
    rows = [r for r in benchmark_results("samplers_nfe")["rows"]
            if r["sampler"] == sampler and int(r["nfe"]) == int(nfe) and r.get("spacing", "uniform") == spacing]
    if not rows:
        raise ValueError(f"samplers_nfe.json has no row for {sampler} at {nfe} network calls on {spacing} spacing")
    return float(rows[0]["fid"])


@answer
def best_guidance_scale(kind: str = "classifier") -> float:
    """The guidance scale w with the lowest FID on the committed guidance curve of `kind`."""
    curves = benchmark_results("guidance_curve")["curves"]
    if kind not in curves:
        raise ValueError(f"guidance kind {kind!r}: one of {', '.join(curves)}")
    return float(min(curves[kind]["rows"], key=lambda r: r["fid"])["w"])


@answer
def blur_sigma(t: int, model: str = "blur") -> float:
    """σ_t of a shipped blur model's degradation at step t."""
    from diffusion_core.io.checkpoints import shipped_dir
    from diffusion_core.process.degradations import degradation_from_config

    config = read_json_or_empty(shipped_dir() / f"{model}.json")
    if config.get("diffusion", {}).get("degradation", {}).get("kind") != "blur":
        raise ValueError(f"{model!r} is not a shipped blur model")
    degradation = degradation_from_config(config["diffusion"]["degradation"])
    if not 0 <= int(t) <= degradation.T:
        raise ValueError(f"t must be between 0 and {degradation.T} for {model}")
    return float(degradation.sigmas[int(t)])


@answer
def fid_over_floor(model: str, nfe: int) -> float:
    """FID ÷ the real-data floor of a shipped model at `nfe` network calls (flow_vs_diffusion.json)."""
    rows = [r for r in benchmark_results("flow_vs_diffusion")["rows"]
            if r["model"] == model and int(r["nfe"]) == int(nfe)]
    if not rows:
        raise ValueError(f"flow_vs_diffusion.json has no row for {model} at {nfe} network calls")
    return float(rows[0]["fid_over_floor"])


def compute(function: str, args: dict[str, object]) -> float:
    """The answer `function(**args)`; ValueError naming the problem (unknown name, wrong arguments)."""
    return resolve("computed answer", ANSWERS, function, args)(**args)
