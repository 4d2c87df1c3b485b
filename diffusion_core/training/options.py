"""The one way to start a training run: a user's options — the CLI's `train` flags, the Train page's fields —
become a TrainConfig here, with every rule that spans several options checked once.

Options are named as the CLI's flags (`--degradation-T` → "degradation_T"); a missing or None option takes
TrainConfig's default. A background job writes the resulting TrainConfig as JSON and its subprocess reads it
back (`train --config`), so nothing else interprets options.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping

from diffusion_core.process import ColdProcess
from diffusion_core.process.degradations import make_degradation
from diffusion_core.process.flow import flow_diffusion_config
from diffusion_core.process.gaussian import noise_diffusion_config
from diffusion_core.training.config import TrainConfig
from diffusion_core.training.recipes import with_recipe

DIFFUSION_OPTIONS = ("preset", "schedule", "beta1", "beta2", "T", "degradation", "degradation_T",
                     "degradation_schedule", "degradation_param", "loss", "prediction", "weighting", "snr_gamma",
                     "flow", "time_sampling", "logit_mean", "logit_std")
FLOW_ONLY = ("time_sampling", "logit_mean", "logit_std")
MODEL_OPTIONS = ("arch", "init_from", "hidden", "kernel_size", "base_channels", "patch", "conditional",
                 "label_dropout")
REFLOW_OPTIONS = ("reflow_from", "pairs", "pair_sampler", "pair_steps", "distil_steps")
RUN_OPTIONS = ("epochs", "batch_size", "lr", "warmup", "lr_decay", "ema", "seed", "device", "precision", "dataset",
               "data_root", "no_download", "limit", "sample_epochs", "fid_every", "fid_samples")
TRAIN_OPTIONS = frozenset(DIFFUSION_OPTIONS + MODEL_OPTIONS + RUN_OPTIONS + REFLOW_OPTIONS + ("recipe",))
# option → TrainConfig field where they differ in name
RENAMED = {"ema": "ema_decay"}


def parse_key_value(text: str) -> tuple[str, object]:
    """KEY=VALUE with VALUE read as an integer, a number, none, or text."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"expected KEY=VALUE (e.g. sigma_max=3.0), got {text!r}")
    raw = raw.strip()
    if raw.lower() in ("none", "null"):
        return key.strip(), None
    for cast in (int, float):
        try:
            return key.strip(), cast(raw)
        except ValueError:
            pass
    return key.strip(), raw


def parse_key_values(text: str) -> list[tuple[str, object]]:
    """'sigma_max=3.0, kernel_size=9' → [("sigma_max", 3.0), ("kernel_size", 9)]; blank → []."""
    items = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    bad = [p for p in items if "=" not in p or not p.split("=", 1)[0].strip()]
    if bad:
        raise ValueError(f"degradation parameters must be KEY=VALUE pairs separated by commas; got {bad[0]!r}")
    return [parse_key_value(item) for item in items]


def _degradation_params(value: object) -> list[tuple[str, object]]:
    if value is None:
        return []
    if isinstance(value, str):
        return parse_key_values(value)
    return [tuple(p) if not isinstance(p, str) else parse_key_value(p) for p in value]  # type: ignore[misc]


def _flow(o: Mapping[str, object]) -> dict:
    """A flow-matching process from --flow and its options; ValueError for a noise or cold option beside it."""
    clash = [f"--{k.replace('_', '-')}" for k in ("preset", "schedule", "beta1", "beta2", "degradation",
                                                  "degradation_T", "degradation_param", "loss", "prediction",
                                                  "weighting", "snr_gamma") if o.get(k)]
    if clash:
        raise ValueError(f"--flow trains a velocity on the linear path; {', '.join(clash)} "
                         f"{'is' if len(clash) == 1 else 'are'} for noise or cold models (drop "
                         f"{'it' if len(clash) == 1 else 'them'} or --flow)")
    if o.get("time_sampling") != "logit-normal" and (o.get("logit_mean") is not None or o.get("logit_std") is not None):
        raise ValueError("--logit-mean and --logit-std shape --time-sampling logit-normal; add it or drop them")
    return flow_diffusion_config(1000 if o.get("T") is None else o["T"],  # type: ignore[arg-type]
                                 str(o.get("time_sampling") or "uniform"),
                                 0.0 if o.get("logit_mean") is None else o["logit_mean"],  # type: ignore[arg-type]
                                 1.0 if o.get("logit_std") is None else o["logit_std"])  # type: ignore[arg-type]


def _diffusion(o: Mapping[str, object]) -> dict:
    if o.get("flow"):
        return _flow(o)
    given_flow = [f"--{k.replace('_', '-')}" for k in FLOW_ONLY if o.get(k) is not None]
    if given_flow:
        raise ValueError(f"{', '.join(given_flow)} {'is' if len(given_flow) == 1 else 'are'} for flow models only: "
                         "add --flow")
    if o.get("preset") and o.get("schedule"):
        raise ValueError("give either --preset or --schedule (with --beta1/--beta2/--T), not both")
    explicit = [f"--{k}" for k in ("beta1", "beta2", "T") if o.get(k) is not None]
    if explicit and not o.get("schedule"):
        raise ValueError(f"{', '.join(explicit)} only apply with --schedule KIND (a preset fixes β1, β2 and T; "
                         "cold diffusion uses --degradation-T)")
    params = _degradation_params(o.get("degradation_param"))
    if o.get("degradation") and (o.get("preset") or o.get("schedule")):
        raise ValueError("give either a noise schedule (--preset / --schedule) or --degradation, not both")
    if not o.get("degradation") and (o.get("loss") or params or o.get("degradation_T") is not None):
        raise ValueError("--loss, --degradation-T and --degradation-param need --degradation KIND")
    reserved = {"kind", "T", "schedule"} & {k for k, _ in params}
    if reserved:
        raise ValueError(f"set {sorted(reserved)} with --degradation / --degradation-T / --degradation-schedule, "
                         "not --degradation-param")
    target = {k: o[k] for k in ("prediction", "weighting", "snr_gamma") if o.get(k) is not None}
    if target and o.get("degradation"):
        raise ValueError("--prediction, --weighting and --snr-gamma are for noise models; a cold restorer "
                         "predicts x0 (drop them or the --degradation)")
    if "snr_gamma" in target and target.get("weighting", "uniform") == "uniform":
        raise ValueError("--snr-gamma sets γ of --weighting min-snr or soft-min-snr; add one of them")
    target = {"prediction": target.get("prediction", "eps"), "weighting": target.get("weighting", "uniform"),
              **({"gamma": target["snr_gamma"]} if "snr_gamma" in target else {})}
    if o.get("degradation"):
        degradation = make_degradation(str(o["degradation"]), o.get("degradation_T"),  # type: ignore[arg-type]
                                       str(o.get("degradation_schedule") or "linear"), **dict(params))
        return ColdProcess(degradation, str(o.get("loss") or "l2")).config()
    if o.get("schedule"):
        return noise_diffusion_config(kind=str(o["schedule"]), beta1=1e-4 if o.get("beta1") is None else o["beta1"],
                                      beta2=0.02 if o.get("beta2") is None else o["beta2"],
                                      T=1000 if o.get("T") is None else o["T"], **target)  # type: ignore[arg-type]
    return noise_diffusion_config(preset=str(o.get("preset") or "default"), **target)  # type: ignore[arg-type]


def _model(o: Mapping[str, object]) -> dict:
    arch = o.get("arch")
    if o.get("init_from"):
        if arch or o.get("hidden") or o.get("kernel_size") or o.get("base_channels") or o.get("patch"):
            raise ValueError("--init-from takes the architecture from the checkpoint; drop --arch/--hidden/"
                             "--kernel-size/--base-channels/--patch")
        from diffusion_core.io.checkpoints import load_checkpoint, resolve_checkpoint

        model = copy.deepcopy(load_checkpoint(resolve_checkpoint(str(o["init_from"]))).config["model"])
    else:
        model = {"arch": arch or "cnn", "params": {}}
    params = model.setdefault("params", {})
    if (arch or "cnn") == "cnn":
        if o.get("patch") not in (None, 1, "1") or o.get("base_channels"):
            raise ValueError("--patch and --base-channels shape a U-Net: add --arch unet (or drop them)")
        if o.get("hidden"):
            params["hidden"] = list(o["hidden"])  # type: ignore[call-overload]
        if o.get("kernel_size"):
            params["kernel_size"] = o["kernel_size"]
    else:
        if o.get("base_channels"):
            params["base_channels"] = o["base_channels"]
        if o.get("patch") and int(o["patch"]) != 1:  # type: ignore[call-overload]
            params["patch"] = int(o["patch"])  # type: ignore[call-overload]
    if o.get("conditional"):
        if model["arch"] != "unet":
            raise ValueError("--conditional needs a U-Net: add --arch unet (the report's CNN takes no label)")
        params["num_classes"] = 10
    return model


def _reflow_clock(teacher: dict, o: Mapping[str, object]) -> dict:
    """The teacher's flow, drawing t for training as --time-sampling (with --logit-mean/--logit-std) says, else as
    the teacher did: the path and its grid stay the teacher's, so sampling is unchanged (a few-step student
    needs v at t near 1, which logit-normal t hardly trains; reflow in Liu et al. 2023 draws t uniformly)."""
    if not any(o.get(k) is not None for k in FLOW_ONLY):
        return copy.deepcopy(teacher)
    return _flow({"T": teacher.get("T", 1000), **{k: o.get(k) for k in FLOW_ONLY}})


def _reflow(o: dict) -> tuple[dict, dict] | None:
    """(the coupling, the teacher's process config) of --reflow-from and its options, or None without it; `o`
    gets the teacher as --init-from unless one is given. ValueError for a process or architecture option beside it
    (the teacher's are used) or a pair option without it."""
    if not o.get("reflow_from"):
        given = [f"--{k.replace('_', '-')}" for k in REFLOW_OPTIONS if o.get(k)]
        if given:
            raise ValueError(f"{', '.join(given)} shape the pairs of --reflow-from TEACHER; add it or drop them")
        return None
    clash = [f"--{k.replace('_', '-')}" for k in DIFFUSION_OPTIONS + ("conditional",) if o.get(k)
             and k not in FLOW_ONLY]
    if clash:
        raise ValueError(f"--reflow-from trains on the teacher's own process; drop {', '.join(clash)} (only "
                         "--time-sampling and its --logit-mean/--logit-std may differ: when training draws t)")
    from diffusion_core.io.checkpoints import load_checkpoint, resolve_checkpoint
    from diffusion_core.training import coupling as c

    teacher = str(resolve_checkpoint(str(o["reflow_from"])))
    ckpt = load_checkpoint(teacher)
    ckpt.process.coupled()  # ValueError unless the teacher is a flow model
    o.setdefault("init_from", teacher)
    return {"teacher": teacher, "pairs": o.get("pairs", c.DEFAULT_PAIRS),
            "sampler": o.get("pair_sampler", c.DEFAULT_SAMPLER), "steps": o.get("pair_steps", c.DEFAULT_STEPS),
            "distil_steps": int(o.get("distil_steps") or 0)}, _reflow_clock(ckpt.config["diffusion"], o)


def train_config(options: Mapping[str, object], resume: bool = False) -> TrainConfig:
    """The TrainConfig these options describe; ValueError naming the option (or pair of options) that is wrong.
    With `resume`, epochs defaults to 1: the trainer resumes to max(the run's own total, epochs)."""
    unknown = set(options) - TRAIN_OPTIONS
    if unknown:
        raise ValueError(f"unknown training option(s) {sorted(unknown)}")
    o = {k: v for k, v in options.items() if v is not None}
    if o.get("recipe"):  # the recipe's options where none is given
        if resume:
            raise ValueError("--recipe starts a new run; a resumed run keeps its own settings (drop --recipe)")
        o = with_recipe(str(o.pop("recipe")), o)
    reflow = _reflow(o)
    defaults = TrainConfig()
    run = {RENAMED.get(k, k): o[k] for k in RUN_OPTIONS if k in o and k != "no_download"}
    if o.get("init_from"):
        from diffusion_core.io.checkpoints import resolve_checkpoint

        run["init_from"] = str(resolve_checkpoint(str(o["init_from"])))
    config = dataclasses.replace(
        defaults, diffusion=reflow[1] if reflow else _diffusion(o), model=_model(o),
        coupling=reflow[0] if reflow else None, download=not o.get("no_download", False),
        epochs=o.get("epochs", 1 if resume else defaults.epochs),  # type: ignore[arg-type]
        label_dropout=o.get("label_dropout", defaults.label_dropout),  # type: ignore[arg-type]
        **{k: v for k, v in run.items() if k != "epochs"},
    )
    if config.sample_epochs is not None:
        config.sample_epochs = list(config.sample_epochs)
    config.validate()
    return config
