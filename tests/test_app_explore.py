"""Explore page: real-only densities, generated digits from a model, PCA clusters whose silhouette and
label agreement match the points drawn, the classifier's absence (info) and presence, error paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score, silhouette_score

from diffusion_core.checkpoints import load_checkpoint
from diffusion_core.classifier import build_classifier, save_classifier
from diffusion_core.images import to_unit_numpy
from diffusion_core.sampling import sample_checkpoint
from tests.app_support import app, charts, errors, no_exceptions, write_checkpoint

PAGE = "pages/5_Explore.py"
SMALL = {"ex_n_real": 40, "ex_n_gen": 20, "ex_n_pcs": 10, "ex_k": 4, "ex_steps_dpm++2m": 5}


@pytest.fixture(autouse=True)
def shipped(tmp_path, monkeypatch):
    folder = tmp_path / "shipped"
    folder.mkdir()
    monkeypatch.setenv("DIFFUSION_LAB_CHECKPOINTS", str(folder))
    return folder


def small_app():
    at = app(PAGE)
    for key, value in SMALL.items():  # set before the first run: no slow first pass with the defaults
        at.session_state[key] = value
    return at.run()


def points(fig: dict, group: str) -> dict[tuple[float, float], str]:
    """(x, y) of every drawn point of `group` ("real" / "generated") → the name of its trace (its colour)."""
    out = {}
    for trace in fig["data"]:
        if trace["name"].startswith(group + " "):
            for x, y in zip(trace["x"], trace["y"], strict=True):
                out[(round(float(x), 9), round(float(y), 9))] = trace["name"].rsplit(" ", 1)[1]
    return out


def test_real_digits_only_without_a_model_or_classifier():
    at = small_app()
    no_exceptions(at)
    assert errors(at) == []
    assert any(i.value.startswith("No trained models yet") for i in at.info)
    titles = [a["text"] for a in charts(at)[0]["layout"]["annotations"]]
    assert [t.split(" ")[0] for t in titles] == [f"PC{i}" for i in range(1, 21)]  # by default: where digits differ
    at.radio(key="ex_density_kind").set_value("pixels").run()  # the report's view, one click away
    titles = [a["text"] for a in charts(at)[0]["layout"]["annotations"]]
    assert titles == [f"pixel {c} (row 0, col {c})" for c in range(20)]
    at.number_input(key="ex_density_start").set_value(392)
    at.slider(key="ex_density_n").set_value(5).run()
    density = charts(at)[0]
    assert [t["name"] for t in density["data"]] == ["real"] * 5  # nothing generated yet
    titles = [a["text"] for a in density["layout"]["annotations"]]
    assert titles == [f"pixel {c} (row 14, col {c - 392})" for c in range(392, 397)]

    at.radio(key="ex_density_kind").set_value("classifier").run()
    info = [i.value for i in at.info if i.value.startswith("Classifier features are not available")]
    assert len(info) == 1 and "classifier.safetensors not found" in info[0]
    assert at.selectbox(key="ex_colour").value == "kmeans"  # no classes for generated digits without it
    at.selectbox(key="ex_space").set_value("classifier").run()
    assert len([i for i in at.info if i.value.startswith("Classifier features are not available")]) == 2


def test_generated_digits_and_clusters_match_what_is_drawn(shipped):
    path = write_checkpoint(shipped, "tiny", T=20)
    at = small_app()
    at.button(key="ex_generate").click().run()
    no_exceptions(at)
    assert errors(at) == []
    expected = to_unit_numpy(sample_checkpoint(load_checkpoint(path), "dpm++2m", n=20, seed=0, steps=5).samples)
    np.testing.assert_allclose(at.session_state["ex_generated"]["images"], expected, atol=1e-5)
    assert "40 real test digits vs 20 generated (dpm++2m, 5 steps, seed 0)." in [c.value for c in at.caption]
    assert [t["name"] for t in charts(at)[0]["data"][:2]] == ["real", "generated"]

    fig = charts(at)[1]  # coloured by k-means cluster
    real_c, gen_c = points(fig, "real"), points(fig, "generated")
    assert len(real_c) == 40 and len(gen_c) == 20
    table = at.dataframe[0].value.set_index("method")
    coords = np.array(list(real_c) + list(gen_c))
    assert table.loc["kmeans", "silhouette"] == pytest.approx(
        silhouette_score(coords, list(real_c.values()) + list(gen_c.values())), abs=1e-6)

    at.selectbox(key="ex_colour").set_value("label").run()
    labels = points(charts(at)[1], "real")  # the same points, coloured by their true class
    assert set(labels) == set(real_c)
    ari = adjusted_rand_score([labels[p] for p in real_c], list(real_c.values()))
    assert table.loc["kmeans", "agreement with real labels (ARI)"] == pytest.approx(ari, abs=1e-9)
    assert any(c.value.startswith("Generated digits are not drawn in this colouring") for c in at.caption)

    at.radio(key="ex_dims").set_value(3).run()
    assert charts(at)[1]["data"][0]["type"] == "scatter3d"


def test_with_the_classifier_its_features_and_predicted_classes_are_used(shipped):
    torch.manual_seed(0)
    model_cfg = {"arch": "mnist-cnn", "params": {"channels": [4, 4], "feature_dim": 8, "num_classes": 10}}
    save_classifier(shipped / "classifier", build_classifier(model_cfg), {"model": model_cfg})
    write_checkpoint(shipped, "tiny", T=20)
    at = small_app()
    at.button(key="ex_generate").click().run()
    at.radio(key="ex_density_kind").set_value("classifier").run()
    no_exceptions(at)
    assert errors(at) == ["Cannot draw the densities: n must be at most the classifier's 8 features; got 20"]
    at.slider(key="ex_density_n").set_value(8).run()
    assert errors(at) == []
    assert not [i for i in at.info if i.value.startswith("Classifier features")]
    titles = [a["text"] for a in charts(at)[0]["layout"]["annotations"]]
    assert sorted(titles) == [f"feature {j}" for j in range(8)]  # all 8 features of the tiny classifier
    assert at.selectbox(key="ex_colour").value == "label"
    names = [t["name"] for t in charts(at)[1]["data"]]
    assert any(n.startswith("generated class ") for n in names)  # generated digits coloured by predicted class
    table = at.dataframe[0].value.set_index("method")
    assert table["agreement with predicted classes of generated (ARI)"].notna().all()


def test_bad_settings_show_errors():
    at = small_app()
    at.radio(key="ex_density_kind").set_value("pixels").run()
    at.number_input(key="ex_density_start").set_value(780).run()
    assert errors(at) == ["Cannot draw the densities: start must be an integer between 0 and 764 for n=20 pixels; "
                          "got 780"]
    at.number_input(key="ex_n_pcs").set_value(50).run()
    assert "Cannot cluster: n must be at most 40 principal components for 40 real images" in errors(at)
