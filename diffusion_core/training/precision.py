"""Mixed precision: bf16 autocast where the hardware runs it natively, float32 otherwise.

"auto" picks bf16 on CUDA GPUs that support it and on CPUs with avx512_bf16 or AMX; everything
else (and "fp32") runs in float32. "bf16" forces autocast even where it is emulated (slower).

The CPU answer can be overridden with DIFFUSION_LAB_NATIVE_BF16=1 (act as if native) or =0 (as if
not), so one machine can run the precision-sensitive tests as the other kind would (.ci/run does).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import torch
from torch import nn

PRECISIONS = ("auto", "fp32", "bf16")
NATIVE_BF16_ENV = "DIFFUSION_LAB_NATIVE_BF16"
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpuinfo_has_native_bf16(cpuinfo: str) -> bool:
    """True when a `flags` line of /proc/cpuinfo text lists avx512_bf16 or amx_bf16."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags" and set(value.split()) & set(NATIVE_BF16_CPU_FLAGS):
            return True
    return False


@functools.cache
def _proc_cpuinfo_has_native_bf16() -> bool:
    try:
        return cpuinfo_has_native_bf16(Path("/proc/cpuinfo").read_text())
    except OSError:
        return False


def cpu_has_native_bf16() -> bool:
    """The CPU's answer: $DIFFUSION_LAB_NATIVE_BF16 (1/0) when set, else /proc/cpuinfo's flags."""
    forced = os.environ.get(NATIVE_BF16_ENV, "").strip()
    if forced in ("1", "0"):
        return forced == "1"
    if forced:
        raise ValueError(f"{NATIVE_BF16_ENV} must be 1 (act as native bf16) or 0 (as not); got {forced!r}")
    return _proc_cpuinfo_has_native_bf16()


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def resolve_precision(choice: str, device: torch.device | str) -> torch.dtype:
    """torch.bfloat16 or torch.float32 for `choice` on `device`."""
    if choice not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {choice!r}")
    device = torch.device(device)
    if choice == "bf16" or (choice == "auto" and native_bf16(device)):
        return torch.bfloat16
    return torch.float32


class AutocastModel(nn.Module):
    """Runs the wrapped denoiser under autocast and returns float32, so samplers and losses
    stay in float32 whatever the network computes in."""

    def __init__(self, model: nn.Module, dtype: torch.dtype, device: torch.device | str) -> None:
        super().__init__()
        self.inner = model
        self.dtype = dtype
        self.device_type = torch.device(device).type

    def forward(self, z: torch.Tensor, t: torch.Tensor, *labels: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=self.device_type, dtype=self.dtype):
            out = self.inner(z, t, *labels)
        return out.float()


def with_precision(model: nn.Module, precision: str, device: torch.device | str) -> nn.Module:
    """`model` itself for float32, or an AutocastModel wrapper for bf16."""
    dtype = resolve_precision(precision, device)
    return model if dtype == torch.float32 else AutocastModel(model, dtype, device)
