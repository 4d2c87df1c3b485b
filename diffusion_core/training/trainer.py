"""The trainer: Adam on an objective, writing a run directory that a page can watch.

run_dir/
  config.json      the TrainConfig (written once)
  status.json      state (running / finished / failed / stopped), epoch, message — atomic
  metrics.jsonl    one line per finished epoch: loss, wall time, images/s
  model.safetensors + model.json   the latest inference checkpoint (EMA weights when EMA is on)
  train_state.pt   raw weights, EMA and optimiser state for resuming (tensors only; read with
                   weights_only=True)
  samples/epoch_NNNN.{png,npy}     previews at chosen epochs
  STOP             created by a user to ask the run to stop cleanly
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from diffusion_core.evaluation.fid_monitor import FIDMonitor
from diffusion_core.io.checkpoints import LoadedCheckpoint, checkpoint_name, load_checkpoint, save_checkpoint
from diffusion_core.io.data import Dataset, load_dataset
from diffusion_core.io.files import append_jsonl, atomic_write_bytes, atomic_write_json, read_jsonl
from diffusion_core.io.images import save_samples, to_unit_numpy
from diffusion_core.io.runs import launch_id, read_status
from diffusion_core.models import build_model, count_parameters
from diffusion_core.models.guidance import ClassGuided, drop_labels, is_conditional
from diffusion_core.training.config import TrainConfig, TrainingError, machine_name
from diffusion_core.training.coupling import coupling_dataset
from diffusion_core.training.distributed import Distributed, init_distributed
from diffusion_core.training.objectives import objective_from_config
from diffusion_core.training.optim import ema_update, lr_at
from diffusion_core.training.precision import resolve_precision, with_precision


def write_status(run_dir: Path, **fields: object) -> None:
    status = read_status(run_dir)
    status.update(fields, updated=time.time())
    atomic_write_json(run_dir / "status.json", status)


@dataclass
class EpochReport:
    epoch: int
    epochs: int
    loss: float
    wall_time: float


def _fail(run_dir: Path, dist: Distributed, reason: str) -> TrainingError:
    if dist.is_main:
        write_status(run_dir, state="failed", message=reason)
    return TrainingError(reason)


def _save_failed(run_dir: Path, dist: Distributed, epoch: int, exc: OSError) -> TrainingError:
    """A TrainingError (status "failed" when it can still be written) for a write that failed at epoch end."""
    reason = (f"could not save epoch {epoch} in {run_dir}: {exc.strerror or exc}. Free disk space (or make the "
              "folder writable), then Resume to continue from the last saved epoch.")
    try:
        return _fail(run_dir, dist, reason)
    except OSError:  # the status cannot be written either (the disk is still full)
        return TrainingError(reason)


def train(
    config: TrainConfig,
    run_dir: str | Path,
    resume: bool = False,
    on_batch: Callable[[int, int, int, float], None] | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> Path:
    """Train into `run_dir` (see _train). Whatever stops a run that has started is recorded in its
    status.json as "failed" with the reason, so a page never shows a dead run as running; an OSError
    (disk full, folder gone) becomes a TrainingError naming the problem and the fix."""
    run_dir = Path(run_dir)
    try:
        return _train(config, run_dir, resume, on_batch, on_epoch)
    except TrainingError:
        raise
    except (Exception, KeyboardInterrupt) as exc:
        if read_status(run_dir).get("state") == "running" and int(os.environ.get("RANK", "0")) == 0:
            reason = f"{exc.__class__.__name__}: {exc}" if not isinstance(exc, KeyboardInterrupt) else "interrupted"
            try:
                write_status(run_dir, state="failed" if not isinstance(exc, KeyboardInterrupt) else "stopped",
                             message=reason)
            except OSError:
                pass
        if isinstance(exc, OSError):
            raise TrainingError(f"{exc.strerror or exc} ({exc.filename or run_dir}): free disk space or fix the "
                                "folder's permissions, then Resume; the last complete epoch is kept") from None
        raise


def init_weights(model: nn.Module, init: LoadedCheckpoint, config: TrainConfig) -> None:
    """Copy a checkpoint's weights into `model` (same architecture). An unconditional U-Net may also
    start a class-conditional one: its label embedding starts at zero, so the first step of the
    conditional run predicts exactly what the unconditional model did."""
    own, theirs = model.state_dict(), init.model.state_dict()
    new = set(own) - set(theirs)
    if set(theirs) - set(own) or any(not k.startswith("label_embed.") for k in new) or any(
            v.shape != own[k].shape for k, v in theirs.items()):
        raise ValueError(f"--init-from {config.init_from} holds a {init.config['model']} model, which does "
                         f"not fit this run's {config.model}")
    model.load_state_dict(theirs, strict=False)
    with torch.no_grad():
        for k in new:
            own[k].zero_()


@dataclass
class _Session:
    """Everything one training process holds while it runs: the run's config and folder, its place in a torchrun
    job, the data, the network (and its EMA copy), the optimiser, and what each epoch's end writes."""

    config: TrainConfig
    run_dir: Path
    dist: Distributed
    device: torch.device
    x_all: torch.Tensor
    y_all: torch.Tensor
    objective: object
    model: nn.Module
    trained: nn.Module  # the model as the step runs it: under DDP and the chosen precision
    ema: nn.Module | None
    optim: torch.optim.Optimizer
    ckpt_meta: dict
    fid: FIDMonitor | None
    conditional: bool
    start_epoch: int = 1
    elapsed: float = 0.0

    @property
    def ckpt_path(self) -> Path:
        return self.run_dir / "model.safetensors"

    @property
    def n_batches(self) -> int:
        return math.ceil(len(self.x_all) / self.config.batch_size)


def _resumed_config(config: TrainConfig, run_dir: Path, resume: bool) -> tuple[TrainConfig, dict | None]:
    """(the config to train, the saved training state or None): a resumed run trains its own saved config, for
    at least the epochs asked."""
    if not resume:
        return config, None
    if not (run_dir / "config.json").is_file():
        raise ValueError(f"cannot resume: {run_dir} has no config.json (not a run directory)")
    saved = TrainConfig.from_dict(json.loads((run_dir / "config.json").read_text()))
    saved.epochs = max(saved.epochs, config.epochs)  # allow extending a finished run
    state = None
    if (run_dir / "train_state.pt").is_file():
        try:  # tensors, numbers and dicts only: weights_only refuses anything that could run code
            state = torch.load(run_dir / "train_state.pt", map_location="cpu", weights_only=True)
        except Exception as exc:
            raise TrainingError(f"{run_dir / 'train_state.pt'} is not a valid training state and was not "
                                f"loaded ({exc.__class__.__name__}); start a new run") from None
    return saved, state


def _open_run_dir(config: TrainConfig, run_dir: Path, dist: Distributed) -> None:
    """Rank 0 writes config.json (the run directory made if need be) and clears an old STOP request."""
    if dist.is_main:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(run_dir / "config.json", dataclasses.asdict(config))
        except OSError as exc:
            raise TrainingError(
                f"cannot write the run directory {run_dir}: {exc.strerror}; choose a writable --out"
            ) from None
        (run_dir / "STOP").unlink(missing_ok=True)
    dist.barrier()


def _checkpoint_meta(config: TrainConfig, n_train: int, data_source: str, device: torch.device,
                     conditional: bool) -> dict:
    """What every saved checkpoint of the run says about how it was trained."""
    return {
        "model": config.model, "diffusion": config.diffusion, "dataset": config.dataset,
        "training": {"lr": config.lr, "batch_size": config.batch_size, "seed": config.seed,
                     **({"warmup": config.warmup} if config.warmup else {}),
                     **({"lr_decay": config.lr_decay} if config.lr_decay != "none" else {}),
                     "ema_decay": config.ema_decay, "n_train": n_train, "data_source": data_source,
                     "machine": machine_name(device),
                     **({"init_from": checkpoint_name(config.init_from)} if config.init_from else {}),
                     **({"coupling": {**config.coupling, "teacher": checkpoint_name(config.coupling["teacher"])}}
                        if config.coupling else {}),
                     **({"label_dropout": config.label_dropout} if conditional else {})},
    }


def _training_data(config: TrainConfig, run_dir: Path, dist: Distributed, device: torch.device) -> Dataset:
    """The dataset's images; for a reflow run, its teacher's (noise, sample) pairs — drawn by rank 0 (status
    "drawing", with a count) into the run directory, then read there by every rank."""
    if config.coupling is None:
        return load_dataset(config.dataset, "train", root=config.data_root, download=config.download)

    def drawn(done: int, n: int) -> None:
        write_status(run_dir, state="drawing", drawn=done, pairs=n, pid=os.getpid(), launch=launch_id())
        print(f"drawing the teacher's pairs: {done:,} of {n:,}", flush=True)

    if dist.is_main:
        data = coupling_dataset(config.coupling, config.seed, run_dir, device, config.precision, on_chunk=drawn)
    dist.barrier()
    return data if dist.is_main else coupling_dataset(config.coupling, config.seed, run_dir, device, write=False)


def _start_session(config: TrainConfig, run_dir: Path, state: dict | None, resume: bool, dist: Distributed,
                   device: torch.device) -> _Session:
    """Load the data, build (or restore) the network, optimiser and EMA, and write the running status."""
    data = _training_data(config, run_dir, dist, device)
    x_all = (data.images[: config.limit] if config.limit else data.images).to(device)
    y_all = (data.labels[: config.limit] if config.limit else data.labels).to(device)
    objective = objective_from_config(config.diffusion, config.coupling)
    torch.manual_seed(config.seed)  # initial weights: identical on every rank
    model = build_model(config.model).to(device)
    ema = copy.deepcopy(model).eval() if config.ema_decay else None
    optim = torch.optim.Adam(model.parameters(), lr=config.lr)
    start_epoch, elapsed = 1, 0.0
    if config.init_from and state is None:
        init_weights(model, load_checkpoint(config.init_from), config)
        if ema is not None:
            ema.load_state_dict(model.state_dict())
    if state is not None:
        model.load_state_dict(state["model"])
        optim.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        start_epoch, elapsed = int(state["epoch"]) + 1, float(state["elapsed"])
    if dist.is_main:
        if state is not None:  # drop metrics of an epoch whose checkpoint never completed
            rows = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r.get("epoch", 0) <= state["epoch"]]
            kept = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
            atomic_write_bytes(run_dir / "metrics.jsonl", kept.encode())
        elif resume:
            (run_dir / "metrics.jsonl").unlink(missing_ok=True)
        write_status(run_dir, state="running", epoch=start_epoch - 1, epochs=config.epochs, pid=os.getpid(),
                     launch=launch_id(),
                     message=data.notice or "", data_source=data.source, n_train=len(x_all),
                     parameters=count_parameters(model), device=str(device), world_size=dist.world,
                     precision=str(resolve_precision(config.precision, device)).replace("torch.", ""))
    trained = model
    if dist.world > 1:
        trained = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.index is not None
                                                            else None)
    conditional = is_conditional(model)
    fid = FIDMonitor(config.dataset, config.fid_samples, config.seed, config.data_root, config.download) \
        if config.fid_every and dist.is_main else None
    return _Session(config, run_dir, dist, device, x_all, y_all, objective, model,
                    with_precision(trained, config.precision, device), ema, optim,
                    _checkpoint_meta(config, len(x_all), data.source, device, conditional), fid, conditional,
                    start_epoch, elapsed)


def _train(
    config: TrainConfig,
    run_dir: Path,
    resume: bool,
    on_batch: Callable[[int, int, int, float], None] | None,
    on_epoch: Callable[[EpochReport], None] | None,
) -> Path:
    """Train into `run_dir` (resume=True continues its last complete epoch). Returns the
    inference checkpoint path. Raises TrainingError (status "failed") on NaN/Inf loss.

    Under torchrun every rank draws the same global batch and the same noise, computes the loss on
    its own shard, and DistributedDataParallel averages the gradients: the result matches one
    process with the same global batch. Rank 0 alone writes the run directory.
    """
    config, state = _resumed_config(config, run_dir, resume)
    config.validate()
    dist, device = init_distributed(config.device)
    _open_run_dir(config, run_dir, dist)
    run = _start_session(config, run_dir, state, resume, dist, device)
    for epoch in range(run.start_epoch, config.epochs + 1):
        t0 = time.perf_counter()
        summed = _train_epoch(run, epoch, on_batch)
        if summed is None:  # stopped by the user
            return run.ckpt_path
        wall = time.perf_counter() - t0
        run.elapsed += wall
        epoch_loss, count = summed[0] / summed[1], summed[1]
        if not all(torch.isfinite(p).all() for p in run.model.parameters()):
            raise _fail(run_dir, dist, f"weights became NaN/Inf in epoch {epoch}: training diverged. Lower the "
                        f"learning rate (now {config.lr:g}); the checkpoint of epoch {epoch - 1} is kept.")
        if dist.is_main:
            try:
                _end_of_epoch(run, epoch, epoch_loss, wall, count)
            except OSError as exc:  # disk full, folder removed or read-only: fail the run with a reason
                raise _save_failed(run_dir, dist, epoch, exc) from None
            if on_epoch is not None:
                on_epoch(EpochReport(epoch, config.epochs, epoch_loss, run.elapsed))
        dist.barrier()
    return run.ckpt_path


def _train_epoch(run: _Session, epoch: int, on_batch: Callable[[int, int, int, float], None] | None
                 ) -> tuple[float, int] | None:
    """One pass over the data: (summed loss, images seen), or None when a STOP request ended the run."""
    config, dist, run_dir, n_batches = run.config, run.dist, run.run_dir, run.n_batches
    gen = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)  # resumable, same on every rank
    perm = torch.randperm(len(run.x_all), generator=gen).to(run.device)
    run.model.train()
    total, count = 0.0, 0
    for b in range(n_batches):
        idx = perm[b * config.batch_size:(b + 1) * config.batch_size]
        x = run.x_all[idx]
        shard = dist.shard(x.shape[0])
        y = drop_labels(run.y_all[idx], config.label_dropout, gen) if run.conditional else None
        loss = run.objective.loss(run.trained, x, gen, shard, y)
        # weight the shard so that DDP's gradient average is the mean over the global batch
        weight = (shard.stop - shard.start) * dist.world / x.shape[0]
        stop = (run_dir / "STOP").exists() if dist.is_main else False
        summary = torch.stack([loss.detach().float() * (shard.stop - shard.start),
                               torch.tensor(float(stop), device=loss.device)])
        if dist.world > 1:
            torch.distributed.all_reduce(summary)
        batch_loss, stop = summary[0].item() / x.shape[0], bool(summary[1].item())
        if stop:
            if dist.is_main:
                write_status(run_dir, state="stopped", message=f"stopped by user during epoch {epoch}; "
                             f"the checkpoint of epoch {epoch - 1} is kept")
            return None
        if not math.isfinite(batch_loss):
            raise _fail(run_dir, dist, f"loss became {batch_loss} at epoch {epoch}, batch {b + 1}: training "
                        f"diverged. Lower the learning rate (now {config.lr:g}); the checkpoint of epoch "
                        f"{epoch - 1} is kept.")
        run.optim.zero_grad(set_to_none=True)
        (loss * weight).backward()
        step = (epoch - 1) * n_batches + b
        if config.warmup or config.lr_decay != "none":
            for group in run.optim.param_groups:
                group["lr"] = lr_at(config.lr, step, config.epochs * n_batches, config.warmup, config.lr_decay)
        run.optim.step()
        if run.ema is not None:
            ema_update(run.ema, run.model, config.ema_decay, step)
        total += batch_loss * x.shape[0]
        count += x.shape[0]
        if on_batch is not None and dist.is_main:
            on_batch(epoch, b + 1, n_batches, batch_loss)
    return total, count


def _end_of_epoch(run: _Session, epoch: int, epoch_loss: float, wall: float, count: int) -> None:
    """Rank 0's writes, in an order that keeps resume safe: the inference checkpoint (one atomic
    pair), previews and the metrics line, then the training state, then the status. Resume continues
    after the epoch in train_state.pt and drops metrics rows beyond it, so a kill or a full disk at any
    point redoes the unfinished epoch instead of losing its row."""
    config, run_dir, objective, fid, elapsed = run.config, run.run_dir, run.objective, run.fid, run.elapsed
    net = run.ema if run.ema is not None else run.model
    save_checkpoint(run.ckpt_path, net, {**run.ckpt_meta, "epochs": epoch,
                                         "metrics": {"loss": epoch_loss, "wall_time_s": elapsed}})
    row = {"epoch": epoch, "loss": epoch_loss, "epoch_time_s": wall, "wall_time_s": elapsed,
           "images_per_s": count / wall, "steps": epoch * run.n_batches, **objective.take_loss_by_t()}
    # a class-conditional model previews (and is measured on) the digits 0–9 in turn, unguided
    fast_net = with_precision(ClassGuided(net) if is_conditional(net) else net, config.precision, run.device)
    if fid is not None and epoch in config.epochs_to_measure():
        measured = fid(objective, fast_net, run.device)
        if measured is not None:
            row.update(measured, fid_samples=config.fid_samples)
        elif fid.unavailable:
            write_status(run_dir, message=fid.unavailable)
    if epoch in config.epochs_to_sample():
        samples = objective.preview(fast_net, config.preview_n, config.seed, run.device)
        save_samples(to_unit_numpy(samples), run_dir / "samples" / f"epoch_{epoch:04d}")
        row["sample"] = f"samples/epoch_{epoch:04d}.png"
    append_jsonl(run_dir / "metrics.jsonl", row)
    state_dict = {"model": run.model.state_dict(), "optimizer": run.optim.state_dict(), "epoch": epoch,
                  "elapsed": elapsed}
    if run.ema is not None:
        state_dict["ema"] = run.ema.state_dict()
    buf = io.BytesIO()
    torch.save(state_dict, buf)
    atomic_write_bytes(run_dir / "train_state.pt", buf.getvalue())
    write_status(run_dir, state="running" if epoch < config.epochs else "finished", epoch=epoch,
                 loss=epoch_loss, elapsed=elapsed)
