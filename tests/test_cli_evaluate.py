"""`python -m diffusion_core evaluate` and `figures`, end to end on small inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from diffusion_core.cli import main
from diffusion_core.io.data import load_dataset, to_unit


@pytest.fixture(scope="module")
def test_digits():
    ds = load_dataset("mnist", "test", download=False)
    return to_unit(ds.images).squeeze(1).numpy(), ds.labels.numpy()


def test_evaluate_npy_of_real_digits_with_scale(tmp_path, test_digits, capsys):
    imgs, _ = test_digits
    npy = tmp_path / "real.npy"
    np.save(npy, imgs[:200])
    out = tmp_path / "m" / "metrics.json"
    code = main(["evaluate", str(npy), "--reference", "train", "--scale", "--out", str(out), "--no-download"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads(out.read_text())
    assert printed == saved
    assert saved["kind"] == "samples" and saved["n"] == 200 and saved["n_reference"] == 4500
    assert saved["classes_present"] == 10 and saved["confident_fraction"] > 0.9
    assert sum(saved["class_histogram"]) == 200
    assert math.isclose(saved["class_entropy"], -sum(c / 200 * math.log(c / 200) for c in saved["class_histogram"]
                                                     if c), rel_tol=1e-9)
    scale = saved["scale"]
    assert scale["n"] == 200 and scale["floor_images"] == "mnist test split"
    # these 200 digits are drawn from the same held-out split as the floor: about the floor, far below ceilings
    assert saved["fid"] < 3 * scale["floor"] < scale["ceiling_noise"] / 10
    assert saved["fid_over_floor"] == pytest.approx(saved["fid"] / scale["floor"])


def test_evaluate_samples_a_checkpoint(tmp_path, tiny_noise_checkpoint, capsys):
    stem = tmp_path / "kept"
    code = main(["evaluate", str(tiny_noise_checkpoint), "--n", "12", "--sampler", "ddim", "--steps", "3",
                 "--save-samples", str(stem), "--no-download"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "checkpoint" and report["sampler"] == "ddim" and report["n"] == 12
    assert report["n_reference"] == 500 and report["fid"] > 0
    kept = np.load(stem.with_suffix(".npy"))
    assert kept.shape == (12, 28, 28) and sum(report["class_histogram"]) == 12


def test_evaluate_refuses_bad_input(tmp_path, capsys):
    data_space = tmp_path / "data_space.npy"
    np.save(data_space, np.full((4, 28, 28), -0.5, dtype=np.float32))
    assert main(["evaluate", str(data_space), "--no-download"]) == 2
    assert "pixels in [0, 1]" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing.npy"), "--no-download"]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["evaluate", str(data_space), "--classifier", str(tmp_path / "nope"), "--no-download"]) == 2
    assert "classifier file" in capsys.readouterr().err


def _fake_run(path, diffusion_type: str, losses: list[float], fids: dict[int, float]) -> None:
    (path / "samples").mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"diffusion": {"type": diffusion_type}}))
    rows = []
    for e, loss in enumerate(losses, start=1):
        row = {"epoch": e, "loss": loss}
        if e in fids:
            row["fid"] = fids[e]
        rows.append(json.dumps(row))
    (path / "metrics.jsonl").write_text("\n".join(rows) + "\n")
    for e in (1, 3):
        np.save(path / "samples" / f"epoch_{e:04d}.npy", np.full((4, 28, 28), e / 3, dtype=np.float32))


def test_figures_writes_the_report_set(tmp_path, test_digits, capsys):
    noise, blur = tmp_path / "noise_run", tmp_path / "blur_run"
    _fake_run(noise, "noise", [0.1, 0.07, 0.05], {2: 40.0, 3: 25.0})
    _fake_run(blur, "cold", [0.02, 0.015, 0.01], {3: 60.0})
    imgs, _ = test_digits
    npy = tmp_path / "gen.npy"
    np.save(npy, imgs[-60:])
    out = tmp_path / "figs"
    code = main(["figures", "--out", str(out), "--runs", str(noise), str(blur), "--samples", f"gen={npy}",
                 "--real-n", "80", "--fid-floor", "3.5", "--no-download"])
    assert code == 0
    written = sorted(p.name for p in out.glob("*.html"))
    expected = ["01_alpha_bar.html", "02_sample_grids.html", "03_samples_at_epochs_blur_run.html",
                "03_samples_at_epochs_noise_run.html", "04_loss_curves.html", "05_fid_curves.html",
                "06_blur_schedule.html", "09_loss_noise_vs_blur.html", "10_fid_noise_vs_blur.html",
                "density_classifier_gen.html", "density_pixels_gen.html", "index.html", "pca2d_gen.html",
                "pca3d_gen.html"]
    assert written == expected
    assert (out / "plotly.min.js").is_file()  # shared, offline
    fid_html = (out / "05_fid_curves.html").read_text()
    assert "real-data floor 3.5" in fid_html and 'src="http' not in fid_html
    index = (out / "index.html").read_text()
    assert all(f'href="{name}"' in index for name in expected if name != "index.html")
    assert main(["figures", "--out", str(out), "--samples", "no-equals-sign"]) == 2
    assert "NAME=FILE.npy" in capsys.readouterr().err
