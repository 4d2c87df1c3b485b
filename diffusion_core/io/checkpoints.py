"""Checkpoints: weights as safetensors plus a JSON config from which the exact model is rebuilt.

`<name>.safetensors` holds only tensors; `<name>.json` holds the architecture, the diffusion
process (noise schedule or cold degradation), data, epochs and metrics, and the SHA-256 of the
weights file so a torn or swapped pair is refused. Nothing is ever unpickled.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from diffusion_core.io.files import PROJECT_ROOT, atomic_write_files
from diffusion_core.models import build_model
from diffusion_core.models.guidance import validate_guidance
from diffusion_core.process import DiffusionProcess, process_from_config

FORMAT = "diffusion-lab-checkpoint"
VERSION = 1
MAX_CHECKPOINT_BYTES = 200 * 1024 * 1024
MAX_PARAMETERS = MAX_CHECKPOINT_BYTES // 4  # float32 weights that fit in the file size limit
REQUIRED_FIELDS = {"format", "version", "model", "diffusion", "weights_sha256"}
OPTIONAL_FIELDS = {"dataset", "epochs", "metrics", "training", "name", "notes", "guidance"}


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says what is wrong and what to do."""


class TornPairError(CheckpointError):
    """The weights are not the ones their config was written for (their SHA-256 differs)."""


@dataclass
class LoadedCheckpoint:
    model: nn.Module
    config: dict
    path: Path  # the .safetensors file

    @cached_property
    def process(self) -> DiffusionProcess:
        """The diffusion process of its config (noise schedule or degradation, samplers, loss)."""
        return process_from_config(self.config["diffusion"])


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, config) paths from either file of the pair or their common stem."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".safetensors", ".json") else p
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def weights_bytes(model: nn.Module) -> bytes:
    state = {k: v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    return save_safetensors_bytes(state)


def save_checkpoint(path: str | Path, model: nn.Module, config: dict) -> Path:
    """Write `<stem>.safetensors` and `<stem>.json` (with the weights' hash) as one atomic pair."""
    return write_pair(path, model, config, REQUIRED_FIELDS | OPTIONAL_FIELDS, FORMAT, VERSION, validate_config)


def write_pair(path: str | Path, model: nn.Module, config: dict, fields: set[str], fmt: str, version: int,
               validate: Callable[[dict], object]) -> Path:
    """The one checkpoint writer: `<stem>.safetensors` and `<stem>.json` (the config's `fields`, stamped with
    format, version and the weights' hash, then `validate`d) as one atomic pair — both are written before
    either replaces the old pair, so a crash leaves the old pair or the new one, never a mix."""
    wpath, cpath = checkpoint_paths(path)
    wpath.parent.mkdir(parents=True, exist_ok=True)
    data = weights_bytes(model)
    meta = {k: v for k, v in config.items() if k in fields}
    meta.update(format=fmt, version=version, weights_sha256=hashlib.sha256(data).hexdigest())
    validate(meta)
    config_bytes = (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()
    atomic_write_files({wpath: data, cpath: config_bytes})
    return wpath


def check_fields(meta: object, required: set[str], optional: set[str], what: str, fmt: str, version: int) -> dict:
    """A JSON object of format `fmt` and `version` with every required field and nothing unknown, or
    CheckpointError naming what is wrong."""
    if not isinstance(meta, dict):
        raise CheckpointError(f"{what} config must be a JSON object")
    missing = required - set(meta)
    if missing:
        raise CheckpointError(f"{what} config is missing required field(s) {sorted(missing)}")
    extra = set(meta) - required - optional
    if extra:
        raise CheckpointError(f"{what} config has unknown field(s) {sorted(extra)}; allowed: "
                              f"{sorted(required | optional)}")
    if meta["format"] != fmt:
        raise CheckpointError(f"not a Diffusion Lab {what} (format is {meta['format']!r}, expected {fmt!r})")
    if meta["version"] != version:
        raise CheckpointError(f"{what} version {meta['version']!r} is not supported (this build reads {version})")
    return meta


def validate_config(meta: object) -> dict:
    """Check a checkpoint config's structure; raise CheckpointError naming the problem."""
    check_fields(meta, REQUIRED_FIELDS, OPTIONAL_FIELDS, "checkpoint", FORMAT, VERSION)
    model = meta["model"]
    if not isinstance(model, dict) or "arch" not in model or not isinstance(model.get("params", {}), dict):
        raise CheckpointError('checkpoint "model" must be {"arch": ..., "params": {...}}')
    try:
        process_from_config(meta["diffusion"])
    except ValueError as exc:
        raise CheckpointError(f"checkpoint diffusion config: {exc}") from None
    if "guidance" in meta:  # the default classifier-free guidance scale of a class-conditional model
        try:
            validate_guidance(meta["guidance"])
        except ValueError as exc:
            raise CheckpointError(f"checkpoint {exc}") from None
    return meta


def _looks_like_pickle(head: bytes) -> bool:
    """A pickle (b"\\x80" + protocol) or a torch.save zip; not safetensors, whose 8-byte little-endian header
    length is followed by "{" (a header of 0x..80 bytes also starts with b"\\x80")."""
    if head[8:9] == b"{":
        return False
    return head[:1] == b"\x80" or head[:4] == b"PK\x03\x04"


def load_weights(data: bytes, source: str = "weights") -> dict[str, torch.Tensor]:
    """Parse safetensors bytes (never pickle); refuse anything else with a clear message."""
    if _looks_like_pickle(data[:9]):
        raise CheckpointError(
            f"{source} is a pickle / torch.save file, which can run code when loaded; Diffusion Lab only "
            "reads .safetensors weights. Convert it in a trusted environment with safetensors.torch.save_file."
        )
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(
            f"{source} is {len(data) / 2**20:.0f} MiB; the limit is {MAX_CHECKPOINT_BYTES // 2**20} MiB"
        )
    try:
        state = load_safetensors_bytes(data)
    except (SafetensorError, ValueError, RuntimeError, OverflowError) as exc:
        raise CheckpointError(f"{source} is not a valid safetensors file (truncated or corrupt?): {exc}") from None
    for key, tensor in state.items():
        if not tensor.is_floating_point():
            raise CheckpointError(f"{source}: tensor {key!r} has dtype {tensor.dtype}; expected floating point")
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{source}: tensor {key!r} contains NaN or Inf values")
    return state


def model_from_bytes(config_bytes: bytes, weights: bytes, source: str = "checkpoint") -> tuple[nn.Module, dict]:
    """Validate a (config JSON, safetensors) pair and rebuild the model with strict loading."""
    if len(config_bytes) > 1024 * 1024:
        raise CheckpointError(f"{source} config is larger than 1 MiB; that is not a checkpoint config")
    try:
        meta = json.loads(config_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{source} config is not valid JSON: {exc}") from None
    validate_config(meta)
    digest = hashlib.sha256(weights).hexdigest()
    if digest != meta["weights_sha256"]:
        raise TornPairError(
            f"{source} weights do not match their config (SHA-256 differs): the pair is torn, corrupt or mismatched"
        )
    state = load_weights(weights, source=f"{source} weights")
    try:
        with torch.device("meta"):  # size the model before allocating it: a hostile config could ask for TBs
            n_params = sum(p.numel() for p in build_model(meta["model"]).parameters())
        if n_params > MAX_PARAMETERS:
            raise ValueError(f"it has {n_params:,} parameters; the limit is {MAX_PARAMETERS:,}")
        model = build_model(meta["model"])
    except (ValueError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{source} config describes a model that cannot be built: {exc}") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{source} weights do not fit the {meta['model']['arch']!r} model in its config: "
            f"missing {missing[:3]}{'…' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'…' if len(unexpected) > 3 else ''}"
        )
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"{source}: tensor {key!r} has shape {tuple(tensor.shape)} but the model needs "
                f"{tuple(expected[key].shape)}; the weights belong to a different architecture"
            )
    model.load_state_dict(state, strict=True)
    model.eval()
    return model, meta


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> LoadedCheckpoint:
    """Load `<stem>.safetensors` + `<stem>.json`; raise CheckpointError with a clear message."""
    wpath, cpath = checkpoint_paths(path)
    for p in (wpath, cpath):
        if not p.is_file():
            raise CheckpointError(f"checkpoint file {p} not found (a checkpoint is a .safetensors + .json pair)")
    if wpath.stat().st_size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{wpath} is larger than {MAX_CHECKPOINT_BYTES // 2**20} MiB; refusing to read it")
    config_bytes, weights = cpath.read_bytes(), wpath.read_bytes()
    try:
        model, meta = model_from_bytes(config_bytes, weights, source=str(wpath.name))
    except TornPairError:
        model, meta = _interrupted_pair(wpath, cpath, config_bytes, weights)
    return LoadedCheckpoint(model=model.to(device), config=meta, path=wpath)


def _interrupted_pair(wpath: Path, cpath: Path, config_bytes: bytes, weights: bytes) -> tuple[nn.Module, dict]:
    """A writer killed between the two renames of write_pair leaves one file of the new pair in place, the other
    still complete in its temporary sibling (written and fsynced before either rename): the pair whose hash
    matches is the new one. Read only; a half-written temporary file never matches. TornPairError otherwise."""
    candidates = [(tmp, None) for tmp in sorted(cpath.parent.glob(f".{cpath.name}.*.tmp"))]
    candidates += [(None, tmp) for tmp in sorted(wpath.parent.glob(f".{wpath.name}.*.tmp"))
                   if tmp.stat().st_size <= MAX_CHECKPOINT_BYTES]
    for tmp_config, tmp_weights in candidates:
        try:
            return model_from_bytes(tmp_config.read_bytes() if tmp_config else config_bytes,
                                    tmp_weights.read_bytes() if tmp_weights else weights, source=str(wpath.name))
        except (CheckpointError, OSError):
            continue
    return model_from_bytes(config_bytes, weights, source=str(wpath.name))  # raises the TornPairError


def shipped_dir() -> Path:
    """The project's checkpoints/ folder (override with DIFFUSION_LAB_CHECKPOINTS)."""
    import os

    return Path(os.environ.get("DIFFUSION_LAB_CHECKPOINTS", PROJECT_ROOT / "checkpoints"))


def list_checkpoints(folder: str | Path | None = None) -> list[tuple[Path, dict]]:
    """(weights path, config) for every readable checkpoint config in `folder`, sorted by name."""
    folder = Path(folder) if folder is not None else shipped_dir()
    found = []
    for cpath in sorted(folder.glob("*.json")):
        meta = _checked_config(cpath)
        if meta is not None:
            found.append((cpath.with_suffix(".safetensors"), meta))
    return found


_configs: dict[Path, tuple[tuple[int, int], dict | None]] = {}  # config file → ((mtime_ns, size), checked config)
_configs_lock = threading.Lock()


def _checked_config(cpath: Path) -> dict | None:
    """validate_config of a config file (a copy), or None for an unreadable one; remembered while the file's
    modification time and size stay the same (every page lists the shipped models on every rerun, and checking a
    config builds its schedule: a fifth of a class's server time before)."""
    try:
        stat = cpath.stat()
    except OSError:
        return None
    stamp = (stat.st_mtime_ns, stat.st_size)
    with _configs_lock:
        known = _configs.get(cpath)
    if known is None or known[0] != stamp:
        try:
            meta = validate_config(json.loads(cpath.read_text()))
        except (CheckpointError, json.JSONDecodeError, UnicodeDecodeError, OSError):
            meta = None
        known = (stamp, meta)
        with _configs_lock:
            _configs[cpath] = known
    return None if known[1] is None else copy.deepcopy(known[1])


def checkpoint_name(path: str | Path) -> str:
    """What a checkpoint is called: a shipped one's name, or a training run's folder (<run>/model.safetensors)."""
    p = Path(path)
    return p.parent.name if p.stem == "model" and p.parent.name else p.stem


def resolve_checkpoint(name_or_path: str | Path) -> Path:
    """A path to a checkpoint pair, or the name of a shipped one (e.g. "default")."""
    p = Path(name_or_path)
    wpath, cpath = checkpoint_paths(p)
    if wpath.is_file() or cpath.is_file():
        return wpath
    if p.is_dir() and (p / "model.json").is_file():  # a training run directory
        return p / "model.safetensors"
    shipped = shipped_dir() / f"{name_or_path}.safetensors"
    if shipped.is_file():
        return shipped
    names = ", ".join(w.stem for w, _ in list_checkpoints()) or "none shipped yet"
    raise CheckpointError(f"no checkpoint at {name_or_path!r} and no shipped checkpoint of that name ({names})")
