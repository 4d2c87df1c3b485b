"""Memorisation and novelty: does a model copy its training digits?

- nearest_training: the k nearest training digits of each query, in pixel space (Euclidean over the 784 pixels in
  [0, 1]) or in the classifier's feature space.
- novelty: nearest-neighbour distances generated → train against held-out → train (real digits the model never
  saw: how far a fresh digit lies from the training set). The novelty score is the ratio of their medians — about
  1 for a model as novel as real data, near 0 for one that copies — and `copies` is the share of generated digits
  nearer to a training digit than all but 1 % of held-out digits are.
- IdealDenoiser: the exact minimiser of the training loss over a finite training set {x_i} (the "ideal denoiser"):
  E[x0 | z_t] = Σ_i softmax_i(−‖z_t − √ᾱ_t x_i‖² / (2(1−ᾱ_t))) x_i. It can only reproduce training digits: the
  memorising extreme that a network's limited capacity keeps it away from.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from diffusion_core.evaluation.metrics import as_unit_images, classifier_outputs
from diffusion_core.process.targets import eps_from_output

SPACES = ("pixel", "feature")
COPY_QUANTILE = 0.01  # `copies`: nearer than this quantile of held-out → train distances


def embed(images: np.ndarray | torch.Tensor, space: str, classifier: nn.Module | None = None) -> torch.Tensor:
    """Images in [0, 1] as vectors of `space`: their pixels, or the classifier's features."""
    if space not in SPACES:
        raise ValueError(f"space must be one of {', '.join(SPACES)}; got {space!r}")
    if space == "pixel":
        return as_unit_images(images).double().flatten(1)
    if classifier is None:
        raise ValueError("feature space needs the classifier")
    return torch.from_numpy(classifier_outputs(classifier, images)[0])


def nearest_training(queries: np.ndarray | torch.Tensor, train: np.ndarray | torch.Tensor, k: int = 3,
                     space: str = "pixel", classifier: nn.Module | None = None,
                     train_vectors: torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(indices N×k into `train`, distances N×k), nearest first; images in [0, 1]. `train_vectors`: the training
    set already in `space` (to reuse across calls)."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(train):
        raise ValueError(f"k must be a whole number from 1 to the training set's size {len(train)}; got {k!r}")
    q = embed(queries, space, classifier)
    t = embed(train, space, classifier) if train_vectors is None else train_vectors
    d2 = (q.pow(2).sum(1, keepdim=True) - 2 * q @ t.T + t.pow(2).sum(1)).clamp(min=0)
    dist, idx = torch.topk(d2, k, dim=1, largest=False)
    return idx.numpy(), dist.sqrt().numpy()


def novelty(generated: np.ndarray | torch.Tensor, train: np.ndarray | torch.Tensor,
            heldout: np.ndarray | torch.Tensor, space: str = "pixel", classifier: nn.Module | None = None,
            train_vectors: torch.Tensor | None = None) -> dict:
    """{"generated", "heldout": nearest-training distances, "score": median ratio, "copies": share of generated
    digits nearer to the training set than the COPY_QUANTILE of held-out ones, "space"}."""
    if min(len(generated), len(heldout)) < 2:
        raise ValueError("novelty needs at least 2 generated and 2 held-out digits")
    t = embed(train, space, classifier) if train_vectors is None else train_vectors
    gen = nearest_training(generated, train, 1, space, classifier, t)[1][:, 0]
    held = nearest_training(heldout, train, 1, space, classifier, t)[1][:, 0]
    threshold = float(np.quantile(held, COPY_QUANTILE))
    return {"generated": gen, "heldout": held, "score": float(np.median(gen) / np.median(held)),
            "copies": float(np.mean(gen < threshold)), "space": space}


class IdealDenoiser(nn.Module):
    """The ideal ε-predictor over a finite training set (data-space images N×C×H×W) on a noise schedule's ᾱ:
    called as model(z_t, t/T) like a trained noise model, so every sampler runs it."""

    def __init__(self, train: torch.Tensor, alpha_bars: torch.Tensor) -> None:
        super().__init__()
        if len(train) < 1:
            raise ValueError("the ideal denoiser needs at least one training image")
        self.register_buffer("images", train.double().flatten(1), persistent=False)
        self.register_buffer("alpha_bars", alpha_bars.double(), persistent=False)
        self.T, self.shape = len(alpha_bars) - 1, tuple(train.shape[1:])

    def x0(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """E[x0 | z_t] under the empirical training distribution (t: integer timesteps [B])."""
        ab = self.alpha_bars[t].view(-1, 1)
        zf = z.double().flatten(1)
        d2 = (zf.pow(2).sum(1, keepdim=True) - 2 * ab.sqrt() * zf @ self.images.T
              + ab * self.images.pow(2).sum(1))  # ‖z − √ᾱ x_i‖²
        weights = torch.softmax(-d2 / (2 * (1 - ab)), dim=1)
        return (weights @ self.images).view(len(z), *self.shape)

    def forward(self, z: torch.Tensor, t_frac: torch.Tensor, *labels: object) -> torch.Tensor:
        t = (t_frac.double() * self.T).round().long().clamp(1, self.T)
        ab = self.alpha_bars[t].view(-1, *([1] * (z.dim() - 1)))
        return eps_from_output("x0", z.double(), self.x0(z, t), ab.sqrt(), (1 - ab).sqrt()).float()
