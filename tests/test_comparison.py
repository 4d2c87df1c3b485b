"""comparison: records of runs and shipped checkpoints, the metrics-table row, sample grids by epoch,
the report's epochs, the benchmark file."""

from __future__ import annotations

import json

import pytest

from diffusion_core.figures import default_epochs
from diffusion_core.views.evaluate import (
    ModelRecord,
    collect_records,
    fid_curve_missing,
    final_fids,
    has_fid,
    read_benchmark,
    sample_grids,
    summary_row,
)
from tests.app_support import dead_pid, fake_run, write_checkpoint


def test_summary_prefers_the_history_and_falls_back_to_the_card():
    rows = [{"epoch": 1, "loss": 0.5, "wall_time_s": 10.0, "fid": 40.0, "fid_samples": 256},
            {"epoch": 2, "loss": 0.3, "wall_time_s": 21.0},
            {"epoch": 3, "loss": 0.2, "wall_time_s": 30.0, "fid": 25.0, "fid_samples": 256}]
    rec = ModelRecord("run:r", "r", "run", {"model": {"arch": "unet"}, "dataset": "mnist",
                                             "diffusion": {"type": "noise"}}, rows, {"loss": 9.0}, 3, "finished")
    row = summary_row(rec)
    assert row["final loss"] == 0.2 and row["wall time (s)"] == 30.0  # the last row, not the card
    assert row["arch"] == "unet" and row["FID (card)"] is None and row["card protocol"] is None
    assert row["FID (monitor, last)"] == 25.0
    assert row["monitor protocol"] == "n = 256 · ddim, 20 steps · during training"
    # one model, two protocols (#26 item 8: quick-unet's monitor 113.86 was shown as its FID beside a card's 50.8)
    both = ModelRecord("shipped:q", "q", "shipped", {"diffusion": {"type": "noise"}}, rows,
                       {"fid": 50.8, "n": 1000, "sampler": "dpm++2m-sde", "steps": 50})
    row = summary_row(both)
    assert (row["FID (card)"], row["card protocol"]) == (50.8, "n = 1,000 · dpm++2m-sde, 50 steps")
    assert row["FID (monitor, last)"] == 25.0 and "during training" in row["monitor protocol"]
    card = ModelRecord("shipped:c", "c", "shipped", {"diffusion": {"type": "cold"}}, [],
                       {"loss": 0.01, "wall_time_s": 99.0, "fid": 7.0, "n": 250}, 100)
    row = summary_row(card)
    assert (row["final loss"], row["FID (card)"], row["wall time (s)"], row["state"]) == (0.01, 7.0, 99.0, "shipped")
    assert row["card protocol"] == "n = 250" and row["FID (monitor, last)"] is None
    assert row["type"] == "cold" and has_fid([rec]) and not has_fid([card])  # a card's FID is no curve


def test_records_of_runs_and_shipped_checkpoints(tmp_path):
    fake_run(tmp_path / "runs", "run-x", dead_pid(), state="finished", epoch=2, epochs=2, losses=(0.4, 0.3))
    ck = write_checkpoint(tmp_path / "ck", "default", T=20)
    ck.with_suffix(".metrics.jsonl").write_text(json.dumps({"epoch": 1, "loss": 0.7}) + "\n")
    records = collect_records(tmp_path / "runs", tmp_path / "ck")
    assert [(r.key, r.source, r.epochs) for r in records] == [
        ("run:run-x", "run", 2), ("shipped:default", "shipped", 1)]
    assert records[0].values("loss") == [0.4, 0.3] and records[1].values("loss") == [0.7]


def test_sample_grids_and_epochs(tmp_path):
    (tmp_path / "samples").mkdir()
    for name in ("epoch_0010.png", "epoch_0002.png", "epoch_0010.npy", "notes.png", "epoch_x.png"):
        (tmp_path / "samples" / name).write_bytes(b"")
    assert list(sample_grids(tmp_path)) == [2, 10]
    assert sample_grids(tmp_path / "nothing") == {}
    assert default_epochs([1, 10, 50, 100, 200]) == [10, 50, 100]
    assert default_epochs([1, 2, 3, 4, 5, 6, 7]) == [1, 3, 5, 7]
    assert default_epochs([2, 5]) == [2, 5] and default_epochs([]) == []


def test_benchmark_rows(tmp_path):
    path = tmp_path / "b.json"
    assert read_benchmark(path) is None
    path.write_text(json.dumps({"rows": [{"fid": 3.0, "sampler": "ddim"}]}))
    assert read_benchmark(path) == [{"sampler": "ddim", "steps": None, "fid": 3.0, "seconds": None}]
    path.write_text("{broken")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_benchmark(path)


def test_final_fids_and_the_shipped_histories_without_fid():
    card = ModelRecord("shipped:d", "d", "shipped", {}, [{"epoch": 1, "loss": 0.5}],
                       {"fid": 601.8, "fid_floor": 22.5, "n": 250, "sampler": "ancestral", "loss": 0.02}, 100)
    run = ModelRecord("run:r", "r", "run", {}, [{"epoch": 1, "loss": 0.5, "fid": 40.0}], {"loss": 0.5}, 1)
    assert final_fids([card, run]) == {"d": {"fid": 601.8, "fid_floor": 22.5, "n": 250, "sampler": "ancestral",
                                             "steps": None}}
    assert fid_curve_missing([card, run]) == ["d"]


def test_the_readmes_fids_are_the_cards():
    """#26 item 8: each shipped model's row in the README's table states its card's FID and floor (rounded as
    written), and the protocol's number of samples."""
    import json
    import re

    from tests.browser_harness import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    checked = 0
    for line in readme.splitlines():
        found = re.match(r"\| `([\w-]+)` \|", line)
        card = ROOT / "checkpoints" / f"{found.group(1)}.json" if found else None
        if card is None or not card.is_file():
            continue
        metrics = json.loads(card.read_text()).get("metrics") or {}
        if metrics.get("fid") is None:
            continue
        stated = re.search(r"FID ([\d.]+) against (?:a floor of )?([\d.]+)", line)
        assert stated, f"the README's {found.group(1)} row states no FID against its floor"
        fid, floor = stated.groups()
        decimals = len(fid.split(".")[1]) if "." in fid else 0
        assert float(fid) == round(metrics["fid"], decimals), (found.group(1), fid, metrics["fid"])
        assert float(floor) == round(metrics["fid_floor"], 1), (found.group(1), floor, metrics["fid_floor"])
        n = metrics.get("n")
        assert n is None or f"{n:,} samples" in line or f"{n} ancestral samples" in line or f"{n:,} ancestral" in line \
            or f"({n:,} samples" in line, (found.group(1), n)
        checked += 1
    assert checked >= 5
