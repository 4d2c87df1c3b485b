"""U-Net speed from bf16 (#14 item 4): one training step (batch 64) and one sampling step (batch 16) of the two
shipped U-Net shapes, in float32 (channels-last), in bf16 as it ran before (channels-last under autocast too) and in
bf16 as it runs now (the U-Net's convolutions switch to NCHW under CPU autocast), timed interleaved in one process.

    python benchmarks/unet_bf16.py                                   # this CPU as it is
    ONEDNN_MAX_CPU_ISA=AVX512_CORE python benchmarks/unet_bf16.py    # as a CPU without avx512_bf16/AMX runs it

`precision auto` picks bf16 only where the CPU has avx512_bf16 or AMX, so on the other kind the float32 column is
what runs; the second command caps oneDNN at AVX-512 without bf16 to show why auto leaves bf16 off there.
Writes benchmarks/results/unet_bf16[-<isa>].json.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.measure import interleaved_medians  # noqa: E402
from diffusion_core.evaluation.noisy_classifier import cpu_name  # noqa: E402
from diffusion_core.io.files import atomic_write_json  # noqa: E402
from diffusion_core.models import unet  # noqa: E402
from diffusion_core.models.unet import UNet  # noqa: E402
from diffusion_core.training.precision import AutocastModel, cpu_has_native_bf16, with_precision  # noqa: E402

SHAPES = {"quick-unet (base 32, patch 2)": {"base_channels": 32, "patch": 2},
          "default-unet (base 32, patch 1, 10 classes)": {"base_channels": 32, "num_classes": 10}}
RESULTS = Path(__file__).resolve().parent / "results"


def channels_last_throughout(net: UNet) -> UNet:
    """The U-Net as it ran before: plain nn.Conv2d, so channels-last activations under autocast as well."""
    for m in net.modules():
        if isinstance(m, unet.Conv2d):
            m.__class__ = torch.nn.Conv2d
    return net


def variants(kwargs: dict) -> dict[str, torch.nn.Module]:
    """float32 (channels-last, as auto runs it without native bf16); bf16 before; bf16 now."""
    torch.manual_seed(0)
    return {"fp32": UNet(**kwargs),
            "bf16 channels-last (before)": AutocastModel(channels_last_throughout(UNet(**kwargs)), torch.bfloat16,
                                                         "cpu"),
            "bf16 NCHW (now)": with_precision(UNet(**kwargs), "bf16", "cpu")}


def train_step(net: torch.nn.Module, batch: int, seed: int):
    """One Adam step of the ε-loss shape (forward, MSE, backward, update) on fixed random inputs."""
    g = torch.Generator().manual_seed(seed)
    x, t = torch.randn(batch, 1, 28, 28, generator=g), torch.rand(batch, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    conditional = getattr(getattr(net, "inner", net), "num_classes", None)

    def step() -> None:
        out = net(x, t, y) if conditional else net(x, t)
        loss = (out - x).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def sample_step(net: torch.nn.Module, batch: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x, t = torch.randn(batch, 1, 28, 28, generator=g), torch.rand(batch, generator=g)
    net.eval()

    def step() -> None:
        with torch.inference_mode():
            net(x, t)
    return step


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=15, help="timed rounds per measurement (median reported)")
    ap.add_argument("--train-batch", type=int, default=64)
    ap.add_argument("--sample-batch", type=int, default=16)
    args = ap.parse_args(argv)
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
    native = cpu_has_native_bf16() and isa.upper() not in ("AVX512_CORE", "AVX2", "AVX", "SSE41", "AVX512_CORE_VNNI")
    print(f"CPU: {cpu_name()} · {torch.get_num_threads()} threads · torch {torch.__version__}"
          + (f" · ONEDNN_MAX_CPU_ISA={isa}" if isa else "") + f" · native bf16: {'yes' if native else 'no'}")
    rows = []
    for shape, kwargs in SHAPES.items():
        nets = variants(kwargs)
        train = interleaved_medians({k: train_step(n, args.train_batch, 0) for k, n in nets.items()}, args.repeats, 2)
        nets = variants(kwargs)
        sample = interleaved_medians({k: sample_step(n, args.sample_batch, 0) for k, n in nets.items()},
                                     args.repeats * 2, 3)
        print(f"\n{shape}")
        print(f"  {'':30s} {'train img/s':>12s} {'× fp32':>7s} {'step ms':>9s} {'× fp32':>7s}")
        for k in nets:
            ips, ms = args.train_batch / train[k], sample[k] * 1e3
            gain_t, gain_s = train["fp32"] / train[k], sample["fp32"] / sample[k]
            print(f"  {k:30s} {ips:12.0f} {gain_t:7.2f} {ms:9.1f} {gain_s:7.2f}")
            rows.append({"shape": shape, "variant": k, "train_images_per_s": ips, "train_gain": gain_t,
                         "sample_step_ms": ms, "sample_gain": gain_s})
    suffix = f"-{isa.lower()}" if isa else ""
    out = RESULTS / f"unet_bf16{suffix}.json"
    atomic_write_json(out, {"cpu": cpu_name(), "threads": torch.get_num_threads(), "onednn_max_cpu_isa": isa or None,
                            "native_bf16": native, "train_batch": args.train_batch,
                            "sample_batch": args.sample_batch, "repeats": args.repeats, "rows": rows,
                            "date": datetime.date.today().isoformat()})
    print(f"\nwrote {out.relative_to(RESULTS.parent.parent)}")


if __name__ == "__main__":
    main()
