"""Denoiser networks and a registry that rebuilds them from a JSON config."""

from __future__ import annotations

from torch import nn

from diffusion_core.models.cnn import ReportCNN
from diffusion_core.models.unet import UNet

ARCHITECTURES: dict[str, type[nn.Module]] = {"cnn": ReportCNN, "unet": UNet}
_ARCH_PARAMS = {
    "cnn": {"in_channels", "image_size", "hidden", "kernel_size", "time_embed_dim"},
    "unet": {"in_channels", "base_channels", "channel_mult", "time_embed_dim", "num_classes", "patch"},
}
_TUPLE_PARAMS = {"hidden", "channel_mult"}


def build_model(config: dict) -> nn.Module:
    """Build a denoiser from {"arch": "cnn"|"unet", "params": {...}}; unknown keys are refused."""
    arch = config.get("arch")
    if arch not in ARCHITECTURES:
        raise ValueError(f"model arch must be one of {', '.join(ARCHITECTURES)}; got {arch!r}")
    params = dict(config.get("params", {}))
    unknown = set(params) - _ARCH_PARAMS[arch]
    if unknown:
        raise ValueError(f"unknown parameters for arch {arch!r}: {sorted(unknown)}")
    for key in _TUPLE_PARAMS & set(params):
        params[key] = tuple(params[key])
    return ARCHITECTURES[arch](**params)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["ReportCNN", "UNet", "build_model", "count_parameters", "ARCHITECTURES"]
