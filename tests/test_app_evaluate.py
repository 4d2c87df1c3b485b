"""Evaluate page: the metrics table of runs and shipped checkpoints, loss and FID curves (with the
noise-vs-blur figures), the no-FID note, sample grids over epochs, the quality-vs-speed table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffusion_core.io.images import save_samples
from diffusion_core.services import run_status
from diffusion_core.views.evaluate import read_benchmark
from tests.app_support import app, charts, dead_pid, errors, fake_run, no_exceptions, shipped_folder, write_checkpoint

PAGE = "pages/6_Evaluate.py"


@pytest.fixture(autouse=True)
def shipped(tmp_path, monkeypatch):
    folder = shipped_folder(tmp_path, monkeypatch, fresh_caches=False)
    monkeypatch.setenv("DIFFUSION_LAB_BENCHMARKS", str(tmp_path / "bench.json"))
    monkeypatch.setenv("DIFFUSION_LAB_FLOW_BENCHMARK", str(tmp_path / "flow.json"))
    return folder


def add_fid(run_dir, fids: dict[int, float]) -> None:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        if r["epoch"] in fids:
            r["fid"] = fids[r["epoch"]]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def make_cold(run_dir) -> None:
    cfg = json.loads((run_dir / "config.json").read_text())
    cfg["diffusion"] = {"type": "cold", "degradation": {"kind": "blur", "T": 500, "schedule": "linear"}}
    (run_dir / "config.json").write_text(json.dumps(cfg))


def by_name(fig: dict) -> dict[str, dict]:
    return {t["name"]: t for t in fig["data"]}


def test_nothing_to_compare_says_so():
    at = app(PAGE).run()
    no_exceptions(at)
    assert any(i.value.startswith("Nothing to compare yet") for i in at.info)
    assert "Go to Train" in [p.proto.label for p in at.page_link]


def test_runs_and_checkpoints_in_the_table_and_loss_curves(shipped):
    root = run_status.runs_root()
    fake_run(root, "run-a", dead_pid(), state="finished", epoch=3, epochs=3, losses=(0.9, 0.5, 0.4))
    fake_run(root, "run-b", dead_pid(), state="stopped", epoch=2, epochs=5, losses=(0.8, 0.6))
    ck = write_checkpoint(shipped, "default", T=20)
    meta = json.loads(ck.with_suffix(".json").read_text())  # a shipped card's final numbers
    meta.update(epochs=100, metrics={"loss": 0.031, "wall_time_s": 1200.0, "fid": 4.5})
    ck.with_suffix(".json").write_text(json.dumps(meta))

    at = app(PAGE).run()
    no_exceptions(at)
    assert errors(at) == []
    table = at.dataframe[0].value.set_index("model")
    assert set(table.index) == {"run-a", "run-b", "default"}
    assert table.loc["run-a", "final loss"] == 0.4 and table.loc["run-a", "epochs"] == 3
    assert table.loc["run-a", "state"] == "finished" and table.loc["run-b", "state"] == "stopped"
    assert np.isnan(table.loc["run-b", "wall time (s)"])  # its rows record no wall time
    assert table.loc["default", "final loss"] == 0.031 and table.loc["default", "epochs"] == 100
    assert table.loc["default", "FID (card)"] == 4.5 and table.loc["default", "wall time (s)"] == 1200.0

    loss = by_name(charts(at)[0])
    assert set(loss) == {"run-a", "run-b"}  # the shipped checkpoint has no history
    np.testing.assert_allclose(loss["run-a"]["y"], [0.9, 0.5, 0.4])
    np.testing.assert_allclose(loss["run-a"]["x"], [1, 2, 3])
    assert any(i.value.startswith("No FID curve") for i in at.info)  # no row has "fid"

    at.multiselect(key="ev_models").set_value(["run:run-b"]).run()
    assert list(at.dataframe[0].value["model"]) == ["run-b"]


def test_fid_curves_and_noise_vs_blur_figures():
    root = run_status.runs_root()
    noise = fake_run(root, "run-noise", dead_pid(), state="finished", epoch=4, epochs=4, losses=(0.5, 0.3, 0.2, 0.1))
    blur = fake_run(root, "run-blur", dead_pid(), state="finished", epoch=4, epochs=4, losses=(0.05, 0.03, 0.02, 0.02))
    make_cold(blur)
    add_fid(noise, {2: 30.0, 4: 12.0})
    add_fid(blur, {4: 20.0})
    at = app(PAGE).run()
    no_exceptions(at)
    figs = charts(at)
    titles = [f["layout"]["title"]["text"] for f in figs]
    assert titles == ["Training loss", "loss: noise models vs cold (degradation) models",
                      "Classifier-FID during training", "classifier-FID: noise models vs cold (degradation) models"]
    fid = by_name(figs[2])
    np.testing.assert_allclose(fid["run-noise"]["x"], [2, 4])
    np.testing.assert_allclose(fid["run-noise"]["y"], [30.0, 12.0])
    vs = by_name(figs[1])
    assert vs["run-blur"]["yaxis"] == "y2" and vs["run-noise"]["yaxis"] == "y"  # blur on the second axis
    table = at.dataframe[0].value.set_index("model")
    assert table.loc["run-noise", "FID (monitor, last)"] == 12.0 and table.loc["run-blur", "type"] == "cold"
    assert table.loc["run-blur", "monitor protocol"].endswith("improved, ≤ 50 steps · during training")
    assert not [i for i in at.info if i.value.startswith("No FID curve")]


def test_sample_grids_over_epochs():
    run_dir = fake_run(run_status.runs_root(), "run-s", dead_pid(), state="finished", epoch=100, epochs=100,
                       losses=(0.5,) * 100)
    for e in (1, 10, 50, 100):
        save_samples(np.full((4, 28, 28), e / 100, dtype=np.float32), run_dir / "samples" / f"epoch_{e:04d}")
    at = app(PAGE).run()
    no_exceptions(at)
    assert at.multiselect(key="ev_epochs_run-s").value == [10, 50, 100]  # the report's Figure 3 epochs
    assert [i.captions for i in at.image] == [["run-s · epoch 100"], ["epoch 10", "epoch 50", "epoch 100"]]
    at.multiselect(key="ev_epochs_run-s").set_value([1]).run()
    assert at.image[1].captions == ["epoch 1"]


def test_quality_vs_speed_table_when_the_file_exists(tmp_path):
    fake_run(run_status.runs_root(), "run-a", dead_pid(), state="finished", epoch=1, epochs=1, losses=(0.5,))
    at = app(PAGE).run()
    assert len(at.dataframe) == 1 and "Quality vs speed" not in [h.value for h in at.subheader]
    rows = [{"seconds": 1.5, "fid": 10.0, "sampler": "ddim", "steps": 50, "eta": 0.0},
            {"sampler": "dpm++2m", "steps": 20, "fid": 9.0, "seconds": 0.6}]
    (tmp_path / "bench.json").write_text(json.dumps(rows))
    at = app(PAGE).run()
    no_exceptions(at)
    bench = at.dataframe[1].value
    assert list(bench.columns) == ["sampler", "steps", "fid", "seconds", "eta"]
    assert bench.to_dict("records")[1]["sampler"] == "dpm++2m" and bench["seconds"].tolist() == [1.5, 0.6]
    assert any("does not say which model it measured" in c.value for c in at.caption)  # a bare list of rows
    (tmp_path / "bench.json").write_text(json.dumps({"model": "default-unet (unet, linear T=1000)", "rows": rows,
                                                     "reference": "MNIST test split", "measured": "full, 2026-11-29",
                                                     "machine": "a Xeon"}))
    at = app(PAGE).run()
    assert at.dataframe[1].value["seconds"].tolist() == [1.5, 0.6]
    assert any("of **default-unet (unet, linear T=1000)**, against the MNIST test split; measured full, 2026-11-29 "
               "on a Xeon" in c.value for c in at.caption)
    assert read_benchmark(tmp_path / "missing.json") is None
    (tmp_path / "bench.json").write_text('{"oops": 1}')
    at = app(PAGE).run()
    assert errors(at) == ['Cannot read the quality-vs-speed benchmark: bench.json must hold a list of rows like '
                          '{"sampler": "ddim", "steps": 50, "fid": 12.3, "seconds": 1.4}']


def test_shipped_models_without_fid_rows_show_their_measured_fid(shipped):
    """Before: the FID tab was empty out of the box and pointed to a CLI flag the Train page did not offer."""
    for name, fid, floor, n in (("default", 601.8, 22.5, 250), ("blur", 995.9, 13.3, 1000)):
        ck = write_checkpoint(shipped, name, T=20)
        meta = json.loads(ck.with_suffix(".json").read_text())
        meta.update(metrics={"loss": 0.03, "fid": fid, "fid_floor": floor, "n": n})
        ck.with_suffix(".json").write_text(json.dumps(meta))
        ck.with_suffix(".metrics.jsonl").write_text(json.dumps({"epoch": 1, "loss": 0.5}) + "\n")  # no "fid"
    at = app(PAGE).run()
    no_exceptions(at)
    info = next(i.value for i in at.info if i.value.startswith("No FID curve"))
    assert "**Measure FID during training** on the Train page" in info
    assert any("`blur.metrics.jsonl`, `default.metrics.jsonl`) hold no FID rows" in c.value for c in at.caption)
    final = next(f for f in charts(at) if f["layout"]["title"]["text"].startswith("Measured classifier-FID"))
    bars, floors = final["data"]
    assert final["layout"]["xaxis"]["ticktext"] == ["blur", "default"]
    np.testing.assert_allclose(bars["y"], [995.9, 601.8])
    np.testing.assert_allclose(floors["y"], [13.3, 22.5])


def test_a_model_keeps_its_colour_and_the_noise_vs_blur_axes_are_readable():
    """Before: one model had different colours in the two loss charts, and the blur loss sat on a second
    log axis over the first with run-together labels."""
    root = run_status.runs_root()
    fake_run(root, "run-noise", dead_pid(), state="finished", epoch=3, epochs=3, losses=(0.5, 0.1, 0.03))
    blur = fake_run(root, "run-blur", dead_pid(), state="finished", epoch=3, epochs=3, losses=(0.05, 0.01, 0.005))
    make_cold(blur)
    at = app(PAGE).run()
    no_exceptions(at)
    loss, vs = charts(at)[:2]
    colour = {t["name"]: t["line"]["color"] for t in loss["data"]}
    assert colour == {t["name"]: t["line"]["color"] for t in vs["data"]} and None not in colour.values()
    assert len(set(colour.values())) == 2
    assert "overlaying" not in vs["layout"]["yaxis2"]
    assert vs["layout"]["yaxis"]["ticktext"] == ["0.02", "0.05", "0.1", "0.2", "0.5"]
    assert vs["layout"]["yaxis2"]["ticktext"] == ["0.005", "0.01", "0.02", "0.05"]
