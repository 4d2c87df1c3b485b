"""Helpers for the app and jobs tests: AppTest on a page of the real app, tiny checkpoints, and run
directories in every state without training (a stand-in process for live jobs)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from streamlit.testing.v1 import AppTest

from diffusion_core.io.checkpoints import save_checkpoint
from diffusion_core.io.data import Dataset
from diffusion_core.models import build_model

ROOT = Path(__file__).resolve().parent.parent
TINY_CNN = {"arch": "cnn", "params": {"hidden": [4, 4], "kernel_size": 3, "time_embed_dim": 8}}


def app(page: str | None = None, query: dict | None = None) -> AppTest:
    """AppTest of the multipage app (so page links resolve), switched to `page`; not yet run."""
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    if query:
        at.query_params.update(query)
    if page:
        at.switch_page(page)
    return at


def shipped_folder(tmp_path: Path, monkeypatch, fresh_caches: bool = True) -> Path:
    """An empty folder made the app's shipped checkpoints (DIFFUSION_LAB_CHECKPOINTS), no default model named;
    fresh_caches: Streamlit's resource caches cleared first (a model is cached by its path)."""
    import streamlit as st

    if fresh_caches:
        st.cache_resource.clear()
    folder = tmp_path / "shipped"
    folder.mkdir(exist_ok=True)
    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(folder))
    monkeypatch.delenv("DIFFUSION_LAB_DEFAULT_MODEL", raising=False)
    return folder


def ship_tiny_model(tmp_path: Path, monkeypatch, name: str = "tiny", T: int = 20) -> Path:
    """A folder of shipped checkpoints holding one tiny noise model, made the app's (fresh Streamlit caches)."""
    shipped = shipped_folder(tmp_path, monkeypatch)
    write_checkpoint(shipped, name, T=T)
    return shipped


def write_checkpoint(folder: Path, name: str = "tiny", T: int = 20, beta1: float = 1e-4, beta2: float = 0.02,
                     seed: int = 1) -> Path:
    """A tiny CNN noise checkpoint (hidden 4, 4) with a linear schedule."""
    torch.manual_seed(seed)
    model = build_model(TINY_CNN)
    config = {"model": TINY_CNN, "diffusion": {"type": "noise", "schedule": {
        "kind": "linear", "beta1": beta1, "beta2": beta2, "T": T}}, "dataset": "mnist", "epochs": 1}
    return save_checkpoint(Path(folder) / name, model, config)


def write_flow_checkpoint(folder: Path, name: str = "flow", T: int = 20, seed: int = 1) -> Path:
    """A tiny CNN flow-matching checkpoint (hidden 4, 4) on a grid of T steps of t."""
    torch.manual_seed(seed)
    config = {"model": TINY_CNN, "diffusion": {"type": "flow", "T": T, "time_sampling": "uniform"},
              "dataset": "mnist", "epochs": 1}
    return save_checkpoint(Path(folder) / name, build_model(TINY_CNN), config)


def blobs(n: int = 48) -> Dataset:
    """Gaussian blobs at random places: a learnable stand-in for digits (no dataset needed)."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    cy, cx = (torch.randint(8, 20, (n, 1, 1), generator=g).float() for _ in range(2))
    img = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0) - 0.5
    return Dataset(images=img.unsqueeze(1), labels=torch.zeros(n, dtype=torch.long), name="mnist", source="blobs")


def write_conditional_checkpoint(folder: Path, name: str = "cond", T: int = 20, guidance: float = 1.5,
                                 seed: int = 1) -> Path:
    """A tiny class-conditional U-Net noise checkpoint (base 8) with a stored guidance scale."""
    torch.manual_seed(seed)
    model_config = {"arch": "unet", "params": {"base_channels": 8, "time_embed_dim": 16, "num_classes": 10}}
    config = {"model": model_config, "diffusion": {"type": "noise", "schedule": {
        "kind": "linear", "beta1": 1e-4, "beta2": 0.02, "T": T}}, "dataset": "mnist", "epochs": 1,
        "guidance": guidance}
    return save_checkpoint(Path(folder) / name, build_model(model_config), config)


def stand_in_job() -> subprocess.Popen:
    """A live process whose command line names diffusion_core, as a training job's does (sleeps 60 s)."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "diffusion_core"])


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def fake_run(root: Path, run_id: str, pid: int, state: str | None, epoch: int = 0, epochs: int = 3,
             losses: tuple[float, ...] = (), message: str = "") -> Path:
    """A run directory as the trainer and jobs module leave it; state None means no status.json yet."""
    run_dir = Path(root) / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "job.json").write_text(json.dumps({"run_id": run_id, "pid": pid, "started": time.time(),
                                                  "options": {"epochs": epochs}, "stop_requested": False}))
    (run_dir / "config.json").write_text(json.dumps({
        "epochs": epochs, "dataset": "mnist", "model": TINY_CNN,
        "diffusion": {"type": "noise", "preset": "default",
                      "schedule": {"kind": "linear", "beta1": 1e-4, "beta2": 0.02, "T": 1000}}}))
    if state is not None:
        (run_dir / "status.json").write_text(json.dumps({"state": state, "pid": pid, "epoch": epoch,
                                                         "epochs": epochs, "message": message}))
    rows = [{"epoch": i + 1, "loss": loss, "epoch_time_s": 2.0} for i, loss in enumerate(losses)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if epoch >= 1:  # the trainer's resume state, written at the end of every epoch (a stand-in: jobs only sees it)
        (run_dir / "train_state.pt").write_bytes(b"")
    return run_dir


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _array(value) -> np.ndarray:
    """A Plotly JSON array: a plain list or the typed-array form {"dtype": "f8", "bdata": base64}."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    return np.asarray(value, dtype=float)


def charts(at: AppTest) -> list[dict]:
    """Every Plotly chart on the page as its figure JSON, with trace x/y decoded to numpy arrays."""
    figures = []
    for element in at.get("plotly_chart"):
        fig = json.loads(element.proto.spec)
        for trace in fig["data"]:
            for axis in ("x", "y"):
                if axis in trace:
                    trace[axis] = _array(trace[axis])
        figures.append(fig)
    return figures


def refuses_a_bad_number(at: AppTest, key: str, value: object, message: str, button: str, refusal: str) -> None:
    """Typing `value` into the number box `key` names the problem under the box at once; pressing `button` then
    adds "`refusal`: message" and does nothing else."""
    at.number_input(key=key).set_value(value).run()
    no_exceptions(at)
    assert errors(at) == [message]
    at.button(key=button).click().run()
    no_exceptions(at)
    assert errors(at) == [message, f"{refusal}: {message}"]
