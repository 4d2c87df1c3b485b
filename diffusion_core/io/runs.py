"""A training run directory, as the trainer writes it and everything else reads it:

  config.json                     the TrainConfig (written once)
  status.json                     state (running / finished / failed / stopped), epoch, message — atomic
  metrics.jsonl                   one line per finished epoch: loss, wall time, images/s (and "fid")
  samples/epoch_NNNN.{png,npy}    previews at chosen epochs
  model.safetensors / model.json  the latest checkpoint
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from diffusion_core.io.files import read_jsonl

CONFIG, STATUS, METRICS, SAMPLES = "config.json", "status.json", "metrics.jsonl", "samples"
LAUNCH_ENV = "DIFFUSION_LAB_LAUNCH"  # set by whoever launched the trainer remotely (a Ray job's id)


def launch_id() -> str | None:
    """Which launch this trainer is (status.json records it beside the pid: a run on another machine is
    told from an earlier launch of the same run by it, where a local run is told by its pid)."""
    return os.environ.get(LAUNCH_ENV) or None


def read_json_or_empty(path: Path) -> dict:
    """A JSON object from `path`; {} when it is missing, torn or not an object (a run still being written)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def read_status(run_dir: str | Path) -> dict:
    return read_json_or_empty(Path(run_dir) / STATUS)


@dataclass
class RunFiles:
    """What a run directory holds now (each part empty where not written yet)."""

    run_dir: Path
    config: dict = field(default_factory=dict)
    status: dict = field(default_factory=dict)
    metrics: list[dict] = field(default_factory=list)
    previews: dict[int, Path] = field(default_factory=dict)  # epoch → samples/epoch_NNNN.npy

    @property
    def diffusion_type(self) -> str | None:
        return (self.config.get("diffusion") or {}).get("type")


def read_run_files(run_dir: str | Path) -> RunFiles:
    """Read a run directory (see the module docstring); tolerant of a run that is still being written."""
    run_dir = Path(run_dir)
    previews = {}
    for f in sorted((run_dir / SAMPLES).glob("epoch_*.npy")):
        try:
            previews[int(f.stem.split("_")[1])] = f
        except (IndexError, ValueError):
            continue
    return RunFiles(run_dir, read_json_or_empty(run_dir / CONFIG), read_status(run_dir),
                    read_jsonl(run_dir / METRICS), previews)


def is_run_dir(run_dir: str | Path) -> bool:
    return (Path(run_dir) / METRICS).is_file() or (Path(run_dir) / CONFIG).is_file()
