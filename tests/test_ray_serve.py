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
    """A Ray head on this machine (8 logical CPUs: room for this file's replicas on the 2 real ones), the project
    importable on it; stopped at the end."""
    port = free_port()
    env = os.environ | {"PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    temp = tmp_path_factory.mktemp("ray")
    subprocess.run([RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=8",
                    "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
                   env=env, check=True, capture_output=True, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)


@pytest.fixture(autouse=True)
def in_sampling_children(monkeypatch):
    monkeypatch.setenv("DIFFUSION_LAB_COMPUTE", "process")  # the Ray driver is the sampling child (conftest: thread)


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
    before = os.environ.get("DIFFUSION_LAB_COMPUTE")
    os.environ["DIFFUSION_LAB_COMPUTE"] = "thread"
    try:
        return batching.sample_merged(ckpt, CHOICE, requests)
    finally:
        os.environ["DIFFUSION_LAB_COMPUTE"] = before or "process"


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
    env = os.environ | {"PYTHONPATH": str(ROOT), "DIFFUSION_LAB_RAY": on_cluster, "DIFFUSION_LAB_COMPUTE": "process"}
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

    target = ray_serve.ray_target()
    ray_serve.sample_on_cluster(target, str(tiny.path), tiny.config["weights_sha256"], CHOICE, [0])  # deployed
    handle = serve.get_app_handle(f"sampler-{tiny.config['weights_sha256'][:16]}")
    victim = handle.pid.remote().result(timeout_s=60)
    big = dataclasses.replace(CHOICE, sampler="ancestral", steps=None)  # all 50 steps on 256 images: seconds
    result: dict = {}

    def ask():
        t0 = time.monotonic()
        result["images"], result["note"] = ray_serve.sample_on_cluster(
            target, str(tiny.path), tiny.config["weights_sha256"], big, list(range(256)))
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
        os.environ["DIFFUSION_LAB_COMPUTE"] = "process"
    torch.testing.assert_close(torch.from_numpy(result["images"]), want, rtol=0, atol=1e-5)  # nobody else's


def test_a_class_over_two_app_servers_on_the_cluster_survives_a_replica_killed_mid_class(on_cluster, monkeypatch):
    """The load test (benchmarks/load_test.py) with its class spread over two real `streamlit run` servers that
    share the cluster (two replicas); one replica is killed a moment after the class presses Generate: every
    student still gets their grid and trajectory, none sees an error."""
    import ray
    from ray import serve

    from benchmarks import load_test
    from diffusion_core.io.checkpoints import load_checkpoint as load
    from diffusion_core.services.catalog import default_checkpoint

    ray.init(address=on_cluster, namespace=ray_serve.NAMESPACE, ignore_reinit_error=True, log_to_driver=False)
    sha = load(default_checkpoint()).config["weights_sha256"]
    killed: list[int] = []
    real = load_test.class_at_once

    async def class_with_a_kill(urls, students, steps, same_seed=False):
        def kill():
            time.sleep(0.5)  # the class's batches are on their way to the replicas
            victim = serve.get_app_handle(f"sampler-{sha[:16]}").pid.remote().result(timeout_s=60)
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

        killer = threading.Thread(target=kill)
        killer.start()
        try:
            return await real(urls, students, steps, same_seed)
        finally:
            killer.join(60)

    monkeypatch.setattr(load_test, "class_at_once", class_with_a_kill)
    result = load_test.measure({"DIFFUSION_LAB_RAY": on_cluster, "DIFFUSION_LAB_RAY_REPLICAS": "2",
                                "DIFFUSION_LAB_COMPUTE": "process"}, students=4,
                               steps=1, same_seed=False, servers=2)
    assert killed and result["errors"] == []
    counts = {r["action"]: r["n"] for r in result["rows"]}
    assert counts["Generate"] == 4 and counts["Run reverse diffusion"] == 4


def test_home_says_its_grid_came_from_the_cluster(on_cluster, tmp_path, monkeypatch):
    from tests.app_support import app, shipped_folder

    folder = shipped_folder(tmp_path, monkeypatch)
    write_checkpoint(folder, "tiny", T=50)
    at = app().run()
    at.button(key="home_generate").click().run()
    assert not at.exception and not at.error
    assert at.session_state["home_grid"]["served"].endswith(f"on the Ray cluster at {on_cluster}")


def test_a_model_whose_replicas_find_no_room_is_sampled_here_and_the_page_told_why(on_cluster, tmp_path,
                                                                                    monkeypatch):
    """Replicas asking a GPU of a cluster with none never start: after DIFFUSION_LAB_RAY_DEPLOY_TIMEOUT_S the
    server samples the batch itself and says why (before: serve.run waited for them forever)."""
    monkeypatch.setenv("DIFFUSION_LAB_RAY_GPUS", "1")
    monkeypatch.setenv("DIFFUSION_LAB_RAY_DEPLOY_TIMEOUT_S", "5")
    other = load_checkpoint(write_checkpoint(tmp_path, seed=3, T=50))  # its own application
    queue = WorkQueue(workers=1, batch_wait=0)
    try:
        t0 = time.monotonic()
        ticket = batching.submit_samples(queue, other, dataclasses.replace(CHOICE, seed=1), 2)
        images = ticket.result(120)
    finally:
        queue.shutdown()
    assert time.monotonic() - t0 < 60 and ticket.note is None
    assert "has not started this model's replicas within 5 s (each asks 1 CPU, 1 GPU" in ray_serve.unavailable()
    torch.testing.assert_close(images, here(other, [batching.SampleRequest(1, 2)])[0], rtol=0, atol=1e-5)


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
