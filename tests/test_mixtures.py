"""Mixture starts on disk (io/mixtures.py): what `ship` stores beside a cold checkpoint is read back as the same
start, the app reads it instead of fitting (no training images needed), and a bad file is refused by name."""

import json
import pickle

import pytest
import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import save as save_bytes

from diffusion_core.io import mixtures
from diffusion_core.io.checkpoints import load_checkpoint, resolve_checkpoint
from diffusion_core.io.files import PROJECT_ROOT
from diffusion_core.io.mixtures import dataset_mixture
from diffusion_core.process.cold import SHIPPED_FIT, fit_mixture_start
from diffusion_core.process.degradations import make_degradation


def small_mixture(t: int = 6):
    degradation = make_degradation("blur", 10)
    images = torch.rand((40, 1, 28, 28), generator=torch.Generator().manual_seed(0)) - 0.5
    return degradation, fit_mixture_start(degradation, images, n_components=3, pca_dim=5, t=t)


def test_a_saved_mixture_reads_back_as_the_same_start(tmp_path):
    _, mixture = small_mixture()
    path = mixtures.save_mixture(tmp_path / "m.safetensors", mixture, "40 random images")
    loaded = mixtures.load_mixture(path)
    assert (loaded.t, loaded.noise_std, loaded.image_shape, loaded.n_components) == (6, 0.01, (1, 28, 28), 3)
    a = mixture.sample(8, torch.Generator().manual_seed(4))
    b = loaded.sample(8, torch.Generator().manual_seed(4))
    assert torch.allclose(a, b, atol=1e-5)  # float32 on disk: the same draws to float32 precision


def test_a_bad_mixture_file_is_refused_by_name(tmp_path):
    _, mixture = small_mixture()
    bad = tmp_path / "pickle.safetensors"
    bad.write_bytes(pickle.dumps({"means": [1, 2]}))
    with pytest.raises(ValueError, match="pickle.safetensors is not a mixture start file .*delete it"):
        mixtures.load_mixture(bad)
    wrong = tmp_path / "wrong.safetensors"
    mixtures.save_mixture(wrong, mixture, "x")
    raw = bytearray(wrong.read_bytes())
    header_len = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + header_len])
    header.pop("chol")  # a file without the Cholesky factors
    tensors = {k: v for k, v in load_bytes(bytes(raw)).items() if k != "chol"}
    wrong.write_bytes(save_bytes(tensors, metadata=header["__metadata__"]))
    with pytest.raises(ValueError, match="wrong.safetensors is not a mixture start file"):
        mixtures.load_mixture(wrong)


def test_the_app_reads_a_shipped_mixture_instead_of_fitting(tmp_path, monkeypatch):
    degradation_t = make_degradation("blur", 10).generation_t
    degradation, mixture = small_mixture(t=degradation_t)
    monkeypatch.setattr(mixtures, "MIXTURE_DIR", tmp_path)
    monkeypatch.setattr(mixtures, "_MIXTURES", {})
    path = mixtures.shipped_mixture_path("mnist", degradation.config(), degradation_t)
    mixtures.save_mixture(path, mixture, "test")

    def no_data(*args, **kwargs):
        raise AssertionError("a shipped mixture needs no training images")
    monkeypatch.setattr(mixtures, "load_dataset", no_data)
    got = dataset_mixture(degradation, "mnist")
    assert got.t == degradation_t and torch.allclose(got.means, mixture.means.float().double())
    # another degradation (or data root) has no shipped fit: it is fitted from the data
    with pytest.raises(AssertionError, match="needs no training images"):
        dataset_mixture(make_degradation("blur", 12), "mnist")


def test_every_shipped_cold_checkpoint_carries_its_mixture_starts():
    for config_path in sorted((PROJECT_ROOT / "checkpoints").glob("*.json")):
        config = json.loads(config_path.read_text())
        if config.get("diffusion", {}).get("type") != "cold":
            continue
        degradation = load_checkpoint(resolve_checkpoint(config["name"])).process.degradation
        for t in {degradation.generation_t, degradation.T}:
            path = mixtures.shipped_mixture_path(config.get("dataset", "mnist"), degradation.config(), t)
            if config["name"] == "mask-unet":  # fully masked at T = its generation_t: a point mass, no file
                assert not path.exists() and dataset_mixture(degradation, "mnist", t=t).is_point
                continue
            start = mixtures.load_mixture(path)
            assert start.t == t and start.n_components == SHIPPED_FIT.components, config["name"]


def test_a_fully_degraded_start_is_a_point_mass_drawn_without_a_fit():
    degradation = make_degradation("mask", 10)  # at T every pixel is masked: D(x, T) is one image
    images = torch.rand((40, 1, 28, 28), generator=torch.Generator().manual_seed(0)) - 0.5
    start = fit_mixture_start(degradation, images, t=10)
    assert start.is_point and not small_mixture()[1].is_point
    draws = start.sample(5, torch.Generator().manual_seed(0))
    black = degradation(images[:1], 10)
    assert (draws - black).abs().max() < 0.06 and draws.std() > 0  # that image plus the start noise
