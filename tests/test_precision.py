"""bf16 autocast: detection, fp32 fallback, opt-out, and agreement with fp32 predictions."""

import pytest
import torch

import diffusion_core.training.precision as precision
from diffusion_core.models import build_model
from diffusion_core.training.precision import (
    NATIVE_BF16_ENV,
    AutocastModel,
    cpuinfo_has_native_bf16,
    resolve_precision,
    with_precision,
)

# flag lines as /proc/cpuinfo prints them (trimmed): a Sapphire Rapids Xeon, a Zen 4, a Cascade Lake Xeon
SAPPHIRE_RAPIDS = "flags\t\t: fpu vme sse2 avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8\n"
ZEN4 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\nbugs\t\t: sysret_ss_attrs\n"
CASCADE_LAKE = "flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\nbugs\t\t: spectre_v1\n"


def test_cpuinfo_flags_decide_native_bf16():
    assert cpuinfo_has_native_bf16(SAPPHIRE_RAPIDS) and cpuinfo_has_native_bf16(ZEN4)
    assert not cpuinfo_has_native_bf16(CASCADE_LAKE)
    assert not cpuinfo_has_native_bf16("")
    # a whole flag on a flags line, not a substring or another field
    assert not cpuinfo_has_native_bf16("flags\t\t: avx512_bf16x avx512f\n")
    assert not cpuinfo_has_native_bf16("model name\t: fake avx512_bf16 cpu\nflags\t\t: sse2\n")
    assert cpuinfo_has_native_bf16("flags: sse2\nflags\t\t: amx_bf16\n")  # any processor's line


def test_auto_uses_bf16_only_where_native(monkeypatch):
    monkeypatch.setenv(NATIVE_BF16_ENV, "1")
    assert precision.cpu_has_native_bf16()
    assert resolve_precision("auto", "cpu") == torch.bfloat16
    assert resolve_precision("fp32", "cpu") == torch.float32  # the opt-out
    monkeypatch.setenv(NATIVE_BF16_ENV, "0")
    assert resolve_precision("auto", "cpu") == torch.float32  # fallback
    assert resolve_precision("bf16", "cpu") == torch.bfloat16  # forced
    with pytest.raises(ValueError, match="precision must be"):
        resolve_precision("fp8", "cpu")
    monkeypatch.setenv(NATIVE_BF16_ENV, "yes")
    with pytest.raises(ValueError, match=f"{NATIVE_BF16_ENV} must be 1 .* or 0"):
        resolve_precision("auto", "cpu")


def test_without_the_override_auto_follows_proc_cpuinfo(monkeypatch):
    monkeypatch.delenv(NATIVE_BF16_ENV, raising=False)
    try:
        with open("/proc/cpuinfo") as f:
            expected = cpuinfo_has_native_bf16(f.read())
    except OSError:
        expected = False
    assert precision.cpu_has_native_bf16() is expected
    assert resolve_precision("auto", "cpu") == (torch.bfloat16 if expected else torch.float32)


@pytest.mark.parametrize("cfg", [{"arch": "cnn", "params": {}}, {"arch": "unet", "params": {"base_channels": 16}}])
def test_bf16_predictions_agree_with_fp32(cfg):
    """Stated tolerance: relative L2 error of the predicted ε below 2% (bf16 keeps ~3 significant digits)."""
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    z, t = torch.randn(8, 1, 28, 28), torch.rand(8)
    with torch.no_grad():
        ref = model(z, t)
        fast = with_precision(model, "bf16", "cpu")(z, t)
    assert isinstance(with_precision(model, "bf16", "cpu"), AutocastModel)
    assert with_precision(model, "fp32", "cpu") is model
    assert fast.dtype == torch.float32
    rel = ((fast - ref).norm() / ref.norm()).item()
    assert 0 < rel < 0.02


def test_sampling_runs_the_network_in_the_detected_precision(monkeypatch):
    """sample_checkpoint's precision: auto follows the hardware, fp32 opts out; bf16 samples stay close."""
    from pathlib import Path

    from diffusion_core.io.checkpoints import LoadedCheckpoint
    from diffusion_core.sampling import SamplerChoice, sample_checkpoint

    torch.manual_seed(0)
    config = {"model": {"arch": "unet", "params": {"base_channels": 16}},
              "diffusion": {"type": "noise", "schedule": {"kind": "linear", "beta1": 1e-4, "beta2": 0.02, "T": 100}}}
    ckpt = LoadedCheckpoint(build_model(config["model"]).eval(), config, Path("<test>"))

    def sample(p):
        return sample_checkpoint(ckpt, SamplerChoice("dpm++2m", 5), 4, precision=p).samples

    fp32, bf16 = sample("fp32"), sample("bf16")
    monkeypatch.setenv(NATIVE_BF16_ENV, "0")
    assert torch.equal(sample("auto"), fp32)
    monkeypatch.setenv(NATIVE_BF16_ENV, "1")
    assert torch.equal(sample("auto"), bf16)
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32)
    assert ((bf16 - fp32).norm() / fp32.norm()).item() < 0.05


def test_unet_runs_nchw_under_cpu_autocast_and_float32_is_untouched():
    """The U-Net's weights stay channels-last (float32's fast layout); under CPU autocast its convolutions switch
    to NCHW so GroupNorm sees NCHW tensors (its channels-last bf16 path is many times slower). Float32 output is
    bit-for-bit what plain nn.Conv2d layers give."""
    from diffusion_core.models import unet

    torch.manual_seed(0)
    net = unet.UNet(base_channels=16, patch=2).eval()
    plain = unet.UNet(base_channels=16, patch=2).eval()
    plain.load_state_dict(net.state_dict())
    for m in plain.modules():
        if isinstance(m, unet.Conv2d):
            m.__class__ = torch.nn.Conv2d
    seen: list[bool] = []
    for m in net.modules():
        if isinstance(m, torch.nn.GroupNorm):
            m.register_forward_pre_hook(lambda mod, args: seen.append(args[0].is_contiguous()))
    z, t = torch.randn(4, 1, 28, 28), torch.rand(4)
    with torch.no_grad():
        assert torch.equal(net(z, t), plain(z, t))
        assert seen and not any(seen)  # float32: channels-last activations throughout
        seen.clear()
        fast = with_precision(net, "bf16", "cpu")(z, t)
    assert seen and all(seen)
    assert net.stem.weight.is_contiguous(memory_format=torch.channels_last)  # nothing was moved in place
    with torch.no_grad():
        ref = plain(z, t)
    assert ((fast - ref).norm() / ref.norm()).item() < 0.02
