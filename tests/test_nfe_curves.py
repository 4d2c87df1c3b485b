"""FID against network calls across process families (views/nfe_curves.py): which samplers spend a budget, each
model at its best, the table, and the Evaluate page's chart of the benchmark's file."""

from __future__ import annotations

import json

import pytest

from diffusion_core.io.checkpoints import load_checkpoint
from diffusion_core.views.nfe_curves import budget_choices, nfe_curve, table
from tests.app_support import app, charts, no_exceptions, shipped_folder, write_checkpoint, write_flow_checkpoint


def names(choices):
    return [(c.sampler, c.steps) for c in choices]


def test_a_budget_is_spent_exactly_by_each_family_s_own_samplers(tmp_path):
    flow = load_checkpoint(write_flow_checkpoint(tmp_path, T=50))
    noise = load_checkpoint(write_checkpoint(tmp_path, "noise", T=50))
    assert names(budget_choices(flow, 1)) == [("flow-euler", 1), ("ddim", 1), ("dpm++2m", 1), ("dpm++2m-sde", 1)]
    assert ("flow-heun", 2) in names(budget_choices(flow, 3))
    assert "flow-heun" not in dict(names(budget_choices(flow, 4)))
    assert names(budget_choices(noise, 4)) == [("ddim", 4), ("dpm++2m", 4), ("dpm++2m-sde", 4)]
    for budget in (1, 2, 3, 8):
        assert all(flow.process.network_calls(c) == budget for c in budget_choices(flow, budget))


def test_each_budget_keeps_the_best_sampler_with_its_floor(tmp_path):
    flow = load_checkpoint(write_flow_checkpoint(tmp_path, T=50))
    seen = []
    rows = nfe_curve(flow, 20, (1, 3), name="tiny flow", on_row=seen.append)
    assert rows == seen and [r["nfe"] for r in rows] == [1, 3]
    for r in rows:
        assert r["model"] == "tiny flow" and r["family"] == "flow models"
        assert r["fid"] == pytest.approx(min(r["tried"].values()), abs=0.01)
        assert r["tried"][r["sampler"]] == pytest.approx(r["fid"], abs=0.01)
        assert r["fid_over_floor"] == pytest.approx(r["fid"] / r["fid_floor"]) and r["fid_floor"] > 0
        assert 0 <= r["confident"] <= 1 and 1 <= r["digits"] <= 10
    assert "flow-heun" in rows[1]["tried"] and "flow-heun" not in rows[0]["tried"]
    with pytest.raises(ValueError, match="n must be a whole number of samples ≥ 20"):
        nfe_curve(flow, 5)


def rows():
    def row(model, family, nfe, ratio, sampler):
        return {"model": model, "family": family, "nfe": nfe, "sampler": sampler, "steps": nfe, "fid": 10 * ratio,
                "fid_over_floor": ratio, "kid": 0.01, "confident": 0.8, "digits": 10}
    return [row("uncond-unet", "noise models", b, 40 / b, "dpm++2m") for b in (1, 2, 4, 8, 20)] + \
        [row("flow-unet", "flow models", b, 10 / b + 1, "flow-euler") for b in (1, 2, 4, 8, 20)]


def test_the_table_has_a_line_per_model_and_a_column_per_budget():
    lines = table(rows()).splitlines()
    assert lines[0] == "| model | 1 call | 2 calls | 4 calls | 8 calls | 20 calls |"
    assert lines[2].startswith("| uncond-unet | 40.00× · 80% · 10 digits (dpm++2m) | 20.00× · 80% · 10 digits "
                               "(dpm++2m) |")
    assert lines[3].endswith("| 1.50× · 80% · 10 digits (flow-euler) |")


def test_the_evaluate_page_draws_the_benchmark_file(tmp_path, monkeypatch):
    shipped_folder(tmp_path, monkeypatch, fresh_caches=False)
    write_checkpoint(tmp_path / "shipped", "tiny")
    monkeypatch.setenv("DIFFUSION_LAB_FLOW_BENCHMARK", str(tmp_path / "flow.json"))
    at = app("pages/6_Evaluate.py").run()
    assert any("python benchmarks/flow_vs_diffusion.py" in i.value for i in at.info)
    (tmp_path / "flow.json").write_text(json.dumps({"rows": rows(), "n": 500, "machine": "a Xeon",
                                                     "measured": "2026-12-06"}))
    at = app("pages/6_Evaluate.py").run()
    no_exceptions(at)
    fig = next(f for f in charts(at) if f["layout"]["title"]["text"].startswith("FID against network calls"))
    traces = {t["name"]: t for t in fig["data"]}
    assert set(traces) == {"uncond-unet (noise models)", "flow-unet (flow models)"}
    assert traces["flow-unet (flow models)"]["x"].tolist() == [1, 2, 4, 8, 20]
    assert traces["flow-unet (flow models)"]["y"].tolist() == [11, 6, 3.5, 2.25, 1.5]
    assert traces["flow-unet (flow models)"]["line"]["dash"] != traces["uncond-unet (noise models)"]["line"]["dash"]
    assert any("500 samples per point" in c.value and "on a Xeon" in c.value for c in at.caption)
