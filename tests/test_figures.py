"""Figure builders: the traces hold the data they were given (checked against independent formulas)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from diffusion_core.evaluation.analysis import ClusterResult, FeatureDensity, Projection
from diffusion_core.figures import (
    GENERATED_COLOUR,
    REAL_COLOUR,
    alpha_bar_figure,
    blur_schedule_figure,
    by_family,
    density_figure,
    family_curves_figure,
    fid_curves_figure,
    final_fid_figure,
    log_ticks,
    loss_curves_figure,
    model_colours,
    pca_cluster_figure,
    samples_at_epochs_figure,
    write_html,
)
from diffusion_core.process.schedules import make_schedule


def test_alpha_bar_figure_plots_the_report_presets():
    fig = alpha_bar_figure()
    names = [t.name for t in fig.data]
    assert names == ["default (T=1000)", "model1 (T=1840)", "model2 (T=18300)", "model2 at T=1000 (T=1000)"]
    for trace, (b1, b2, T) in zip(fig.data, [(1e-4, 0.02, 1000), (1e-5, 0.01, 1840), (1e-5, 1e-3, 18300),
                                             (1e-5, 1e-3, 1000)], strict=True):
        t = np.asarray(trace.x)
        assert t[0] == 0 and t[-1] == T and len(t) <= 2001
        beta = b1 + (b2 - b1) * np.arange(T + 1) / T  # β_t = β1 + (β2 − β1)·t/T
        expected = np.cumprod(1 - beta)[t.astype(int)]
        np.testing.assert_allclose(np.asarray(trace.y), expected, rtol=1e-4)
    # the report's remark: model2 cut at T = 1000 ends only ~40% of the way to noise (ᾱ_T ≈ 0.6)
    assert 0.55 < fig.data[3].y[-1] < 0.65
    custom = alpha_bar_figure({"s": make_schedule("linear", 1e-4, 0.02, 10)}, normalise_t=True)
    assert custom.data[0].x[-1] == 1.0 and custom.layout.xaxis.title.text == "t / T"


def test_samples_at_epochs_are_ordered_panels():
    imgs = {50: np.zeros((4, 28, 28)), 10: np.ones((4, 28, 28)), 100: np.full((4, 28, 28), 0.5)}
    fig = samples_at_epochs_figure(imgs)
    assert [a.text for a in fig.layout.annotations] == ["epoch 10", "epoch 50", "epoch 100"]
    assert [float(np.asarray(t.z)[3, 3]) for t in fig.data] == [1.0, 0.0, 0.5]  # first pixel of each grid
    assert fig.data[2].xaxis == "x3" and fig.layout.yaxis3.autorange == "reversed"


ROWS_A = [{"epoch": 2, "loss": 0.05, "fid": 30.0}, {"epoch": 1, "loss": 0.08}, {"epoch": 3, "loss": 0.04, "fid": 20.0}]
ROWS_B = [{"epoch": 1, "loss": 0.3}, {"epoch": 2, "loss": 0.2}]


def test_loss_and_fid_curves_follow_the_rows():
    fig = loss_curves_figure({"a": ROWS_A, "b": ROWS_B})
    assert [t.name for t in fig.data] == ["a", "b"]
    assert list(fig.data[0].x) == [1, 2, 3] and list(fig.data[0].y) == [0.08, 0.05, 0.04]  # sorted by epoch
    assert fig.layout.yaxis.type == "log"
    fid = fid_curves_figure({"a": ROWS_A, "b": ROWS_B}, floor=2.5, ceiling=300.0)
    assert [t.name for t in fid.data] == ["a"]  # run b has no FID rows
    assert list(fid.data[0].x) == [2, 3] and list(fid.data[0].y) == [30.0, 20.0]
    assert sorted(s.y0 for s in fid.layout.shapes) == [2.5, 300.0]


def test_models_are_grouped_by_their_process_family_noise_first():
    groups = by_family({"blur": ROWS_B, "default": ROWS_A, "odd": ROWS_A},
                       {"blur": "cold", "default": "noise", "odd": None})
    assert list(groups) == ["noise", "cold"] and groups["cold"] == {"blur": ROWS_B}  # no process: left out
    fig = family_curves_figure(groups, key="loss")
    assert fig.layout.title.text == "loss: noise models vs cold (degradation) models"
    assert [a.text for a in fig.layout.annotations] == ["noise models: loss ‖ε − g‖²",
                                                        "cold (degradation) models: loss ‖x − R‖²"]


def test_noise_vs_blur_puts_blur_on_the_second_axis():
    fig = family_curves_figure({"noise": {"default": ROWS_A}, "cold": {"blur": ROWS_B}}, key="loss")
    by_name = {t.name: t for t in fig.data}
    assert by_name["default"].yaxis == "y" and by_name["blur"].yaxis == "y2"
    assert by_name["blur"].line.dash == "dash" and list(by_name["blur"].y) == [0.3, 0.2]
    fid = family_curves_figure({"noise": {"default": ROWS_A}, "cold": {"blur": ROWS_B}}, key="fid")
    assert [t.name for t in fid.data] == ["default"]


def test_blur_schedule_plots_sigma_and_the_strip():
    T = 500
    sigmas = 0.02 + 0.01 * np.arange(T + 1)  # σ_t = 0.02 + 0.01·t
    strip = {t: np.full((28, 28), t / T) for t in (0, 250, 500)}
    fig = blur_schedule_figure(sigmas, strip)
    line, image = fig.data
    np.testing.assert_allclose(np.asarray(line.y), sigmas)
    z = np.asarray(image.z)
    assert z.shape == (28, 3 * 28 + 2 * 2)
    assert z[0, 0] == 0.0 and z[0, 30] == 0.5 and z[0, -1] == 1.0
    assert list(fig.layout.xaxis2.ticktext) == ["t=0", "t=250", "t=500"]


def test_density_figure_has_real_and_generated_per_feature():
    grid = np.linspace(0, 1, 5)
    ds = [FeatureDensity(f"f{i}", grid, grid * i, grid[::-1]) for i in range(3)]
    fig = density_figure(ds, cols=2)
    assert len(fig.data) == 6
    assert [t.showlegend for t in fig.data] == [True, True, False, False, False, False]
    np.testing.assert_allclose(np.asarray(fig.data[4].y), grid * 2)
    assert [a.text for a in fig.layout.annotations] == ["f0", "f1", "f2"]


def test_density_figure_has_readable_panel_titles_and_axis_titles():
    """Before (#18): the panels' names were 10 px and no axis said what was plotted."""
    grid = np.linspace(0, 1, 5)
    ds = [FeatureDensity(f"f{i}", grid, grid, None) for i in range(7)]  # 5 + 2: the last row is not full
    fig = density_figure(ds, cols=5, x_title="component score")
    assert all(a.font.size >= 13 for a in fig.layout.annotations)
    assert fig.layout.xaxis.tickfont.size >= 12 and fig.layout.yaxis.tickfont.size >= 12
    layout = fig.to_plotly_json()["layout"]
    x_titled = sorted(k for k, v in layout.items() if k.startswith("xaxis") and v.get("title", {}).get("text"))
    y_titled = sorted(k for k, v in layout.items() if k.startswith("yaxis") and v.get("title", {}).get("text"))
    # every column's lowest panel: f5, f6 in the second row, f2, f3, f4 in the first; the first of each row
    assert x_titled == ["xaxis3", "xaxis4", "xaxis5", "xaxis6", "xaxis7"]
    assert {layout[k]["title"]["text"] for k in x_titled} == {"component score"}
    assert y_titled == ["yaxis", "yaxis6"] and layout["yaxis"]["title"]["text"] == "density"


def _result(dims: int, space: str = "pca") -> dict:
    rng = np.random.default_rng(0)
    labels = np.array([0, 0, 1, 1, 2])
    clusters = np.array([1, 1, 0, 0, 0, 1, 0, 0])
    cr = ClusterResult("kmeans", clusters, 0.5, 0.7, 0.2)
    return {"projection": Projection(rng.normal(size=(5, dims)), rng.normal(size=(3, dims)), np.full(dims, 0.2)),
            "real_labels": labels, "generated_labels": np.array([2, 2, 0]), "clusters": {"kmeans": cr},
            "space": space, "n_features": 50, "labels_are_predicted": False}


def drawn(fig) -> list:
    """The traces that draw points (not the legend-only entries, whose coordinates are [None])."""
    return [t for t in fig.data if list(t.x) != [None]]


def test_pca_cluster_figure_shows_real_in_blue_and_generated_in_red_by_default():
    """Before (#18): the page promised real in blue and generated in red, but the clusters were coloured by class
    with 20 legend entries, under the title 'PCA of pca features'."""
    res = _result(2)
    fig = pca_cluster_figure(res)
    assert [(t.name, t.marker.color, t.marker.symbol) for t in fig.data][:2] == [
        ("real", REAL_COLOUR, "circle"), ("generated", GENERATED_COLOUR, "x")]
    np.testing.assert_allclose(fig.data[1].x, res["projection"].generated[:, 0])
    # the k clusters show in this colouring too (#26: the k slider changed nothing visible): their centres,
    # numbered — cluster 1 holds real points 0, 1 and generated point 0
    centres = fig.data[2]
    assert centres.name == "k-means cluster centres" and list(centres.text) == ["0", "1"]
    p = res["projection"]
    np.testing.assert_allclose([centres.x[1], centres.y[1]],
                               np.concatenate([p.real[:2], p.generated[:1]])[:, :2].mean(0))
    title = fig.layout.title.text
    assert title.startswith("Real (blue) vs generated (red) digits: 2-D PCA of the first 50 PCA components of the "
                            "pixels")
    assert "pca features" not in title and "Clusters fitted in this 2-D view. k-means: silhouette 0.50" in title
    assert fig.layout.xaxis.title.text == "PC1 (20.0% of variance)"
    assert "all 784 pixels" in pca_cluster_figure(_result(2, "pixels")).layout.title.text
    assert "3-D PCA of 50 classifier features" in pca_cluster_figure(_result(3, "classifier")).layout.title.text


def test_pca_cluster_figure_colours_by_class_or_cluster_with_one_legend_entry_each():
    res = _result(2)
    fig = pca_cluster_figure(res, color_by="label")
    names = [t.name for t in drawn(fig)]
    assert names == ["real class 0", "real class 1", "real class 2", "generated class 0", "generated class 2",
                     "k-means cluster centres"]
    assert len(fig.data[0].x) == 2 and fig.data[3].marker.symbol == "x"
    np.testing.assert_allclose(fig.data[4].x, res["projection"].generated[:2, 0])
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert legend == ["class 0", "class 1", "class 2", "real: circles", "generated: crosses",
                      "k-means cluster centres"]  # not one per set
    assert "coloured by class (circles real, crosses generated)" in fig.layout.title.text
    by_cluster = pca_cluster_figure(res, color_by="kmeans")
    assert sum(len(t.x) for t in drawn(by_cluster)) == 8 and "silhouette 0.50" in by_cluster.layout.title.text
    assert "k-means cluster centres" not in [t.name for t in by_cluster.data]  # the colours show the clusters
    assert [t.name for t in by_cluster.data if t.showlegend is not False][:2] == ["k-means cluster 0",
                                                                                  "k-means cluster 1"]
    three = pca_cluster_figure(_result(3), color_by="label")
    assert all(isinstance(t, go.Scatter3d) for t in three.data)
    assert all(isinstance(t, go.Scatter3d) for t in pca_cluster_figure(_result(3)).data)
    with pytest.raises(ValueError, match="color_by"):
        pca_cluster_figure(res, color_by="gmm")


def test_write_html_works_offline(tmp_path):
    fig = loss_curves_figure({"a": ROWS_A})
    inline = write_html(fig, tmp_path / "a.html").read_text()
    assert 'src="http' not in inline and len(inline) > 1_000_000  # plotly.js is embedded, no CDN
    shared = write_html(fig, tmp_path / "d" / "b.html", self_contained=False).read_text()
    assert 'src="plotly.min.js"' in shared and 'src="http' not in shared
    assert (tmp_path / "d" / "plotly.min.js").is_file()


def test_log_ticks_are_plain_numbers_spanning_the_values():
    assert log_ticks([0.00505, 0.072]) == ([0.005, 0.01, 0.02, 0.05, 0.1], ["0.005", "0.01", "0.02", "0.05", "0.1"])
    assert log_ticks([25.5, 996.0])[1] == ["20", "50", "100", "200", "500", "1000"]
    assert log_ticks([0.3, 0.31]) == ([0.2, 0.5], ["0.2", "0.5"])
    assert log_ticks([0.0, -1.0, float("nan")]) == ([], [])


def test_noise_vs_blur_has_two_panels_with_readable_ticks_and_the_models_colours():
    """Before: the blur loss sat on a second log axis over the first; its labels ran together
    ('2 2 2 1 1 1 0.01111418 9 7') and each chart chose its own colours."""
    colours = model_colours(["blur", "default"])
    fig = family_curves_figure({"noise": {"default": ROWS_A}, "cold": {"blur": ROWS_B}}, key="loss", colours=colours)
    assert "overlaying" not in fig.layout.yaxis2.to_plotly_json()  # its own panel, not a second axis on top
    assert fig.layout.yaxis.domain[0] > fig.layout.yaxis2.domain[1]  # noise above, blur below
    assert list(fig.layout.yaxis.ticktext) == ["0.02", "0.05", "0.1"]  # noise losses 0.04–0.08
    assert list(fig.layout.yaxis2.ticktext) == ["0.2", "0.5"]  # blur losses 0.2–0.3
    by_name = {t.name: t for t in fig.data}
    assert by_name["blur"].line.color == colours["blur"] and by_name["default"].line.color == colours["default"]
    loss = loss_curves_figure({"default": ROWS_A, "blur": ROWS_B}, colours=colours)
    assert {t.name: t.line.color for t in loss.data} == {n: t.line.color for n, t in by_name.items()}
    assert list(loss.layout.yaxis.ticktext) == ["0.02", "0.05", "0.1", "0.2", "0.5"]


def test_final_fid_figure_has_a_bar_and_a_floor_per_model():
    fig = final_fid_figure({"default": {"fid": 601.8, "fid_floor": 22.5, "n": 250},
                            "unet": {"fid": 25.5, "fid_floor": 13.3, "n": 1000}, "none": {"fid": None}})
    bars, floors = fig.data
    assert list(bars.y) == [601.8, 25.5] and list(fig.layout.xaxis.ticktext) == ["default", "unet"]
    assert list(floors.y) == [22.5, 13.3] and list(floors.x) == list(bars.x)
    assert fig.layout.yaxis.type == "log"
    with pytest.raises(ValueError, match="at least one model"):
        final_fid_figure({"none": {"fid": None}})


def test_the_strip_heading_is_the_callers():
    fig = blur_schedule_figure(np.linspace(0, 1, 11), {0: np.zeros((28, 28)), 10: np.ones((28, 28))},
                               label="masked fraction", strip_title="x masked at t = 0, 10")
    assert [a.text for a in fig.layout.annotations] == ["masked fraction", "x masked at t = 0, 10"]
    assert fig.layout.yaxis.title.text == "masked fraction"


def test_the_strip_heading_leaves_room_for_the_t_axis_above_it():
    """Before: 'x blurred at t = …' sat on the σ_t plot's 't' axis title (46 px between the plots)."""
    fig = blur_schedule_figure(0.02 + 0.01 * np.arange(501), {0: np.zeros((28, 28)), 500: np.ones((28, 28))})
    plot_height = fig.layout.height - 100 - 80  # Plotly's default top and bottom margins
    heading = fig.layout.annotations[1]
    gap_px = (fig.layout.yaxis.domain[0] - heading.y) * plot_height
    assert gap_px >= 70  # tick labels (~20 px), the axis title "t" (~20 px) and the heading's own line
    assert fig.layout.xaxis.title.text == "t"


def test_schedule_figures_label_their_log_axis_and_show_a_custom_twin():
    """#26: the β_t axis read "2, 0.01, 5, 2" (Plotly's minor log labels), and a custom schedule equal to the
    default preset was drawn exactly under it."""
    from diffusion_core.figures import schedule_figure
    from diffusion_core.process.schedules import make_schedule

    default = make_schedule("linear", 1e-4, 0.02, 1000)
    fig = schedule_figure({"default": default, "model1": make_schedule("linear", 1e-5, 0.01, 1840),
                           "custom": make_schedule("linear", 1e-4, 0.02, 1000)}, "beta")
    axis = fig.layout.yaxis
    assert axis.type == "log" and list(axis.ticktext) == ["1e-05", "2e-05", "5e-05", "0.0001", "0.0002", "0.0005",
                                                          "0.001", "0.002", "0.005", "0.01", "0.02"]
    names = [t.name for t in fig.data]
    assert names == ["default", "model1", "custom (= default)"]
    assert fig.data[2].line.dash == "dash" and fig.data[0].line.dash is None
