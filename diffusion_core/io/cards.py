"""Model cards for shipped checkpoints: what a user needs to read a model's numbers."""

from __future__ import annotations

from diffusion_core.process import DiffusionProcess, process_from_config

# The app's quality bar for its default model (measured on 1,000 samples of its default sampler).
QUALITY_BAR = {"fid_over_floor": 3.0, "confident_fraction": 0.85, "class_entropy": 2.2, "classes_present": 10}


def card_protocol(final: dict) -> str | None:
    """How a finished model's FID was measured (its card's metrics): 'n = 1,000 · dpm++2m-sde, 50 steps'."""
    if final.get("fid") is None:
        return None
    n, sampler, steps = final.get("n"), final.get("sampler"), final.get("steps")
    parts = [f"n = {int(n):,}" if n else "n = ?"]
    if sampler:
        parts.append(f"{sampler}, {steps} steps" if steps else str(sampler))
    return " · ".join(parts)


def monitor_sampler(diffusion_type: str) -> str:
    """How the trainer's FID checks sample a process type's models, in words ('ddim, 20 steps')."""
    kind = DiffusionProcess.PROCESS_TYPES.get(diffusion_type)
    return kind.preview_text if kind is not None else "its preview sampler"


def quality_verdict(report: dict) -> dict[str, bool]:
    """Which parts of the quality bar a metrics report meets."""
    return {
        "fid ≤ 3× floor": report.get("fid_over_floor") is not None
        and report["fid_over_floor"] <= QUALITY_BAR["fid_over_floor"],
        "≥ 85% confident": report["confident_fraction"] >= QUALITY_BAR["confident_fraction"],
        "entropy ≥ 2.2 nats": report["class_entropy"] >= QUALITY_BAR["class_entropy"],
        "all ten digits": report["classes_present"] >= QUALITY_BAR["classes_present"],
    }


def train_command(config: dict, out: str = "runs/NAME") -> str:
    """The `python -m diffusion_core train` command line that trains a checkpoint's config from scratch."""
    import shlex

    model, diffusion, train = config["model"], config["diffusion"], config.get("training", {})
    params = model.get("params") or {}
    args = ["python", "-m", "diffusion_core", "train", "--out", out]
    coupling = train.get("coupling")  # a reflow: the process and the architecture come with the teacher
    init = train.get("init_from")
    if coupling:
        args += ["--reflow-from", coupling["teacher"], "--pairs", str(coupling["pairs"]), "--pair-sampler",
                 coupling["sampler"], "--pair-steps", str(coupling["steps"])]
        args += ["--distil-steps", str(coupling["distil_steps"])] if coupling["distil_steps"] else []
    if init and not (coupling and init == coupling["teacher"]):  # the architecture comes with the weights
        args += ["--init-from", init]
    elif not coupling:
        flags = {"base_channels": "--base-channels", "patch": "--patch", "hidden": "--hidden",
                 "kernel_size": "--kernel-size"}
        args += ["--arch", model["arch"]] + [a for k, flag in flags.items() if k in params
                                             for a in (flag, str(params[k]))]
    if params.get("num_classes"):
        args += ["--conditional", "--label-dropout", f"{train.get('label_dropout', 0.1):g}"]
    flags = process_from_config(diffusion).train_flags()
    # a reflow keeps its teacher's path and names only when training draws t
    args += flags[flags.index("--time-sampling"):] if coupling else flags
    args += ["--epochs", str(config.get("epochs", 100)), "--batch-size", str(train.get("batch_size", 128)),
             "--lr", f"{train.get('lr', 2e-4):g}", "--seed", str(train.get("seed", 0))]
    if train.get("warmup"):
        args += ["--warmup", str(train["warmup"])]
    if train.get("lr_decay", "none") != "none":
        args += ["--lr-decay", train["lr_decay"]]
    if train.get("ema_decay"):
        args += ["--ema", f"{train['ema_decay']:g}"]
    return shlex.join(args)


def model_card(name: str, config: dict, rows: list[dict], report: dict, command: str, parameters: int) -> str:
    """Markdown card: data, process, training, wall time, final loss, metrics against the FID scale."""
    train = config.get("training", {})
    last = rows[-1] if rows else {}
    scale = report.get("scale", {})
    fid_line = f"**{report['fid']:.1f}**" if report.get("fid") is not None else "n/a"
    if scale:
        fid_line += (f" (floor {scale['floor']:.1f} for {scale['n']} held-out real digits → "
                     f"{report['fid_over_floor']:.2f}× the floor; ceilings: pure noise {scale['ceiling_noise']:.0f}, "
                     f"black images {scale['ceiling_black']:.0f})")
    hist = " ".join(f"{i}:{c}" for i, c in enumerate(report["class_histogram"]))
    lines = [
        f"# `{name}`",
        "",
        f"- **Process:** {process_from_config(config['diffusion']).describe()}.",
        f"- **Denoiser:** `{config['model']['arch']}` {config['model'].get('params') or '(defaults)'}, "
        f"{parameters:,} parameters.",
        (f"- **Data:** {train['data_source']}: no real digits, the teacher's own samples beside the noises they "
         "came from (reflow, Liu et al. 2023)." if train.get("coupling") else
         f"- **Data:** {train.get('data_source', config.get('dataset', '?'))}, {train.get('n_train', '?'):,} "
         "training images, normalised x/255 − 0.5."),
        f"- **Training:** {config.get('epochs', '?')} epochs ({last.get('steps', '?'):,} Adam steps), lr "
        f"{train.get('lr', '?'):g}, batch {train.get('batch_size', '?')}, EMA {train.get('ema_decay') or 'off'}, "
        f"seed {train.get('seed', '?')}"
        + (f", starting from the weights of `{train['init_from']}`" if train.get("init_from") else "") + ".",
        f"- **Recipe:** `{train_command(config, 'runs/' + name)}`.",
        f"- **Wall time:** {last.get('wall_time_s', 0) / 60:.0f} min of training on "
        f"{train.get('machine') or 'a shared 2-core CPU'} "
        f"({last.get('images_per_s', 0):.0f} images/s in the last epoch).",
        f"- **Final training loss:** {last.get('loss', float('nan')):.4f}.",
    ]
    if config["model"].get("params", {}).get("num_classes"):
        lines.append(f"- **Class-conditional:** labels 0–9, each dropped to 'none' with p = "
                     f"{train.get('label_dropout', '?')} in training; sampling draws the digits 0–9 in turn with "
                     f"classifier-free guidance w = {config.get('guidance', 0):g}.")
    lines += [
        "",
        f"## Quality ({report['n']} samples, sampler `{report.get('sampler')}`"
        f"{', ' + str(report['steps']) + ' steps' if report.get('steps') else ''}, seed {report.get('seed', 0)})",
        "",
        f"- Classifier-FID against the {report.get('reference', 'test split')}: {fid_line}",
        f"- Classified with confidence > 0.9: **{report['confident_fraction']:.1%}**; mean confidence "
        f"{report['mean_confidence']:.3f}",
        f"- Predicted classes: {hist}; {report['classes_present']} digits present, entropy "
        f"**{report['class_entropy']:.2f}** nats (max {report['max_class_entropy']:.2f}); IS analogue "
        f"{report['inception_score']:.2f}",
    ]
    verdict = quality_verdict(report)
    lines.append("- Against the default-model bar: " + ", ".join(
        f"{k} {'✓' if ok else '✗'}" for k, ok in verdict.items()))
    lines += ["", "Recompute these figures:", "", "```", command, "```", ""]
    return "\n".join(lines)
