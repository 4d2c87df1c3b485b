"""Hostile checkpoints through the Reverse-diffusion page's upload widgets (and a hostile train_state.pt
in a run directory): each is refused with a clear message and no code runs — a payload that would create
a marker file is proven live first, then shown never to create it."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
from pathlib import Path

import pytest
import streamlit as st
import torch
from safetensors.torch import save as safetensors_bytes

import diffusion_core.io.checkpoints as checkpoints
import diffusion_core.training.trainer as training
from diffusion_core.io.data import Dataset
from diffusion_core.models import build_model
from tests.app_support import TINY_CNN, app, errors, no_exceptions, write_checkpoint

PAGE = "pages/3_Reverse_diffusion.py"


class Payload:
    """Unpickling this creates the file `path` (a stand-in for any code an attacker wants to run)."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def torch_save_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.fixture(autouse=True)
def _fresh(tmp_path, monkeypatch):
    st.cache_resource.clear()
    (tmp_path / "shipped").mkdir()
    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(tmp_path / "shipped"))


@pytest.fixture
def good(tmp_path) -> tuple[bytes, dict]:
    """A valid tiny checkpoint: (weights bytes, config dict)."""
    path = write_checkpoint(tmp_path, "good", T=20)
    return path.read_bytes(), json.loads(path.with_suffix(".json").read_text())


def signed(config: dict, weights: bytes, **changes) -> bytes:
    """The config JSON with the weights' SHA-256, as an attacker who controls both files writes it."""
    meta = {**config, "weights_sha256": hashlib.sha256(weights).hexdigest(), **changes}
    return json.dumps(meta).encode()


def upload(weights: bytes, config: bytes):
    at = app(PAGE).run()
    at.selectbox(key="rd_choice").set_value("upload").run()
    at.file_uploader(key="rd_weights").upload("model.safetensors", weights)
    at.file_uploader(key="rd_config").upload("model.json", config)
    return at.run()


def refused(at) -> str:
    """The page's one error message for a refused upload; nothing to run, no traceback."""
    no_exceptions(at)
    assert len(errors(at)) == 1, errors(at)
    assert not [b for b in at.button if b.key == "rd_run"]
    message = errors(at)[0]
    assert message.startswith("This upload cannot be used: ")
    return message


def test_the_payloads_are_live(tmp_path):
    """The test's payloads really run code when unpickled the unsafe way (so their refusal proves something)."""
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(Payload(proof), protocol=2))
    assert proof.exists()
    proof.unlink()
    torch.load(io.BytesIO(torch_save_bytes({"w": Payload(proof)})), weights_only=False)
    assert proof.exists()


@pytest.mark.parametrize("make, words", [
    (lambda m: pickle.dumps(Payload(m), protocol=2), ["pickle / torch.save file", "can run code"]),
    (lambda m: pickle.dumps(Payload(m), protocol=5), ["pickle / torch.save file", "can run code"]),
    (lambda m: torch_save_bytes({"final.bias": Payload(m)}), ["pickle / torch.save file", "can run code"]),
    (lambda m: pickle.dumps(Payload(m), protocol=0), ["not a valid safetensors file"]),  # no \x80 header
])
def test_pickle_payloads_are_refused_and_never_run(tmp_path, good, make, words):
    marker = tmp_path / "pwned"
    blob = make(marker)
    at = upload(blob, signed(good[1], blob))
    message = refused(at)
    assert all(w in message for w in words), message
    assert not marker.exists()


def _wrong_shapes() -> bytes:
    other = build_model({"arch": "cnn", "params": {"hidden": [8, 4], "kernel_size": 3, "time_embed_dim": 8}})
    return safetensors_bytes({k: v.contiguous() for k, v in other.state_dict().items()})


@pytest.mark.parametrize("case, words", [
    ("truncated", ["not a valid safetensors file (truncated or corrupt?)"]),
    ("wrong shapes", ["has shape", "the weights belong to a different architecture"]),
    ("missing field", ["missing required field(s) ['diffusion']"]),
    ("extra field", ["unknown field(s) ['exec']"]),
    ("torn pair", ["SHA-256 differs"]),
    ("huge config", ["config is larger than 1 MiB"]),
])
def test_broken_checkpoints_are_refused_with_the_reason(good, case, words):
    weights, config = good
    if case == "truncated":
        weights = weights[: len(weights) // 2]
    elif case == "wrong shapes":
        weights = _wrong_shapes()
    body = signed(config, weights)
    if case == "missing field":
        body = json.dumps({k: v for k, v in json.loads(body).items() if k != "diffusion"}).encode()
    elif case == "extra field":
        body = signed(config, weights, exec="__import__('os').system('touch pwned')")
    elif case == "torn pair":
        body = json.dumps(config).encode()
        weights = weights[:-1] + bytes([weights[-1] ^ 1])
    elif case == "huge config":
        body = signed(config, weights, notes="x" * (1024 * 1024))
    message = refused(upload(weights, body))
    assert all(w in message for w in words), message


def test_an_oversized_weights_file_is_refused(monkeypatch, good):
    weights, config = good
    monkeypatch.setattr(checkpoints, "MAX_CHECKPOINT_BYTES", len(weights) - 1)  # (200 MiB for real)
    message = refused(upload(weights, signed(config, weights)))
    assert "the limit is" in message


@pytest.mark.skipif(Path("/proc/sys/vm/overcommit_memory").is_file()
                    and Path("/proc/sys/vm/overcommit_memory").read_text().strip() == "1",
                    reason="with overcommit_memory=1 the unprotected path would really try to fill memory")
def test_a_config_describing_an_absurdly_large_model_is_refused(good):
    weights, config = good
    huge = {"arch": "cnn", "params": {"hidden": [100_000, 100_000], "kernel_size": 7}}  # ~2 TB of weights
    message = refused(upload(weights, signed(config, weights, model=huge)))
    assert "too large" in message or "parameters" in message


def test_a_hostile_train_state_in_a_run_directory_never_runs(tmp_path, monkeypatch):
    """Resume reads train_state.pt with torch.load(weights_only=True): a planted payload is refused."""
    imgs = torch.zeros(16, 1, 28, 28) - 0.5
    monkeypatch.setattr(training, "load_dataset", lambda *a, **k: Dataset(
        images=imgs, labels=torch.zeros(16, dtype=torch.long), name="mnist", source="zeros"))
    cfg = training.TrainConfig(model=TINY_CNN, epochs=1, batch_size=16, sample_epochs=[], preview_n=4,
                               diffusion={"type": "noise", "schedule": {"kind": "linear", "beta1": 1e-4,
                                                                        "beta2": 0.02, "T": 10}})
    run = tmp_path / "run"
    training.train(cfg, run)
    marker = tmp_path / "pwned"
    (run / "train_state.pt").write_bytes(torch_save_bytes({"model": Payload(marker), "epoch": 1}))
    with pytest.raises(training.TrainingError, match="not a valid training state and was not loaded"):
        training.train(cfg, run, resume=True)
    assert not marker.exists()
