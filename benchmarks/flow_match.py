"""Our flow matching against Meta's `flow_matching` library on the same path, the same velocity and the same time
grid: a correctness anchor, not a dependency. Fetch it and the ODE package its solver imports:

    pip download --no-deps -d /tmp/fm flow_matching torchdiffeq
    for w in /tmp/fm/*.whl; do unzip -qo "$w" -d /tmp/fm/site; done
    python benchmarks/flow_match.py --site /tmp/fm/site

Their clock runs the other way (noise X_0 at s = 0, data X_1 at s = 1, velocity u = X_1 − X_0), ours
z_t = (1 − t)·x + t·ε with v = ε − x: s = 1 − t, u = −v. The velocity is exact for Gaussian pixels N(μ, s²)
(a closed form, as in kdiffusion_match.py). Prints the largest difference per check: float32 rounding (about 1e-7)
when they agree — near t = 1 the denoiser view's x̂0 carries the round trip x = z/(1 − t) (σ = 999 at t = 0.999),
so about 1e-4 there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from diffusion_core.process import FlowProcess, SamplerChoice, Start  # noqa: E402
from diffusion_core.samplers import run_to_end  # noqa: E402

MU, S, N, T = 0.1, 0.2, 4, 1000


class GaussianVelocity(nn.Module):
    """Exact E[ε − x | z_t] on the linear path for pixels x ~ N(μ, S²): with a = 1 − t, d = a²S² + t²,
    E[x | z] = μ + a·S²·(z − aμ)/d and E[ε | z] = t·(z − aμ)/d."""

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.double().view(-1, 1, 1, 1)
        a = 1 - t
        r = (z.double() - a * MU) / (a**2 * S**2 + t**2)
        return (t * r - (MU + a * S**2 * r)).float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--site", type=Path, required=True, help="folder holding the unpacked flow_matching and "
                        "torchdiffeq packages")
    sys.path.insert(0, str(parser.parse_args().site))
    from flow_matching.path import CondOTProbPath
    from flow_matching.solver import ODESolver

    process, model, path = FlowProcess(T), GaussianVelocity(), CondOTProbPath()
    g = torch.Generator().manual_seed(0)
    x, eps = MU + S * torch.randn((N, 1, 28, 28), generator=g), torch.randn((N, 1, 28, 28), generator=g)
    k = torch.tensor([1, 250, 500, 999])
    s = 1 - k.float() / T
    theirs = path.sample(x_0=eps, x_1=x, t=s)
    z = process.path(x, k, eps)
    print(f"path z_t against X_s:                   {float((z - theirs.x_t).abs().max()):.2e}")
    print(f"target v = ε − x against −dX_s/ds:       {float(((eps - x) + theirs.dx_t).abs().max()):.2e}")

    view = process.view(model)
    for i, kk in enumerate(k.tolist()):  # the denoiser view's x̂0 and ε̂ against their velocity conversions
        t = kk / T
        v = model(z[i:i + 1], torch.tensor([t]))
        sigma = t / (1 - t)
        x0, e = view(z[i:i + 1] * (1 + sigma), sigma)
        ss = torch.tensor([1 - t])
        dx = (x0 - path.velocity_to_target(-v, z[i:i + 1], ss)).abs().max()
        de = (e - path.velocity_to_epsilon(-v, z[i:i + 1], ss)).abs().max()
        print(f"t = {t:.3f}: x̂0 {float(dx):.2e}, ε̂ {float(de):.2e} (denoiser view against velocity_to_target / "
              "velocity_to_epsilon)")

    solver = ODESolver(velocity_model=lambda x, t: -model(x, (1 - t).expand(len(x))))
    for steps in (4, 20):
        grid = torch.tensor([1 - kk / T for kk in process.timesteps("uniform", T, steps)] + [1.0])
        ours = {name: run_to_end(process.frames(model, SamplerChoice(name, steps, start=Start(states=eps)),
                                                N)).samples for name in ("flow-euler", "flow-heun")}
        euler = solver.sample(x_init=eps, step_size=None, method="euler", time_grid=grid)
        heun = solver.sample(x_init=eps, step_size=None, method="heun2", time_grid=grid[:-1])  # ours: Heun, then
        heun = solver.sample(x_init=heun, step_size=None, method="euler", time_grid=grid[-2:])  # an Euler last step
        d_euler, d_heun = (float((ours[n] - r).abs().max()) for n, r in (("flow-euler", euler), ("flow-heun", heun)))
        print(f"{steps:>2} steps: flow-euler against ODESolver euler {d_euler:.2e}, flow-heun against heun2 "
              f"(+ Euler last) {d_heun:.2e}")


if __name__ == "__main__":
    main()
