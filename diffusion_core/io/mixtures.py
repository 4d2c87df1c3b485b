"""Fitted mixture starts of cold diffusion on disk: safetensors tensors with the fit's settings in the header.
The ones in checkpoints/mixtures/ (written by `ship` for a cold checkpoint) spare the first cold generation its
fit (about 17 s on 2 cores) and let it run without the training images."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from diffusion_core.io.data import DatasetUnavailableError, load_dataset
from diffusion_core.io.files import PROJECT_ROOT, atomic_write_bytes
from diffusion_core.process.cold import (
    LIVE_FIT,
    MIXTURE_NOISE,
    SHIPPED_FIT,
    MixtureFit,
    MixtureStart,
    fit_mixture_start,
)
from diffusion_core.process.degradations import Degradation

MIXTURE_DIR = PROJECT_ROOT / "checkpoints" / "mixtures"
TENSORS = ("mean", "basis", "weights", "means", "chol")


def mixture_name(dataset: str, degradation: dict, n_images: int, seed: int, t: int, n_components: int,
                 pca_dim: int, noise_std: float) -> str:
    """A file stem that changes with anything the fit depends on (the degradation's config included)."""
    spec = json.dumps({"dataset": dataset, "degradation": degradation, "n_images": n_images, "seed": seed, "t": t,
                       "n_components": n_components, "pca_dim": pca_dim, "noise_std": noise_std}, sort_keys=True)
    return f"{dataset}-{degradation.get('kind', 'cold')}-t{t}-{hashlib.sha256(spec.encode()).hexdigest()[:12]}"


def shipped_mixture_path(dataset: str, degradation: dict, t: int) -> Path:
    """Where `ship` stores the SHIPPED_FIT mixture start (seed 0) of a degradation (its config) at t."""
    fit = SHIPPED_FIT
    name = mixture_name(dataset, degradation, fit.images, 0, t, fit.components, fit.pca_dim, MIXTURE_NOISE)
    return MIXTURE_DIR / f"{name}.safetensors"


_MIXTURES: dict[tuple, MixtureStart] = {}


def dataset_mixture(degradation: Degradation, dataset: str = "mnist", seed: int = 0, root: str | None = None,
                    t: int | None = None, fit: MixtureFit | None = None) -> MixtureStart:
    """The mixture start of a cold checkpoint at t (default: the degradation's generation_t), cached per
    (dataset, root, degradation, seed, t, fit). fit None: the SHIPPED_FIT stored in checkpoints/mixtures/ when
    there is one (default data root), else LIVE_FIT fitted now; a given fit: fitted now on fit.images training
    images chosen with `seed`."""
    t = degradation.generation_t if t is None else t
    key = (dataset, root, json.dumps(degradation.config(), sort_keys=True), seed, t, fit)
    if key not in _MIXTURES and fit is None and root is None and seed == 0:
        shipped = shipped_mixture_path(dataset, degradation.config(), t)
        if shipped.is_file():
            _MIXTURES[key] = load_mixture(shipped)
    if key not in _MIXTURES:
        fit = fit or LIVE_FIT
        try:
            data = load_dataset(dataset, "train", root=root, download=False)
        except DatasetUnavailableError as exc:
            raise DatasetUnavailableError(f"{exc} (The mixture start is fitted to training images; "
                                          "start from 'black' to sample without them.)") from None
        idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:fit.images]
        _MIXTURES[key] = fit_mixture_start(degradation, data.images[idx], fit.components, fit.pca_dim, seed=seed,
                                           t=t)
    return _MIXTURES[key]


def ship_mixture(degradation: Degradation, dataset: str = "mnist") -> list[Path]:
    """Fit the SHIPPED_FIT mixture starts of a cold degradation on the training images (at its generation_t,
    where generation starts, and at T, which the Degradations page shows beside the black start) and store them
    where dataset_mixture looks first."""
    source = load_dataset(dataset, "train", download=False).source
    fits = {t: dataset_mixture(degradation, dataset, t=t, fit=SHIPPED_FIT)
            for t in sorted({degradation.generation_t, degradation.T})}
    return [save_mixture(shipped_mixture_path(dataset, degradation.config(), t), mixture,
                         f"{SHIPPED_FIT.images} {dataset} training images ({source}), seed 0")
            for t, mixture in fits.items() if not mixture.is_point]  # a point mass costs nothing to fit


def save_mixture(path: Path, mixture: MixtureStart, source: str) -> Path:
    """Write `mixture` (float32 tensors; `source`: where its training images came from) to path."""
    meta = {"image_shape": json.dumps(list(mixture.image_shape)), "noise_std": repr(mixture.noise_std),
            "t": str(mixture.t), "source": source}
    data = save_safetensors_bytes({k: getattr(mixture, k).float().contiguous() for k in TENSORS}, metadata=meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    return path


def load_mixture(path: Path) -> MixtureStart:
    """A MixtureStart from a file save_mixture wrote; ValueError naming the file if it is not one."""
    try:
        raw = path.read_bytes()
        tensors = load_safetensors_bytes(raw)
        header_len = int.from_bytes(raw[:8], "little")
        meta = json.loads(raw[8:8 + header_len]).get("__metadata__", {})
        shape, t, noise = tuple(json.loads(meta["image_shape"])), int(meta["t"]), float(meta["noise_std"])
    except (OSError, SafetensorError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a mixture start file ({exc}); delete it and it is fitted again") from None
    missing = [k for k in TENSORS if k not in tensors]
    k, d = tensors["means"].shape if not missing and tensors["means"].dim() == 2 else (0, 0)
    shapes_ok = not missing and tensors["chol"].shape == (k, d, d) and tensors["weights"].shape == (k,) \
        and tensors["basis"].dim() == 2 and tensors["basis"].shape[1] == d
    if not shapes_ok:
        raise ValueError(f"{path} is not a mixture start file (tensors {sorted(tensors)} of the wrong shapes); "
                         "delete it and it is fitted again")
    return MixtureStart(image_shape=shape, noise_std=noise, t=t,
                        **{name: tensors[name].double() for name in TENSORS})
