"""Checkpoint round trips and refusal of corrupt, mismatched and hostile files."""

import hashlib
import json
import pickle

import pytest
import torch

from diffusion_core.io.checkpoints import (
    CheckpointError,
    list_checkpoints,
    load_checkpoint,
    load_weights,
    resolve_checkpoint,
    save_checkpoint,
)
from diffusion_core.models import build_model

from .conftest import TINY_CNN

NOISE = {"type": "noise", "schedule": {"kind": "linear", "beta1": 1e-4, "beta2": 0.02, "T": 20}}


@pytest.mark.parametrize("model_cfg", [TINY_CNN, {"arch": "unet", "params": {"base_channels": 8}},
                                       {"arch": "cnn", "params": {}}])
def test_round_trip_gives_identical_outputs(tmp_path, model_cfg):
    torch.manual_seed(0)
    model = build_model(model_cfg).eval()
    save_checkpoint(tmp_path / "m", model, {"model": model_cfg, "diffusion": NOISE, "epochs": 3})
    loaded = load_checkpoint(tmp_path / "m.json")
    z, t = torch.randn(4, 1, 28, 28), torch.rand(4)
    with torch.no_grad():
        assert torch.equal(model(z, t), loaded.model(z, t))
    assert loaded.config["epochs"] == 3 and loaded.config["model"]["arch"] == model_cfg["arch"]


def _rewrite(tmp_path, weights: bytes, config_patch=None, drop=()):
    """Write a weights file and a config that matches its hash (an attacker controls both)."""
    (tmp_path / "evil.safetensors").write_bytes(weights)
    meta = json.loads((tmp_path / "m.json").read_text())
    meta["weights_sha256"] = hashlib.sha256(weights).hexdigest()
    meta.update(config_patch or {})
    for k in drop:
        meta.pop(k)
    (tmp_path / "evil.json").write_text(json.dumps(meta))
    return tmp_path / "evil.safetensors"


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = build_model(TINY_CNN)
    save_checkpoint(tmp_path / "m", model, {"model": TINY_CNN, "diffusion": NOISE})
    return tmp_path


class Payload:
    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(MARKER),))


MARKER = ""


def test_pickle_payload_is_refused_and_never_runs(saved, tmp_path):
    global MARKER
    marker = tmp_path / "pwned"
    MARKER = str(marker)
    for blob in (pickle.dumps(Payload()), _torch_save_bytes({"w": Payload()})):
        path = _rewrite(saved, blob)
        with pytest.raises(CheckpointError, match="pickle"):
            load_checkpoint(path)
        assert not marker.exists()


def _torch_save_bytes(obj):
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_truncated_weights_are_refused(saved):
    data = (saved / "m.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_weights(data[: len(data) // 2])
    path = _rewrite(saved, data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        load_checkpoint(path)


def test_torn_pair_is_refused_by_hash(saved):
    data = bytearray((saved / "m.safetensors").read_bytes())
    data[-5] ^= 0xFF
    (saved / "m.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(saved / "m")


def test_a_writer_killed_between_its_two_renames_leaves_a_pair_that_loads_as_the_new_one(tmp_path, monkeypatch):
    """write_pair fsyncs both temporary files, then renames them one after the other: SIGKILL between the two
    renames leaves one new file in place and the other complete beside it. Readers take the pair whose hash
    matches (the new one); a half-written temporary file is never taken."""
    import diffusion_core.io.files as files

    config = {"model": TINY_CNN, "diffusion": NOISE, "epochs": 1}
    torch.manual_seed(1)
    save_checkpoint(tmp_path / "m", build_model(TINY_CNN), config)
    torch.manual_seed(2)
    new = build_model(TINY_CNN)
    real_replace = files.os.replace
    done = []

    def die_after_first(src, dst):  # the kill: the first rename (the weights) happens, the second never does
        if done:
            raise KeyboardInterrupt
        done.append(dst)
        return real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", die_after_first)
    monkeypatch.setattr(files.os, "unlink", lambda path: None)  # a kill runs no clean-up
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "m", new, {**config, "epochs": 2})
    monkeypatch.undo()
    assert [p.name for p in done] == ["m.safetensors"] and len(list(tmp_path.glob(".m.json.*.tmp"))) == 1
    loaded = load_checkpoint(tmp_path / "m")
    assert loaded.config["epochs"] == 2
    assert all(torch.equal(a, b) for a, b in zip(loaded.model.state_dict().values(), new.state_dict().values(),
                                                  strict=True))
    for tmp in tmp_path.glob(".m.*.tmp"):  # half-written instead: the torn pair is refused, never guessed
        tmp.write_bytes(tmp.read_bytes()[: tmp.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(tmp_path / "m")


def test_wrong_shapes_are_refused(saved):
    from safetensors.torch import save

    other = build_model({"arch": "cnn", "params": {"hidden": [8, 4], "kernel_size": 3, "time_embed_dim": 8}})
    path = _rewrite(saved, save({k: v.contiguous() for k, v in other.state_dict().items()}))
    with pytest.raises(CheckpointError, match="has shape"):
        load_checkpoint(path)


def test_missing_tensors_are_refused(saved):
    from safetensors.torch import save

    state = build_model(TINY_CNN).state_dict()
    state.pop("final.bias")
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(_rewrite(saved, save({k: v.contiguous() for k, v in state.items()})))


def test_nan_and_integer_tensors_are_refused(saved):
    from safetensors.torch import save

    state = {k: v.clone().contiguous() for k, v in build_model(TINY_CNN).state_dict().items()}
    state["final.bias"][0] = float("nan")
    with pytest.raises(CheckpointError, match="NaN"):
        load_checkpoint(_rewrite(saved, save(state)))
    state["final.bias"] = torch.zeros(1, dtype=torch.int64)
    with pytest.raises(CheckpointError, match="dtype"):
        load_checkpoint(_rewrite(saved, save(state)))


@pytest.mark.parametrize(
    "patch, drop, word",
    [({"extra_field": 1}, (), "unknown field"), ({}, ("model",), "missing required"),
     ({"format": "other"}, (), "not a Diffusion Lab"), ({"version": 99}, (), "version"),
     ({"model": {"arch": "resnet", "params": {}}}, (), "cannot be built"),
     ({"model": {"arch": "cnn", "params": {"evil": 1}}}, (), "cannot be built"),
     ({"diffusion": {"type": "magic"}}, (), "diffusion"),
     ({"diffusion": {"type": "noise"}}, (), "schedule")],
)
def test_bad_configs_are_refused_with_a_reason(saved, patch, drop, word):
    path = _rewrite(saved, (saved / "m.safetensors").read_bytes(), patch, drop)
    with pytest.raises(CheckpointError, match=word):
        load_checkpoint(path)


def test_invalid_json_and_missing_files(saved):
    (saved / "m.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(saved / "m")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(saved / "nothing")


def test_listing_and_resolving_shipped_checkpoints(saved, monkeypatch):
    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(saved))
    (saved / "junk.json").write_text("[]")  # not a checkpoint config: skipped
    assert [w.stem for w, _ in list_checkpoints()] == ["m"]
    assert resolve_checkpoint("m") == saved / "m.safetensors"
    with pytest.raises(CheckpointError, match="no shipped checkpoint of that name"):
        resolve_checkpoint("missing-model")


def test_the_listing_follows_each_config_file_and_hands_out_copies(saved, monkeypatch):
    """list_checkpoints remembers each checked config while its file is unchanged (every page lists them on
    every rerun); a rewritten or broken file is read again, and a caller's change to a listed config stays its
    own."""
    import json
    import os

    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(saved))
    listed = dict((w.stem, meta) for w, meta in list_checkpoints())
    listed["m"]["epochs"] = 77  # the caller's copy
    assert dict((w.stem, meta) for w, meta in list_checkpoints())["m"].get("epochs") != 77
    config = json.loads((saved / "m.json").read_text())
    config["epochs"] = 12
    (saved / "m.json").write_text(json.dumps(config))
    stat = (saved / "m.json").stat()
    os.utime(saved / "m.json", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a later save, whatever the clock
    assert dict((w.stem, meta) for w, meta in list_checkpoints())["m"]["epochs"] == 12
    (saved / "m.json").write_text("{not json")
    assert list_checkpoints() == []


def test_a_safetensors_header_whose_length_starts_with_0x80_is_not_taken_for_a_pickle():
    """safetensors begins with its header's length (8 bytes, little-endian): a header of 0x1980 bytes starts the
    file with b"\\x80", as a pickle does. Such a file (a trained U-Net hit it) loads."""
    from safetensors.torch import save as save_safetensors

    from diffusion_core.io.checkpoints import load_weights

    tensors = {"w": torch.arange(6.0).reshape(2, 3)}
    for pad in range(4000):
        data = save_safetensors(tensors, metadata={"pad": "x" * pad})
        if data[:1] == b"\x80":
            break
    assert data[:1] == b"\x80" and data[8:9] == b"{"
    assert torch.equal(load_weights(data)["w"], tensors["w"])
