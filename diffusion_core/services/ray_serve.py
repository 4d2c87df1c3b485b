"""Beyond one machine (#30): with a Ray cluster configured, a class's merged Generate batches are sampled by a Ray
Serve deployment of their model (services/ray_deployment.py: one application per model, `@serve.batch` merging
the batches of every app server of the class) instead of on this machine.

    DIFFUSION_LAB_RAY=127.0.0.1:6379  (or RAY_ADDRESS)   the cluster; unset: everything computes here (default)
    DIFFUSION_LAB_RAY_REPLICAS=2                         replicas per model (default 1)
    DIFFUSION_LAB_RAY_CPUS=1 / DIFFUSION_LAB_RAY_GPUS=0  what each replica asks of a node (a GPU node: GPUS=1)
    DIFFUSION_LAB_RAY_TIMEOUT_S=120                      a batch the cluster has not answered by then computes here
    DIFFUSION_LAB_RAY_DEPLOY_TIMEOUT_S=120               a model whose replicas find no room by then computes here

The app server reads these (ray_target) and sends them with each batch to its sampling child.

The Ray driver is the sampling child process (services/compute_process.py), never the app server: Ray ends a
driver whose cluster dies, and that must not take a class's server with it. The server's queue still merges its
own students first; the child sends the merged batch to the cluster and hands back its images. Faults: a
replica that dies under a batch is retried once (Serve starts another); a cluster that cannot be reached, or
stops answering, makes the server compute for RETRY_AFTER_S and say so (`unavailable`), then try again.

Ray is optional (requirements-ray.txt): it is imported only in a child, only when a cluster is configured
(DIFFUSION_LAB_COMPUTE=thread, no children, leaves the cluster unused).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass

import numpy as np

from diffusion_core.io.files import env_int
from diffusion_core.process import SamplerChoice

ADDRESS_ENVS = ("DIFFUSION_LAB_RAY", "RAY_ADDRESS")
REPLICAS_ENV, CPUS_ENV, GPUS_ENV = "DIFFUSION_LAB_RAY_REPLICAS", "DIFFUSION_LAB_RAY_CPUS", "DIFFUSION_LAB_RAY_GPUS"
TIMEOUT_ENV = "DIFFUSION_LAB_RAY_TIMEOUT_S"
DEPLOY_TIMEOUT_ENV = "DIFFUSION_LAB_RAY_DEPLOY_TIMEOUT_S"  # a model whose replicas find no room by then: here
NAMESPACE = "diffusion-lab"
RETRY_AFTER_S = 30.0  # after the cluster failed, this server computes itself this long before trying it again
PROBE_TIMEOUT_S = 2.0
REPLICA_DIED = ("ActorDiedError", "RayActorError", "ActorUnavailableError", "DeploymentUnavailableError")


class RayUnavailable(RuntimeError):
    """The configured Ray cluster cannot be used now (unreachable, not answering, or Ray not installed)."""


def ray_address() -> str | None:
    """The configured cluster's address (DIFFUSION_LAB_RAY, else RAY_ADDRESS), or None."""
    for name in ADDRESS_ENVS:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


_state_lock = threading.Lock()
_unavailable: tuple[float, str] | None = None  # (when, why) the cluster last failed, in the app server


@dataclass(frozen=True)
class RayTarget:
    """Where and how the app server wants its batches sampled (read from its environment, sent to its child)."""

    address: str
    replicas: int
    cpus: float
    gpus: float
    timeout_s: int
    deploy_timeout_s: int


def ray_target() -> RayTarget | None:
    """The cluster to send merged batches to now: the configured one, unless it failed within RETRY_AFTER_S."""
    address = ray_address()
    with _state_lock:
        if address is None or (_unavailable is not None and time.monotonic() - _unavailable[0] < RETRY_AFTER_S):
            return None
    return RayTarget(address, env_int(REPLICAS_ENV, 1), float(os.environ.get(CPUS_ENV, "1")),
                     float(os.environ.get(GPUS_ENV, "0")), env_int(TIMEOUT_ENV, 120), env_int(DEPLOY_TIMEOUT_ENV, 120))


def mark_unavailable(why: str) -> None:
    """The cluster failed a batch: compute here for RETRY_AFTER_S (unavailable() says why)."""
    global _unavailable
    with _state_lock:
        _unavailable = (time.monotonic(), why)


def unavailable() -> str | None:
    """Why the configured cluster is not used now, or None (it is used, or none is configured)."""
    with _state_lock:
        if ray_address() is None or _unavailable is None or time.monotonic() - _unavailable[0] >= RETRY_AFTER_S:
            return None
        return _unavailable[1]


# -- in the sampling child ------------------------------------------------------------------------------------

_connected: str | None = None
_deployed: set[str] = set()


def sample_on_cluster(target: RayTarget, path: str, sha: str, choice: SamplerChoice, seeds: list[int],
                      precision: str = "auto") -> tuple[np.ndarray, str]:
    """The images of seeds under choice from the model's Serve application (deployed if no server has), and how
    they were computed. RayUnavailable when the cluster cannot be used; a replica's death is retried once."""
    handle, address, timeout = _handle(target, path, sha, precision), target.address, target.timeout_s
    for attempt in (1, 2):
        try:
            images, (requests, size) = handle.sample.remote((choice, seeds)).result(timeout_s=timeout)
            break
        except TimeoutError as exc:
            raise RayUnavailable(f"the Ray cluster at {address} did not answer within {timeout:.0f} s") from exc
        except Exception as exc:
            if type(exc).__name__ not in REPLICA_DIED:
                cause = getattr(exc, "cause", None)  # a bad setting's ValueError, raised in the replica
                if isinstance(cause, ValueError):
                    raise cause from None
                raise
            if attempt == 2:
                raise RuntimeError("the sampling replica on the Ray cluster stopped twice under this request; "
                                   "press the button again") from exc
    others = requests - 1
    return images, (f"on the Ray cluster at {address}" + (
        f", merged there with {others} other app-server batch{'es' if others != 1 else ''} ({size} images)"
        if others else ""))


def _handle(target: RayTarget, path: str, sha: str, precision: str):
    global _connected
    address = target.address
    _probe(address)
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise RayUnavailable("Ray is not installed here (pip install -r requirements-ray.txt)") from exc
    if _connected != address:
        try:
            ray.init(address=address, namespace=NAMESPACE, ignore_reinit_error=True, log_to_driver=False,
                     logging_level="ERROR")
        except Exception as exc:  # noqa: BLE001 — ConnectionError and Ray's own kinds
            raise RayUnavailable(f"cannot reach the Ray cluster at {address}: {exc}") from exc
        _connected = address
    name = f"sampler-{sha[:16]}"  # by the weights' hash: every app server finds the same application
    if name not in _deployed:
        from diffusion_core.services.ray_deployment import ModelSampler

        status = serve.status().applications.get(name)
        if status is None or str(status.status).rsplit(".", 1)[-1] in ("DEPLOY_FAILED", "DELETING", "UNHEALTHY"):
            actor = {"num_cpus": target.cpus, "num_gpus": target.gpus}
            app = ModelSampler.options(num_replicas=target.replicas, ray_actor_options=actor).bind(
                path, sha, precision, max(1, int(target.cpus)))
            deploy = threading.Thread(target=serve.run, args=(app,), kwargs={"name": name, "route_prefix": None},
                                      daemon=True)  # serve.run returns once the replicas are up: maybe never
            deploy.start()
            deploy.join(target.deploy_timeout_s)
            if deploy.is_alive():
                raise RayUnavailable(f"the Ray cluster at {address} has not started this model's replicas within "
                                     f"{target.deploy_timeout_s} s (each asks {actor['num_cpus']:g} CPU, "
                                     f"{actor['num_gpus']:g} GPU: does a node have them free?)")
        _deployed.add(name)
    return serve.get_app_handle(name)


def _probe(address: str) -> None:
    """Fail at once, not after Ray's own minute of retries, when nothing listens at a host:port address."""
    host, _, port = address.rpartition(":")
    if "://" in address or not port.isdigit():
        return  # "auto", ray://…: Ray resolves those
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise RayUnavailable(f"nothing answers at the Ray cluster's address {address} ({exc.strerror or exc})") \
            from exc
