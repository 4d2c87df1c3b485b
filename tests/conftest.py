"""Shared fixtures: tiny models and checkpoints, isolated data/run/checkpoint folders."""

from __future__ import annotations

import os

import pytest
import torch

from diffusion_core.io.checkpoints import save_checkpoint
from diffusion_core.models import build_model

TINY_CNN = {"arch": "cnn", "params": {"hidden": [4, 4], "kernel_size": 3, "time_embed_dim": 8}}

# Where PYTHONDONTWRITEBYTECODE=1 is set (this workplace sets it) and packages were installed with pip --no-compile (the
# README's command), every Python process the suite starts — its workers, app servers, CLI and training jobs —
# would compile torch and Streamlit from source, ≈ 6 s of CPU each (measured: `import torch, streamlit, …` 11 s
# without caches, 5 s with). The processes started from here write the bytecode caches (into .venv and the
# project's __pycache__ folders, both ignored by git) once, and the rest read them.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

# The app samples a class's merged batches in child processes (services/compute_process.py), a few hundred MB
# each; every app server and pytest process of the suite would start its own (a fresh clone's suite took 756 s
# with them, 529 s without). They are tested where they are the subject — test_compute_process, test_batching,
# test_ray_serve and test_browser.py's two-browser server set "process" — and the rest sample in-thread.
os.environ.setdefault("DIFFUSION_LAB_COMPUTE", "thread")


if os.environ.get("PYTEST_XDIST_WORKER"):
    # one pytest-xdist worker per core: each worker, and every process it starts (CLI jobs, app servers), computes
    # on one thread, so two workers share 2 cores instead of fighting with 2 OpenMP threads each
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per CPU this process may run on (logical CPUs: a 2-vCPU machine gets 2)."""
    return max(1, len(os.sched_getaffinity(0)))


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """Keep every test away from the user's data, runs and shipped checkpoints."""
    monkeypatch.setenv("DIFFUSION_LAB_RUNS", str(tmp_path_factory.mktemp("runs")))
    monkeypatch.setenv("DIFFUSION_LAB_DATA", str(tmp_path_factory.mktemp("data")))
    # the committed flow-vs-diffusion results are the shipped models'; a test that wants the chart writes its own
    monkeypatch.setenv("DIFFUSION_LAB_FLOW_BENCHMARK", str(tmp_path_factory.mktemp("bench") / "flow.json"))
    torch.manual_seed(0)


@pytest.fixture
def tiny_noise_checkpoint(tmp_path):
    """A saved tiny CNN noise model (T = 20)."""
    torch.manual_seed(1)
    model = build_model(TINY_CNN)
    config = {"model": TINY_CNN, "diffusion": {"type": "noise", "schedule": {
        "kind": "linear", "beta1": 1e-4, "beta2": 0.02, "T": 20}}, "dataset": "mnist", "epochs": 1}
    return save_checkpoint(tmp_path / "tiny", model, config)


# Modules whose results depend on what `precision auto` resolves to on this CPU (training, sampling
# checkpoints, the CLI, Home's Generate). .ci/run runs them a second time with DIFFUSION_LAB_NATIVE_BF16
# set to the other answer, so a machine without native bf16 also sees what one with it would show.
PRECISION_SENSITIVE = {
    "test_precision", "test_training", "test_distributed", "test_samplers_schedules", "test_guidance", "test_cli",
    "test_cli_evaluate", "test_ship", "test_reliability_divergence", "test_app_home",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rpartition(".")[2] in PRECISION_SENSITIVE:
            item.add_marker(pytest.mark.precision)



# DIFFUSION_LAB_TEST_COSTS=FILE appends one JSON line per test phase: wall seconds and the CPU seconds of this
# process and of the child processes it reaped (CLI jobs, app servers, Chromium) — what the suite spends, by test.
_COSTS = os.environ.get("DIFFUSION_LAB_TEST_COSTS")
if _COSTS:
    import json
    import resource
    import time

    def _cpu() -> float:
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        start, wall, cpu = time.time(), time.monotonic(), _cpu()
        yield
        with open(_COSTS, "a") as f:
            f.write(json.dumps({"test": item.nodeid, "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
                                "start": round(start, 3), "wall": round(time.monotonic() - wall, 3),
                                "cpu": round(_cpu() - cpu, 3)}) + "\n")


@pytest.fixture(scope="module", autouse=True)
def _one_chromium_per_module():
    """Browser tests share one Chromium per module (a fresh context per test); it closes with the module."""
    yield
    from tests.browser_harness import close_chromium

    close_chromium()
