"""Data for the Evaluate page: every training run and shipped checkpoint as one record (its metrics
rows and final numbers), the metrics table, sample grids by epoch, and an optional quality-vs-speed
benchmark file.

A run's curves come from its metrics.jsonl (one row per epoch: loss, wall_time_s, and "fid" when the
trainer measured it). A shipped checkpoint carries its final numbers in its config's "metrics"; if a
`<name>.metrics.jsonl` lies next to it (the history of the run that made it), its curves are drawn too.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from diffusion_core.io.cards import card_protocol, monitor_sampler
from diffusion_core.io.checkpoints import list_checkpoints
from diffusion_core.io.files import PROJECT_ROOT, read_jsonl
from diffusion_core.io.runs import read_json_or_empty
from diffusion_core.services.run_status import list_runs

BENCHMARK_ENV = "DIFFUSION_LAB_BENCHMARKS"
BENCHMARK_FILE = Path("benchmarks") / "results" / "quality_vs_speed.json"
BENCHMARK_COLUMNS = ("sampler", "steps", "fid", "seconds")
_EPOCH_PNG = re.compile(r"^epoch_(\d+)\.png$")


@dataclass
class ModelRecord:
    """One run or shipped checkpoint as the Evaluate page compares it."""

    key: str  # "run:<run id>" or "shipped:<name>", as in the model picker
    name: str
    source: str  # "run" | "shipped"
    config: dict
    rows: list[dict] = field(default_factory=list)  # metrics.jsonl rows, oldest first
    final: dict = field(default_factory=dict)  # the checkpoint config's "metrics"
    epochs: int | None = None
    state: str | None = None  # runs only: finished, running, stopped, …
    run_dir: Path | None = None
    weights: Path | None = None  # its .safetensors (a run's latest checkpoint; None before its first epoch)

    @property
    def diffusion_type(self) -> str:
        return (self.config.get("diffusion") or {}).get("type", "?")

    def values(self, key: str) -> list[float]:
        """`key` ("loss", "fid", …) of every row that has it, in epoch order."""
        return [float(r[key]) for r in self.rows if r.get(key) is not None]


def collect_records(runs_root: Path | None = None, shipped_folder: Path | None = None) -> list[ModelRecord]:
    """Every run under the runs root (newest first), then every shipped checkpoint (by name)."""
    records = []
    for run in list_runs(runs_root):
        final = read_json_or_empty(run.run_dir / "model.json").get("metrics") or {}
        epochs = run.epoch or (int(run.metrics[-1]["epoch"]) if run.metrics and "epoch" in run.metrics[-1] else None)
        records.append(ModelRecord(f"run:{run.run_id}", run.run_id, "run", run.config, run.metrics, final,
                                   epochs, run.state, run.run_dir, run.checkpoint))
    for wpath, meta in list_checkpoints(shipped_folder):
        history = wpath.with_suffix(".metrics.jsonl")
        rows = read_jsonl(history) if history.is_file() else []
        records.append(ModelRecord(f"shipped:{wpath.stem}", wpath.stem, "shipped", meta, rows,
                                   meta.get("metrics") or {}, meta.get("epochs"), weights=wpath))
    return records


def monitor_protocol(record: ModelRecord) -> str | None:
    """How the training monitor measured a record's FID rows: 'n = 256 · ddim, 20 steps · during training'."""
    rows = [r for r in record.rows if r.get("fid") is not None]
    if not rows:
        return None
    n = rows[-1].get("fid_samples")
    sampler = monitor_sampler(record.diffusion_type)
    return f"n = {int(n):,} · {sampler} · during training" if n else f"{sampler} · during training"


def summary_row(record: ModelRecord) -> dict:
    """The metrics-table row: final loss, epochs, wall time (rows first, then the checkpoint's own metrics), and
    one FID per protocol, each beside its protocol: the card's (measured on the finished model) and the training
    monitor's last (fewer samples and a quicker sampler, so higher: never mixed with the card's)."""
    losses, monitor = record.values("loss"), record.values("fid")
    walls = record.values("wall_time_s")
    loss = losses[-1] if losses else record.final.get("loss")
    wall = walls[-1] if walls else record.final.get("wall_time_s")
    return {
        "model": record.name, "source": record.source, "type": record.diffusion_type,
        "arch": (record.config.get("model") or {}).get("arch", "?"), "dataset": record.config.get("dataset", "?"),
        "state": record.state or "shipped", "epochs": record.epochs,
        "final loss": None if loss is None else float(loss),
        "FID (card)": None if record.final.get("fid") is None else float(record.final["fid"]),
        "card protocol": card_protocol(record.final),
        "FID (monitor, last)": monitor[-1] if monitor else None, "monitor protocol": monitor_protocol(record),
        "wall time (s)": None if wall is None else float(wall),
    }


def summary_table(records: Sequence[ModelRecord]) -> list[dict]:
    return [summary_row(r) for r in records]


def has_fid(records: Sequence[ModelRecord]) -> bool:
    """Whether any record has an FID curve (a metrics row with "fid")."""
    return any(r.values("fid") for r in records)


def final_fids(records: Sequence[ModelRecord]) -> dict[str, dict]:
    """name → the FID measured on a finished model (its card's metrics: fid, fid_floor at the same number
    of samples n, the sampler and its steps), for the records that carry one."""
    keep = ("fid", "fid_floor", "n", "sampler", "steps")
    return {r.name: {k: r.final.get(k) for k in keep} for r in records if r.final.get("fid") is not None}


def fid_curve_missing(records: Sequence[ModelRecord]) -> list[str]:
    """Names of the shipped models whose training history (metrics.jsonl) has rows but no "fid" in them."""
    return [r.name for r in records if r.source == "shipped" and r.rows and not r.values("fid")]


def sample_grids(run_dir: Path) -> dict[int, Path]:
    """epoch → samples/epoch_NNNN.png written by the trainer, in epoch order."""
    folder = Path(run_dir) / "samples"
    found = {}
    if folder.is_dir():
        for f in folder.iterdir():
            m = _EPOCH_PNG.match(f.name)
            if m and f.is_file():
                found[int(m.group(1))] = f
    return dict(sorted(found.items()))


def benchmark_meta(path: Path | None = None) -> dict:
    """The quality-vs-speed file's description of its rows ({"model", "reference", "measured", "machine"} as
    written by benchmarks/run.py); {} for a bare list of rows or no file."""
    path = benchmark_path() if path is None else Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if k != "rows" and isinstance(v, str)} if isinstance(data, dict) else {}


def benchmark_path() -> Path:
    """$DIFFUSION_LAB_BENCHMARKS, else benchmarks/results/quality_vs_speed.json in the project."""
    env = os.environ.get(BENCHMARK_ENV)
    return Path(env) if env else PROJECT_ROOT / BENCHMARK_FILE


def read_benchmark(path: Path | None = None) -> list[dict] | None:
    """Rows of the quality-vs-speed file (columns sampler, steps, fid, seconds, then any others); None
    when there is no such file; ValueError when it is not a JSON list of objects (or {"rows": [...]}).
    What was measured (model, reference, when, where) is benchmark_meta's."""
    path = benchmark_path() if path is None else Path(path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path.name} is not valid JSON: {exc}") from None
    if isinstance(data, dict):
        data = data.get("rows", data.get("results"))
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ValueError(f"{path.name} must hold a list of rows like "
                         '{"sampler": "ddim", "steps": 50, "fid": 12.3, "seconds": 1.4}')
    order = list(BENCHMARK_COLUMNS) + sorted({k for r in data for k in r} - set(BENCHMARK_COLUMNS))
    return [{k: r.get(k) for k in order} for r in data]
