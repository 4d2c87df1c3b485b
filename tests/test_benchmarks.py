"""The speed benchmark's pieces on tiny settings: the literal reference agrees with diffusion_core
draw for draw, FLOP counting, targets, the default-model choice and the table/JSON it writes (no timings
are asserted)."""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from benchmarks import measure
from benchmarks.quality import QUALITY_STEPS, quality_plan
from benchmarks.reference import DDPM, ddpm_schedules
from benchmarks.report import (
    QUALITY_FIELDS,
    REQUIRED_ROWS,
    ROW_FIELDS,
    TARGET_FIELDS,
    evaluate_targets,
    format_table,
    row,
)
from benchmarks.run import BenchConfig, quick_config, resolve_model, run_benchmark
from diffusion_core.io.checkpoints import LoadedCheckpoint, save_checkpoint
from diffusion_core.io.data import Dataset
from diffusion_core.models import ReportCNN
from diffusion_core.process import GaussianProcess, SamplerChoice
from diffusion_core.process.gaussian import ddpm_loss
from diffusion_core.process.schedules import make_schedule
from diffusion_core.sampling import sample
from diffusion_core.services import catalog
from diffusion_core.services.catalog import default_checkpoint
from diffusion_core.views.evaluate import benchmark_meta, read_benchmark

ROOT = Path(__file__).resolve().parent.parent
TINY = {"arch": "cnn", "params": {"hidden": [4, 4], "kernel_size": 3, "time_embed_dim": 8}}


def tiny_net(seed: int = 0) -> ReportCNN:
    torch.manual_seed(seed)
    return ReportCNN(hidden=(4, 4), kernel_size=3, time_embed_dim=8).eval()


def noise_config(T: int, kind: str = "linear") -> dict:
    return {"type": "noise", "schedule": {"kind": kind, "beta1": 1e-4, "beta2": 0.02, "T": T}}


# ------------------------------------------------------------------------------------ the reference


def test_reference_schedule_is_the_reports_linear_schedule():
    s = ddpm_schedules(1e-4, 0.02, 1000)
    assert s["beta_t"].shape == (1001,) and s["beta_t"].dtype == torch.float32
    assert s["beta_t"][0].item() == pytest.approx(1e-4) and s["beta_t"][-1].item() == pytest.approx(0.02)
    assert s["beta_t"][500].item() == pytest.approx(1e-4 + (0.02 - 1e-4) * 0.5)
    # ᾱ_t = Π_{s≤t}(1 − β_s), against diffusion_core's float64 computation
    assert torch.allclose(s["alpha_t"], make_schedule("linear", 1e-4, 0.02, 1000).alpha_bars, rtol=1e-5, atol=0)
    with pytest.raises(ValueError, match="beta1"):
        ddpm_schedules(0.02, 1e-4, 10)


class StubNet(nn.Module):
    """ε̂ = 0.5 everywhere; records the t/T tensors it is called with."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.calls: list[torch.Tensor] = []

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls.append(t)
        return torch.full_like(z, 0.5) + self.w


def test_reference_reverse_step_is_algorithm_2():
    stub = StubNet()
    ddpm = DDPM(stub, (0.1, 0.2), 5)
    z = torch.ones(2, 1, 28, 28)
    with torch.no_grad():
        out = ddpm.reverse_step(z, 3, torch.Generator().manual_seed(7))
    beta3 = 0.1 + 0.1 * 3 / 5
    abar3 = (1 - 0.1) * (1 - 0.12) * (1 - 0.14) * (1 - beta3)  # t = 0..3
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(7))
    expected = (1 - beta3 / math.sqrt(1 - abar3) * 0.5) / math.sqrt(1 - beta3) + math.sqrt(beta3) * noise
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(stub.calls[-1], torch.full((2,), 3 / 5))
    # the last step (t = 1) adds no noise: the generator is not touched
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        ddpm.reverse_step(z, 1, gen)
    assert torch.equal(torch.randn(3, generator=gen), torch.randn(3, generator=torch.Generator().manual_seed(7)))


def test_reference_sampler_calls_the_network_with_a_fresh_t_over_T_each_step():
    stub = StubNet()
    DDPM(stub, (1e-4, 0.02), 6).sample(3, (1, 28, 28), "cpu", torch.Generator().manual_seed(0))
    assert [round(c[0].item() * 6) for c in stub.calls] == [6, 5, 4, 3, 2, 1]
    assert len({id(c) for c in stub.calls}) == 6 and all(c.shape == (3,) for c in stub.calls)


def test_reference_sampler_equals_diffusion_core_ancestral_for_the_same_seed_and_weights():
    net = tiny_net()
    # per-sample seeds: the library's sample k is the reference's single image drawn with seed 3 + k
    ref = torch.cat([DDPM(net, (1e-4, 0.02), 20).sample(1, (1, 28, 28), "cpu", torch.Generator().manual_seed(3 + k))
                     for k in range(4)])
    process = GaussianProcess(make_schedule("linear", 1e-4, 0.02, 20))
    fast = sample(process, net, SamplerChoice("ancestral", seed=3), 4, precision="fp32").samples
    assert torch.allclose(ref, fast, atol=1e-5)
    other = sample(process, net, SamplerChoice("ancestral", seed=4), 4, precision="fp32").samples
    assert (ref - other).abs().max() > 0.1


def test_reference_training_loss_equals_ddpm_loss_for_the_same_draws():
    net = tiny_net()
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1)) - 0.5
    g_ref, g_fast = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    ref = DDPM(net, (1e-4, 0.02), 1000)(x, g_ref)
    fast = ddpm_loss(net, make_schedule("linear", 1e-4, 0.02, 1000), x, g_fast)
    assert ref.item() == pytest.approx(fast.item(), rel=1e-5)
    # both consumed the same randomness (t, then ε)
    assert torch.equal(torch.randn(4, generator=g_ref), torch.randn(4, generator=g_fast))


def test_trainers_work_on_copies_and_reference_refuses_non_linear_schedules():
    net = tiny_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    images = torch.rand(32, 1, 28, 28, generator=torch.Generator().manual_seed(0)) - 0.5
    schedule = make_schedule("linear", 1e-4, 0.02, 50)
    for step in (measure.reference_trainer(net, schedule, images, 16, 0),
                 measure.fast_trainer(net, schedule, images, 16, 0, "fp32")):
        losses = [step() for _ in range(3)]  # 3 steps over 2 batches: wraps around an epoch
        assert all(math.isfinite(v) for v in losses)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    with pytest.raises(ValueError, match="linear"):
        measure.reference_ddpm(net, make_schedule("cosine", T=50))


# ------------------------------------------------------------------------------------- FLOPs, targets


def test_flop_count_of_the_report_cnn_matches_the_layer_formula():
    net = ReportCNN()
    z, t = torch.zeros(2, 1, 28, 28), torch.full((2,), 0.5)
    hw = 28 * 28
    convs = sum(2 * cin * cout * 49 * hw for cin, cout in [(1, 16), (16, 32), (32, 32), (32, 16)]) + 2 * 16 * 9 * hw
    mlp = 2 * (32 * 128 + 128 * 128 + 128 * 128 + 128 * 16)
    assert measure.count_flops(lambda: net(z, t)) == 2 * (convs + mlp)
    assert 150e6 < convs < 170e6  # GUIDE.md: ≈160 MFLOP forward per image


def test_targets_pass_and_fail_at_their_thresholds():
    ok = {t["id"]: t for t in evaluate_targets(1.7, 25.0, 19.0, fast_fid=10.9, ancestral_fid=10.0)}
    assert all(t["pass"] is True for t in ok.values())
    bad = {t["id"]: t for t in evaluate_targets(1.5, 19.0, 21.0, fast_fid=11.2, ancestral_fid=10.0)}
    assert all(t["pass"] is False for t in bad.values())
    assert bad["train"]["measured"] == "1.50×" and bad["step16"]["measured"] == "21.0 ms"
    none = {t["id"]: t for t in evaluate_targets(None, None, None)}
    assert all(t["pass"] is None and t["measured"] is None for t in none.values())


def test_interleaved_timing_runs_contenders_in_rounds():
    calls: list[str] = []
    t = measure.interleaved_medians({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 2, warmup=1)
    assert calls == ["a", "b"] * 3 and set(t) == {"a", "b"} and all(v >= 0 for v in t.values())
    with pytest.raises(ValueError, match="repeats"):
        measure.median_time(lambda: None, repeats=0)


def test_peak_rss_of_a_process_from_proc_agrees_with_getrusage():
    if not Path("/proc/self/status").is_file():
        pytest.skip("no /proc here")
    assert measure.process_peak_rss_mib(os.getpid()) == pytest.approx(measure.peak_rss_mib(), rel=0.05)
    assert measure.process_peak_rss_mib(2**22 + 12345) is None  # no such process


def test_speedup_direction_depends_on_the_unit():
    assert row("a", "g", "n", "s", reference=2.0, fast=0.5)["speedup"] == 4.0
    assert row("a", "g", "n", "images/s", reference=200.0, fast=300.0)["speedup"] == 1.5
    assert row("a", "g", "n", "FID", reference=None, fast=3.0)["speedup"] is None


def test_quality_plan_full_and_quick():
    full = quality_plan(1000)
    assert full[0] == ("ancestral", 1000)
    for sampler in ("ddim", "dpm++2m", "dpm++2m-sde"):
        assert [s for n, s in full if n == sampler] == list(QUALITY_STEPS)
    quick = quality_plan(1000, max_steps=quick_config().quality_max_steps)
    assert ("ancestral", 1000) not in quick and max(s for _, s in quick) == 100 and len(quick) == 12
    assert quality_plan(30, (10, 50)) == [("ancestral", 30), ("ddim", 10), ("ddim", 30), ("dpm++2m", 10),
                                          ("dpm++2m", 30), ("dpm++2m-sde", 10), ("dpm++2m-sde", 30)]


# --------------------------------------------------------------------------------------- the model


def test_default_model_follows_the_app(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(tmp_path))
    monkeypatch.delenv("DIFFUSION_LAB_DEFAULT_MODEL", raising=False)
    assert default_checkpoint("noise_levels") is None
    ckpt, desc, warning = resolve_model(None, seed=0)
    assert isinstance(ckpt.model, ReportCNN) and "meaningless" in warning and "untrained" in desc
    net = tiny_net()
    cold = {"type": "cold", "degradation": {"kind": "blur", "T": 10}}  # save_checkpoint validates it now
    save_checkpoint(tmp_path / "aaa", net, {"model": TINY, "diffusion": cold})
    save_checkpoint(tmp_path / "zzz", net, {"model": TINY, "diffusion": noise_config(50)})
    assert default_checkpoint("noise_levels").stem == "zzz"  # the first noise model, not the cold one
    save_checkpoint(tmp_path / "default-unet", net, {"model": TINY, "diffusion": noise_config(50)})
    assert default_checkpoint("noise_levels").stem == "default-unet"
    monkeypatch.setenv("DIFFUSION_LAB_DEFAULT_MODEL", "zzz")
    assert default_checkpoint("noise_levels").stem == "zzz"
    save_checkpoint(tmp_path / "cos", net, {"model": TINY, "diffusion": noise_config(50, "cosine")})
    with pytest.raises(ValueError, match="linear"):
        resolve_model(str(tmp_path / "cos"), seed=0)


def test_benchmark_mirrors_the_apps_default_model(tmp_path, monkeypatch):
    """The default-model rule lives once, in diffusion_core.services.catalog: with no --model the benchmark runs
    default_checkpoint("noise_levels"), the app's default among the noise models."""
    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(tmp_path))
    monkeypatch.delenv(catalog.DEFAULT_ENV, raising=False)
    net = tiny_net()
    cold = {"type": "cold", "degradation": {"kind": "blur", "T": 10}}
    save_checkpoint(tmp_path / catalog.DEFAULT_NAMES[0], net, {"model": TINY, "diffusion": cold})  # not noise
    save_checkpoint(tmp_path / "aaa", net, {"model": TINY, "diffusion": noise_config(20)})
    save_checkpoint(tmp_path / catalog.DEFAULT_NAMES[-1], net, {"model": TINY, "diffusion": noise_config(20)})
    for chosen, env in ((catalog.DEFAULT_NAMES[-1], None), ("aaa", "aaa")):
        if env is not None:
            monkeypatch.setenv(catalog.DEFAULT_ENV, env)
        ckpt, desc, warning = resolve_model(None, seed=0)
        assert ckpt.path == default_checkpoint("noise_levels") and ckpt.path.stem == chosen
        assert warning is None and desc.startswith(f"{chosen} (")


# ----------------------------------------------------------------------------------- table and JSON


def test_tiny_run_writes_every_required_field(tmp_path, monkeypatch):
    import benchmarks.quality
    import benchmarks.run

    digits = torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(0)) - 0.5
    fake = Dataset(images=digits, labels=torch.zeros(200, dtype=torch.long), name="mnist", source="synthetic")
    from diffusion_core.views import sampler_costs

    for module in (benchmarks.run, benchmarks.quality, sampler_costs):  # skip loading MNIST: seconds here
        monkeypatch.setattr(module, "load_dataset", lambda *a, **k: fake)
    T = 30
    ckpt = LoadedCheckpoint(tiny_net(), {"model": TINY, "diffusion": noise_config(T)}, Path("<tiny>"))
    cfg = BenchConfig(batch_size=16, train_images=64, train_steps=1, train_repeats=1, train_warmup=0,
                      sample_repeats=1, step_repeats=2, step_warmup=1, matmul_n=64,
                      matmul_repeats=1, quality_n=16, quality_steps=(10, 20), app=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of tiny ops: on a busy machine extra OpenMP threads only wait
    try:
        report = run_benchmark(cfg, ckpt, "tiny", "a test warning", tmp_path)
    finally:
        torch.set_num_threads(threads)

    ids = [r["id"] for r in report["rows"]]
    assert set(REQUIRED_ROWS) <= set(ids) and len(ids) == len(set(ids))
    assert all(tuple(r) == ROW_FIELDS for r in report["rows"])
    # every sampler and step count of the plan, capped at T
    assert {f"sample16.{s}.{k}" for s, k in [("ancestral", T), ("ddim", T), ("ddim", 20), ("dpm++2m", 20),
                                             ("dpm++2m", 10), ("dpm++2m-sde", 20)]} <= set(ids)
    by_id = {r["id"]: r for r in report["rows"]}
    assert by_id["app.health"]["fast"] is None and "skipped" in by_id["app.first_page"]["note"]
    assert by_id["memory.self"]["fast"] > 0 and by_id["memory.app"]["fast"] is None
    for r in report["rows"]:
        if r["unit"] == "s" and r["reference"] and r["fast"]:
            assert r["speedup"] == pytest.approx(r["reference"] / r["fast"])

    assert [t["id"] for t in report["targets"]] == ["train", "sample16", "sample16_fid", "step16"]
    assert all(tuple(t) == TARGET_FIELDS for t in report["targets"])
    assert all(isinstance(t["pass"], bool) for t in report["targets"])  # ancestral and the quick sampler's FIDs exist
    assert "a test warning" in report["meta"]["notes"] and "native bf16" in report["meta"]
    assert "MNIST test split (synthetic)" in " ".join(report["meta"]["notes"])

    quality = read_benchmark(tmp_path / "quality_vs_speed.json")
    assert [(q["sampler"], q["steps"]) for q in quality] == quality_plan(T, (10, 20))
    assert all(tuple(q)[:4] == QUALITY_FIELDS and q["fid"] >= 0 and q["seconds"] > 0 and q["n"] == 16
               for q in quality)
    about = benchmark_meta(tmp_path / "quality_vs_speed.json")  # the file names what it measured
    assert about["model"] == report["meta"]["model"] and about["reference"] == "MNIST test split (synthetic)"
    assert about["measured"] == report["meta"]["run"] and about["machine"] == report["meta"]["machine"]
    latest = json.loads((tmp_path / "latest.json").read_text())
    assert latest == json.loads(json.dumps(report))

    table = format_table(report["meta"], report["rows"], report["targets"])
    assert all(r["name"] in table for r in report["rows"])
    assert len(re.findall(r"\| (PASS|FAIL|n/a) ", table)) == 4
