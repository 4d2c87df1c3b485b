"""Named training recipes: sets of train options to start from (the CLI's `--recipe`, the Train page's first
choice). Options the user gives win over the recipe's; a recipe's option that a given one rules out (a noise
target beside a degradation, an architecture beside --init-from) is left out.

- quick: recognisable unconditional digits in about 10 minutes on 2 CPU cores (benchmarks/time_to_digits.py
  measures it against the report's recipe; the #14 notes give the ablation behind each choice). A U-Net on 2×2
  pixel blocks predicting v, on the cosine schedule: at 70 epochs it reached 54 FID where the report's linear β
  reached 87 (1,000 samples), because uniform t on the linear schedule spends half its steps where
  ᾱ_t < 0.08, on nearly pure noise.
- flow: the quick recipe's network, optimiser and budget trained as flow matching (process/flow.py): the linear
  path, velocity target, t logit-normal as SD3 trains it.
- report: the source report's recipe — its CNN, 100 epochs, batch 128, lr 2e-4 (with an EMA).
"""

from __future__ import annotations

from collections.abc import Mapping

RECIPES: dict[str, dict[str, object]] = {
    "quick": {"schedule": "cosine", "prediction": "v", "arch": "unet", "base_channels": 32, "patch": 2, "epochs": 70,
              "batch_size": 64, "lr": 3e-3, "warmup": 100, "lr_decay": "cosine", "ema": 0.999, "fid_every": 10},
    "flow": {"flow": True, "time_sampling": "logit-normal", "arch": "unet", "base_channels": 32, "patch": 2,
             "epochs": 70, "batch_size": 64, "lr": 3e-3, "warmup": 100, "lr_decay": "cosine", "ema": 0.999,
             "fid_every": 10},
    "report": {"preset": "default", "arch": "cnn", "epochs": 100, "batch_size": 128, "lr": 2e-4, "ema": 0.999},
}
NOISE_ONLY = ("preset", "schedule", "beta1", "beta2", "T", "prediction", "weighting", "snr_gamma")
FLOW_ONLY = ("flow", "time_sampling", "logit_mean", "logit_std")
SCHEDULE_PARAMS = ("schedule", "beta1", "beta2", "T")
ARCH_PARAMS = {"cnn": ("hidden", "kernel_size"), "unet": ("base_channels", "patch")}


def with_recipe(name: str, options: Mapping[str, object]) -> dict[str, object]:
    """`options` over the recipe `name`; ValueError for an unknown name."""
    if name not in RECIPES:
        raise ValueError(f"recipe must be one of {', '.join(RECIPES)}; got {name!r}")
    given = {k: v for k, v in options.items() if v is not None}
    recipe = dict(RECIPES[name])
    dropped: set[str] = set()
    if given.get("degradation") or given.get("flow"):
        dropped |= set(NOISE_ONLY)
    if given.get("degradation") or given.get("preset") or given.get("schedule"):
        dropped |= set(FLOW_ONLY)
    if given.get("schedule"):
        dropped.add("preset")
    if given.get("preset"):  # a preset fixes the schedule
        dropped |= set(SCHEDULE_PARAMS)
    if given.get("init_from"):
        dropped |= {"arch", *ARCH_PARAMS["cnn"], *ARCH_PARAMS["unet"]}
    if given.get("arch") and given["arch"] != recipe.get("arch"):
        dropped |= {p for arch, params in ARCH_PARAMS.items() if arch != given["arch"] for p in params}
    return {**{k: v for k, v in recipe.items() if k not in dropped}, **given}
