"""Our noise-level samplers against k-diffusion's on the same σ list and the same denoiser: a correctness anchor,
not a dependency. k-diffusion is not installed with the project; fetch it and the modules its sampling.py imports:

    pip download --no-deps -d /tmp/kd k-diffusion torchsde trampoline torchdiffeq
    for w in /tmp/kd/*.whl; do unzip -qo "$w" -d /tmp/kd/site; done
    python benchmarks/kdiffusion_match.py --site /tmp/kd/site

The data are Gaussian (every pixel N(0.1, 0.2²)) with the exact denoiser, the schedule the report's default; both
sides start from the same x_T and, for the stochastic samplers, draw the same noise. Prints the largest
difference per sampler × spacing: float32 rounding (about 1e-7) when they agree.
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import torch
from torch import nn

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from diffusion_core.process import GaussianProcess, SamplerChoice  # noqa: E402
from diffusion_core.process.schedules import preset_schedule  # noqa: E402
from diffusion_core.samplers import run_to_end  # noqa: E402

MU, S, N, STEPS = 0.1, 0.2, 4, 12
PAIRS = {"euler": "sample_euler", "heun": "sample_heun", "dpm++2m": "sample_dpmpp_2m",
         "euler-a": "sample_euler_ancestral", "dpm++2m-sde": "sample_dpmpp_2m_sde"}
STOCHASTIC = {"euler-a", "dpm++2m-sde"}


class GaussianEps(nn.Module):
    """Exact E[ε | z_t] for pixels N(μ, s²): ε̂ = b(z − aμ)/(a²s² + b²), a = √ᾱ_t, b = √(1−ᾱ_t)."""

    def __init__(self, alpha_bars: torch.Tensor, T: int) -> None:
        super().__init__()
        self.ab, self.T = alpha_bars.double(), T

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = self.ab[torch.round(t.double() * self.T).long()].view(-1, 1, 1, 1)
        a, b = ab.sqrt(), (1 - ab).sqrt()
        return (b * (z.double() - a * MU) / (a**2 * S**2 + b**2)).float()


def load_k_sampling(site: Path):
    """k_diffusion.sampling without the package's __init__ (which imports training-only modules)."""
    sys.path.insert(0, str(site))
    package = types.ModuleType("k_diffusion")
    package.__path__ = [str(site / "k_diffusion")]
    sys.modules["k_diffusion"] = package
    import k_diffusion.sampling as sampling

    return sampling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--site", type=Path, required=True, help="folder holding the unpacked k_diffusion package")
    K = load_k_sampling(parser.parse_args().site)
    schedule = preset_schedule("default")
    process = GaussianProcess(schedule)
    model = GaussianEps(schedule.alpha_bars, schedule.T)
    denoiser = process.view(model)

    def k_model(x, sigma, **_):  # k-diffusion's view: D(x; σ), one σ for the batch
        return denoiser(x, float(sigma.flatten()[0]))[0]

    for ours, theirs in PAIRS.items():
        for spacing in ("karras", "log-snr"):
            choice = SamplerChoice(ours, STEPS, seed=0, spacing=spacing)
            sigmas = torch.tensor(process.sigmas(process.sampler(ours).timesteps(process, choice)) + [0.0])
            a = run_to_end(process.frames(model, choice, N)).samples
            g = torch.Generator().manual_seed(0)  # ours: z_T, then the step noise, from one generator
            x = torch.randn((N, 1, 28, 28), generator=g) * (1 + sigmas[0] ** 2) ** 0.5
            extra = {}
            if ours in STOCHASTIC:
                extra["noise_sampler"] = lambda s, sn, g=g: torch.randn((N, 1, 28, 28), generator=g)
            b = getattr(K, theirs)(k_model, x, sigmas, disable=True, **extra)
            print(f"{ours:12s} {spacing:8s} {theirs:24s} max |ours − k-diffusion| = {(a - b).abs().max().item():.2e}")


if __name__ == "__main__":
    main()
