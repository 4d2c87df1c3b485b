"""What a training run will cost and give, before Start: time on this machine (under the load it has now), and
the quality the nearest shipped model reached with about as many optimiser steps, measured as the run itself will
measure it (its live monitor, or the card's protocol)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from diffusion_core.io.cards import card_protocol, monitor_sampler
from diffusion_core.io.files import read_jsonl
from diffusion_core.process import process_from_config
from diffusion_core.services.run_status import JobError, config_of

# Measured on the 2-core machines this lab was built on (torch 2.14, CPU): a training job spends about
# 8 s importing PyTorch, then 10–15 s loading the data (offline, torchvision first tries to download MNIST
# and fails before the bundled digits are used) and building the model, before its first batch.
STARTUP_S = 25.0
FORWARD_SHARE = 1 / 3  # one forward pass costs about a third of a training image (forward + backward)
FID_SETUP_S = 5.0  # the classifier's statistics of the held-out digits, once per run
# Under this share of a shipped model's optimiser steps, expect noise, not digits: a judgement (the curves hold
# no FID per epoch), from the report CNN, whose samples are still only a third digits after all its 3,600 steps.
NOT_DIGITS_BELOW = 0.25


@dataclass(frozen=True)
class Reference:
    """A shipped model as a yardstick: how fast it trained here and what it draws after how many steps."""

    name: str
    arch: str
    diffusion_type: str
    variant: str | None  # process.variant: the preset or the degradation kind
    images_per_s: float | None  # median over its epochs (metrics.jsonl), None without a curve
    epochs_measured: int
    batch_size: int | None
    optimizer_steps: int | None
    continued: bool  # trained on from an earlier run's weights: it had more steps than optimizer_steps
    metrics: dict  # the card's final numbers: fid, fid_floor, confident_fraction, n, …
    rows: tuple = ()  # its metrics.jsonl rows
    patch: int = 1  # a U-Net's patch (2: runs at 14×14, about 3× the images/s of patch 1)
    width: int | None = None  # a U-Net's base_channels (None: the architecture's default)

    def quality_text(self) -> str:
        """'FID 602 (27× the real-data floor); 35% of samples confidently a digit'."""
        m = self.metrics
        parts = []
        if m.get("fid") is not None:
            floor = m.get("fid_floor")
            over = f" ({m['fid'] / floor:.1f}× the real-data floor {floor:.0f})" if floor else ""
            parts.append(f"classifier-FID {m['fid']:.0f}{over}")
        if m.get("confident_fraction") is not None:
            parts.append(f"{100 * m['confident_fraction']:.0f}% of its samples confidently a digit")
        if m.get("class_entropy") is not None and m["class_entropy"] < ONE_DIGIT_ENTROPY:
            parts.append(f"but nearly all of one or two digits (class entropy {m['class_entropy']:.2f} of "
                         f"{math.log(10):.2f} nats): not a generator of all ten")
        return "; ".join(parts) or "no measured quality on its card"

    def monitor(self) -> tuple[float, int | None] | None:
        """(FID, samples) of the last FID check its training made (metrics.jsonl), None without one."""
        rows = [r for r in self.rows if r.get("fid") is not None]
        return (float(rows[-1]["fid"]), rows[-1].get("fid_samples")) if rows else None

    def loss_at(self, steps: int) -> float | None:
        """Its training loss at the first epoch that reached `steps` optimiser steps (None if never)."""
        for row in self.rows:
            if row.get("steps") is not None and row.get("loss") is not None and int(row["steps"]) >= steps:
                return float(row["loss"])
        return None


ONE_DIGIT_ENTROPY = 1.5  # nats: below this a model's samples are mostly one or two classes (uniform: ln 10 = 2.30)


def shipped_references(folder: Path | None = None) -> list[Reference]:
    """Every shipped diffusion checkpoint with its training curve (<name>.metrics.jsonl) and card metrics."""
    import statistics

    from diffusion_core.io.checkpoints import list_checkpoints

    refs = []
    for wpath, meta in list_checkpoints(folder):
        try:
            process = process_from_config(meta.get("diffusion"))
        except ValueError:
            continue  # the classifier
        history = wpath.with_suffix(".metrics.jsonl")
        rows = tuple(read_jsonl(history)) if history.is_file() else ()
        speeds = [float(r["images_per_s"]) for r in rows if isinstance(r.get("images_per_s"), (int, float))]
        training = meta.get("training") or {}
        metrics = meta.get("metrics") or {}
        steps = metrics.get("optimizer_steps") or (rows[-1].get("steps") if rows else None)
        refs.append(Reference(
            name=wpath.stem, arch=(meta.get("model") or {}).get("arch", "?"), diffusion_type=process.type,
            variant=process.variant,
            images_per_s=statistics.median(speeds) if speeds else None, epochs_measured=len(speeds),
            batch_size=training.get("batch_size"), optimizer_steps=int(steps) if steps else None,
            continued=bool(training.get("init_from")), metrics=metrics, rows=rows,
            patch=int(((meta.get("model") or {}).get("params") or {}).get("patch", 1)),
            width=((meta.get("model") or {}).get("params") or {}).get("base_channels"),
        ))
    return refs


@dataclass
class TrainingEstimate:
    """How long a run will take and what to expect of it, worked out before it starts."""

    n_train: int
    epochs: int
    steps_per_epoch: int
    steps: int
    images_per_s: float | None
    speed_source: str
    seconds: float | None
    parts: dict  # seconds: starting, training, previews, FID
    reference: Reference | None
    verdict: str  # what quality to expect, in one sentence

    def time_text(self) -> str:
        if self.seconds is None:
            return f"{self.steps:,} optimiser steps ({self.epochs} × {self.steps_per_epoch}); no speed to estimate " \
                   "the time from: measure this machine"
        extra = ", ".join(f"{k} {_duration(v)}" for k, v in self.parts.items() if k != "training" and v >= 1)
        return (f"about {_duration(self.seconds)} in all: {self.steps:,} optimiser steps ({self.epochs} epochs × "
                f"{self.steps_per_epoch} batches of {self.n_train:,} images) at {self.images_per_s:,.0f} images/s: "
                f"{self.speed_source}" + (f". Plus {extra}" if extra else ""))


def _duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _preview_steps(options: Mapping[str, object]) -> int | None:
    """Network steps of one of the trainer's previews (process.preview_choice); None for options it refuses."""
    import torch

    try:
        process = process_from_config(config_of(options).diffusion)
        return process.step_count(process.preview_choice(torch.empty(0), 0))
    except (ValueError, TypeError, JobError):
        return None


def _pick_reference(options: Mapping[str, object], refs: list[Reference]) -> Reference | None:
    """The shipped model most like this run: same architecture and process, then same preset/degradation."""
    arch = str(options.get("arch") or "cnn")
    try:
        process = process_from_config(config_of(options).diffusion)
    except (ValueError, TypeError, JobError):
        return None  # the run's own checks name what is wrong with its options
    same = [r for r in refs if r.arch == arch and r.diffusion_type == process.type and r.optimizer_steps
            and (r.variant == process.variant or not process.variant_defines_output)]  # mask says nothing of blur
    if not same:
        return None
    patch, width = int(options.get("patch") or 1), options.get("base_channels")  # type: ignore[call-overload]
    return max(same, key=lambda r: (r.patch == patch, r.width == width, r.variant == process.variant,
                                    r.optimizer_steps))


def _process_type(options: Mapping[str, object]) -> str | None:
    try:
        return process_from_config(config_of(options).diffusion).type
    except (ValueError, TypeError, JobError):
        return None


def _pick_speed_reference(options: Mapping[str, object], refs: list[Reference],
                          quality: Reference | None) -> Reference | None:
    """The shipped model whose training speed this run's is estimated from: the same network (architecture and
    patch; a training step costs about the same for either process), the quality reference first, then the
    longest curve."""
    arch, patch = str(options.get("arch") or "cnn"), int(options.get("patch") or 1)  # type: ignore[call-overload]
    width = options.get("base_channels")
    speed = [r for r in refs if r.arch == arch and r.images_per_s]
    if not speed:
        return None
    return max(speed, key=lambda r: (r.patch == patch, r.width == width, r is quality, r.epochs_measured))


def _schedule_count(epochs: int, every: int) -> int:
    """How many of epochs 1..epochs are multiples of `every`, plus the last (the trainer's previews / FIDs)."""
    return epochs // every + (1 if epochs % every else 0)


def machine_load() -> tuple[float, int] | None:
    """(runnable processes averaged over the last minute, CPU cores), or None where the OS does not say."""
    try:
        return os.getloadavg()[0], os.cpu_count() or 1
    except (AttributeError, OSError):
        return None


def estimate_training(options: Mapping[str, object], n_train: int, references: list[Reference] | None = None,
                      images_per_s: float | None = None, speed_source: str | None = None,
                      load: tuple[float, int] | None = None) -> TrainingEstimate:
    """Time and expected quality of a run with the Train page's `options` on `n_train` images.

    Speed: `images_per_s` when measured (measure_images_per_s), else the median of the shipped models'
    curves for the same architecture (they trained on the machines this lab was built on), shared out
    by the `load` (machine_load) when more processes want the CPU than it has cores. Quality: the
    shipped model of the same architecture and process, its measured FID and confidence, and the share
    of its optimiser steps this run will take (and its loss when it had taken as many)."""
    refs = shipped_references() if references is None else references
    arch = str(options.get("arch") or "cnn")
    epochs, batch = int(options.get("epochs", 100)), int(options.get("batch_size", 128))
    limit = options.get("limit")
    n = min(int(limit), n_train) if limit else n_train
    per_epoch = -(-n // batch)
    steps = epochs * per_epoch
    ref = _pick_reference(options, refs)
    if images_per_s is None:
        best = _pick_speed_reference(options, refs, ref)
        if best is not None:
            images_per_s = best.images_per_s
            speed_source = (f"the shipped `{best.name}` trained at a median {images_per_s:,.0f} images/s ({arch}"
                            f"{f', patch {best.patch}' if best.patch > 1 else ''}, batch {best.batch_size}, "
                            f"{best.epochs_measured} epochs on 2 CPU cores)")
            if _process_type(options) not in (None, best.diffusion_type):
                speed_source += (f", a {best.diffusion_type} model: a {_process_type(options)} run's step also "
                                 "degrades its batch (about 10–25 % slower per image on the lab's Xeon: press "
                                 "**Measure this machine's speed** for this run's own)")
            if load is not None and load[0] > load[1]:  # a busy machine: the run gets its share of the cores
                images_per_s *= load[1] / load[0]
                speed_source += (f"; this machine is busy now ({load[0]:.1f} processes want its {load[1]} "
                                 f"core{'s' if load[1] > 1 else ''}), which leaves about {images_per_s:,.0f}")
            elif load is not None:
                speed_source += (f". That holds while the run has the cores to itself (now: load {load[0]:.1f} on "
                                 f"{load[1]} core{'s' if load[1] > 1 else ''}); each job that trains or samples "
                                 "beside it takes its share, so two runs at once take about twice as long")
    seconds, parts = None, {}
    preview_steps = _preview_steps(options)
    if images_per_s and preview_steps:
        forward_s = FORWARD_SHARE / images_per_s  # one image through the network once
        parts["starting"] = STARTUP_S
        parts["training"] = epochs * n / images_per_s
        parts["previews"] = _schedule_count(epochs, 10) * 16 * preview_steps * forward_s
        fid_every = int(options.get("fid_every") or 0)
        if fid_every:
            parts["FID"] = FID_SETUP_S + _schedule_count(epochs, fid_every) * int(
                options.get("fid_samples") or 256) * preview_steps * forward_s
        seconds = sum(parts.values())
    verdict = _verdict(steps, ref, int(options.get("fid_every") or 0) > 0)
    if ref is not None and (options.get("dataset") or "mnist") != "mnist":
        verdict += f" (The shipped models learned MNIST digits; this run learns {options['dataset']}.)"
    return TrainingEstimate(n, epochs, per_epoch, steps, images_per_s, speed_source or "", seconds, parts, ref,
                            verdict)


def _verdict(steps: int, ref: Reference | None, monitored: bool = False) -> str:
    if ref is None:
        return "No shipped model of this architecture and process to compare with."
    had = f"{'more than ' if ref.continued else ''}{ref.optimizer_steps:,}"
    base = f"The shipped `{ref.name}` after {had} optimiser steps: {ref.quality_text()}."
    share = steps / ref.optimizer_steps
    loss = None if ref.continued else ref.loss_at(steps)
    final = ref.rows[-1].get("loss") if ref.rows else None
    at = (f" Its training loss after {steps:,} steps was {loss:.3g} (at the end {final:.3g})."
          if loss is not None and final is not None and share < 1 else "")
    if share < NOT_DIGITS_BELOW:
        expect = (f"Expect noise, not digits: this run takes {steps:,} steps, {100 * share:.0f}% of that. "
                  "More epochs (or a smaller batch) give more steps.")
    elif share < 1:
        expect = f"Expect worse samples than it: this run takes {steps:,} steps, {100 * share:.0f}% of that."
    else:
        expect = f"This run takes {steps:,} steps, as many or more: expect about that quality."
    return f"{expect} {base}{at}{_as_measured(ref, monitored)}"


def _as_measured(ref: Reference, monitored: bool) -> str:
    """The reference's FID as this run will measure it: its training checks (the run's FID chart) beside its
    card's measurement on the finished model."""
    card = card_protocol(ref.metrics)
    if card is None:
        return ""
    card_text = f"its FID above was measured on the finished model ({card})"
    mon = ref.monitor()
    if not monitored:
        return f" ({card_text}.)"
    sampler = monitor_sampler(ref.diffusion_type)
    if mon is None:
        return (f" This run's FID chart measures during training with fewer samples and {sampler}, so it reads "
                f"higher than that: {card_text}.")
    fid, n = mon
    return (f" This run's FID chart measures as `{ref.name}`'s training checks did ({f'n = {n}, ' if n else ''}"
            f"{sampler}): they ended at FID {fid:.0f}, so expect about that on the chart; {card_text}.")


def measure_images_per_s(options: Mapping[str, object], budget_s: float = 3.0,
                         max_batch: int = 64) -> tuple[float, str]:
    """Training images per second on this machine for a run with these options: a few forward +
    backward + Adam steps of its architecture and objective on random data, on the device and at the
    precision the trainer would use. Returns (images/s, a description of what was measured)."""
    import torch

    from diffusion_core.models import build_model
    from diffusion_core.models.guidance import is_conditional
    from diffusion_core.training.config import resolve_device
    from diffusion_core.training.objectives import objective_from_config
    from diffusion_core.training.precision import resolve_precision, with_precision

    config = config_of(options)
    device = resolve_device(config.device)
    model = build_model(config.model).to(device)
    objective = objective_from_config(config.diffusion)
    trained = with_precision(model, config.precision, device)
    optim = torch.optim.Adam(model.parameters(), lr=1e-4)
    batch = max(1, min(config.batch_size, max_batch))
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand((batch, 1, 28, 28), generator=gen) - 0.5).to(device)
    y = torch.zeros(batch, dtype=torch.long, device=device) if is_conditional(model) else None

    def step() -> None:
        loss = objective.loss(trained, x, gen, slice(None), y)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up (allocations, kernels)
    count, t0 = 0, time.perf_counter()
    while count < 1 or (time.perf_counter() - t0 < budget_s and count < 50):
        step()
        count += 1
    rate = count * batch / (time.perf_counter() - t0)
    precision = str(resolve_precision("auto", device)).replace("torch.", "")
    return rate, f"measured on this machine just now ({device.type}, {precision}, batch {batch}, {count} steps)"


def training_set_size(dataset: str, data_root: str | None = None) -> tuple[int, str]:
    """(images in the training split a run would use now, where they come from), without downloading."""
    from diffusion_core.io.data import load_dataset

    data = load_dataset(dataset, "train", root=data_root, download=False)
    return len(data), data.source
