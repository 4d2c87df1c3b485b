"""#30 items 4–5: a class's Generate batches on a Ray Serve cluster (services/ray_serve.py) — a Ray head started
here on 127.0.0.1; the same images as this machine computes; two app servers' batches merged by `@serve.batch`; a
replica killed under a batch retried on a new one; the cluster gone, the server computing itself and saying so.

Ray is optional (requirements-ray.txt): without it these tests skip; .ci/run installs it and runs them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("ray", reason="the Ray path needs requirements-ray.txt (CI installs it)")

from diffusion_core.io.checkpoints import load_checkpoint  # noqa: E402
from diffusion_core.process import SamplerChoice  # noqa: E402
from diffusion_core.services import batching, compute_process, ray_serve  # noqa: E402
from diffusion_core.services.work_queue import WorkQueue  # noqa: E402
from tests.app_support import write_checkpoint  # noqa: E402

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parent.parent
RAY = str(Path(sys.executable).parent / "ray")
CHOICE = SamplerChoice("ddim", 10)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A Ray head on this machine (2 CPUs), the project importable on it; stopped at the end."""
    port = free_port()
    env = os.environ | {"PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    temp = tmp_path_factory.mktemp("ray")
    subprocess.run([RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
                    "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
                   env=env, check=True, capture_output=True, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.fixture
def on_cluster(cluster, monkeypatch):
    monkeypatch.setenv("DIFFUSION_LAB_RAY", cluster)
    monkeypatch.setattr(ray_serve, "_unavailable", None)
    return cluster


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_checkpoint(write_checkpoint(tmp_path_factory.mktemp("ckpt"), T=50))


def here(ckpt, requests):
    """What this machine computes for the requests, in one merged run in this thread."""
    os.environ["DIFFUSION_LAB_COMPUTE"] = "thread"
    try:
        return batching.sample_merged(ckpt, CHOICE, requests)
    finally:
        os.environ.pop("DIFFUSION_LAB_COMPUTE")


def test_a_classes_batches_come_from_the_cluster_with_the_images_this_machine_gives(on_cluster, tiny):
    queue = WorkQueue(workers=1, batch_wait=0.3)
    try:
        tickets = [batching.submit_samples(queue, tiny, dataclasses.replace(CHOICE, seed=s), n)
                   for s, n in ((0, 3), (100, 5))]
        images = [t.result(300) for t in tickets]
    finally:
        queue.shutdown()
    assert {t.batched_with for t in tickets} == {(2, 8)}  # merged here first
    assert all(t.note.startswith(f"on the Ray cluster at {on_cluster}") for t in tickets)
    for got, want in zip(images, here(tiny, [batching.SampleRequest(0, 3), batching.SampleRequest(100, 5)]),
                         strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


APP_SERVER = """
import dataclasses, json, sys, time
import numpy as np
from diffusion_core.io.checkpoints import load_checkpoint
from diffusion_core.process import SamplerChoice
from diffusion_core.services import batching
from diffusion_core.services.work_queue import WorkQueue
ckpt, seed, start = load_checkpoint(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
queue = WorkQueue(workers=1, batch_wait=0)
batching.submit_samples(queue, ckpt, SamplerChoice("ddim", 10, seed=99), 1).result(300)  # child connected
time.sleep(max(0.0, start - time.time()))
ticket = batching.submit_samples(queue, ckpt, SamplerChoice("ddim", 10, seed=seed), 4)
np.save(sys.argv[4], ticket.result(300).numpy())
print(json.dumps({"note": ticket.note}))
queue.shutdown()
"""


def test_two_app_servers_batches_merge_on_the_cluster(on_cluster, tiny, tmp_path):
    """Two server processes (each its own queue and sampling child) ask at the same instant: one Serve batch
    answers both, each with its own seeds' images."""
    env = os.environ | {"PYTHONPATH": str(ROOT), "DIFFUSION_LAB_RAY": on_cluster}
    start = time.time() + 25  # both processes up, their sampling children connected to the cluster, by then
    procs = [subprocess.Popen([sys.executable, "-c", APP_SERVER, str(tiny.path), str(seed), str(start),
                               str(tmp_path / f"{seed}.npy")], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for seed in (0, 500)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-2000:] for _, e in outs]
    notes = [json.loads(o.strip().splitlines()[-1])["note"] for o, _ in outs]
    assert notes == [f"on the Ray cluster at {on_cluster}, merged there with 1 other app-server batch (8 images)"] * 2
    import numpy as np

    # the one Serve batch, computed here (bf16 arithmetic differs with the batch's size: the same batch compares)
    want = here(tiny, [batching.SampleRequest(0, 4), batching.SampleRequest(500, 4)])
    for seed, images in zip((0, 500), want, strict=True):
        np.testing.assert_allclose(np.load(tmp_path / f"{seed}.npy"), images.numpy(), atol=1e-5)


def test_a_replica_killed_under_a_batch_is_replaced_and_the_batch_retried(on_cluster, tiny):
    from ray import serve

    ray_serve.sample_on_cluster(on_cluster, str(tiny.path), tiny.config["weights_sha256"], CHOICE, [0])  # deployed
    handle = serve.get_app_handle(f"sampler-{tiny.config['weights_sha256'][:16]}")
    victim = handle.pid.remote().result(timeout_s=60)
    big = dataclasses.replace(CHOICE, sampler="ancestral", steps=None)  # all 50 steps on 256 images: seconds
    result: dict = {}

    def ask():
        t0 = time.monotonic()
        result["images"], result["note"] = ray_serve.sample_on_cluster(
            on_cluster, str(tiny.path), tiny.config["weights_sha256"], big, list(range(256)))
        result["seconds"] = time.monotonic() - t0

    asker = threading.Thread(target=ask)
    asker.start()
    time.sleep(1.0)  # the batch is computing on the replica
    os.kill(victim, signal.SIGKILL)
    asker.join(240)
    assert not asker.is_alive() and result["seconds"] < 240
    assert handle.pid.remote().result(timeout_s=60) != victim  # Serve started another
    os.environ["DIFFUSION_LAB_COMPUTE"] = "thread"
    try:
        want = batching.sample_merged(tiny, big, [batching.SampleRequest(0, 256)])[0]
    finally:
        os.environ.pop("DIFFUSION_LAB_COMPUTE")
    torch.testing.assert_close(torch.from_numpy(result["images"]), want, rtol=0, atol=1e-5)  # nobody else's


def test_home_says_its_grid_came_from_the_cluster(on_cluster, tmp_path, monkeypatch):
    from tests.app_support import app, shipped_folder

    folder = shipped_folder(tmp_path, monkeypatch)
    write_checkpoint(folder, "tiny", T=50)
    at = app().run()
    at.button(key="home_generate").click().run()
    assert not at.exception and not at.error
    assert at.session_state["home_grid"]["served"].endswith(f"on the Ray cluster at {on_cluster}")


def test_with_the_cluster_gone_the_server_computes_itself_and_says_so(cluster, tiny, monkeypatch):
    """Last in this file: it stops the cluster."""
    monkeypatch.setenv("DIFFUSION_LAB_RAY", cluster)
    monkeypatch.setattr(ray_serve, "_unavailable", None)
    subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120)
    queue = WorkQueue(workers=1, batch_wait=0)
    try:
        t0 = time.monotonic()
        ticket = batching.submit_samples(queue, tiny, dataclasses.replace(CHOICE, seed=3), 4)
        images = ticket.result(120)
        seconds = time.monotonic() - t0
    finally:
        queue.shutdown()
    assert seconds < 60 and ticket.note is None
    assert f"nothing answers at the Ray cluster's address {cluster}" in ray_serve.unavailable()
    assert ray_serve.ray_target() is None  # for RETRY_AFTER_S the next batches compute here at once
    torch.testing.assert_close(images, here(tiny, [batching.SampleRequest(3, 4)])[0], rtol=0, atol=1e-5)
    assert compute_process.child_pids()  # the sampling children live on
    from tests.app_support import app

    at = app().run()
    at.button(key="home_generate").click().run()
    assert not at.exception and not at.error
    assert "on this server (its Ray cluster is not used now: nothing answers at the Ray cluster's address" in \
        at.session_state["home_grid"]["served"]
