"""Schedules against independent formulas (numpy, float64) and the report's observations."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffusion_core.process.schedules import MAX_T, PRESETS, make_schedule, preset_schedule


def numpy_linear(beta1, beta2, T):
    t = np.arange(T + 1, dtype=np.float64)
    betas = beta1 + (beta2 - beta1) * t / T
    return betas, np.cumprod(1.0 - betas)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_match_the_reports_linear_formula(name):
    p = PRESETS[name]
    s = preset_schedule(name)
    betas, abar = numpy_linear(p["beta1"], p["beta2"], p["T"])
    assert s.betas.shape == (p["T"] + 1,)
    np.testing.assert_allclose(s.betas.numpy(), betas, rtol=1e-6)
    np.testing.assert_allclose(s.alpha_bars.numpy(), abar, rtol=2e-4, atol=1e-9)
    np.testing.assert_allclose(s.alphas.numpy(), 1 - betas, rtol=1e-6)


def test_each_preset_ends_close_to_pure_noise():
    # ᾱ_T ≈ exp(−Σβ) for small β: each preset is designed so that Σβ ≈ 9–10
    for name in PRESETS:
        s = preset_schedule(name)
        sum_beta = float(s.betas.double().sum())
        assert 8.5 < sum_beta < 10.5
        assert float(s.alpha_bars[-1]) < 2e-4


def test_model2_at_T_1000_only_gets_forty_percent_of_the_way_to_noise():
    s = make_schedule("linear", 1e-5, 1e-3, 1000)
    abar_T = float(s.alpha_bars[-1])
    # Σβ = 1001 · (β1 + β2)/2 = 0.5055, so ᾱ_T ≈ e^{−0.5055} ≈ 0.60: most signal survives
    assert abar_T == pytest.approx(math.exp(-1001 * (1e-5 + 1e-3) / 2), rel=1e-3)
    assert 0.58 < abar_T < 0.62


def test_snr_and_log_snr_follow_alpha_bar():
    s = preset_schedule("default")
    ab = s.alpha_bars.double().numpy()
    np.testing.assert_allclose(s.snr.numpy(), ab / (1 - ab), rtol=1e-4)
    np.testing.assert_allclose(s.log_snr.numpy(), np.log(ab / (1 - ab)), rtol=1e-4, atol=1e-4)
    assert np.all(np.diff(s.snr.numpy()) < 0)


def test_cosine_follows_nichol_dhariwal():
    T, s_off = 1000, 0.008
    s = make_schedule("cosine", T=T)
    t = np.arange(T + 1) / T
    f = np.cos((t + s_off) / (1 + s_off) * np.pi / 2) ** 2
    expected = f / f[0]
    betas = s.betas.numpy()
    assert betas[0] == 0 and betas.max() <= 0.999 + 1e-7
    uncapped = np.cumprod(1 - betas) < 1  # compare where the 0.999 cap has not bitten
    capped_from = int(np.argmax(betas >= 0.999 - 1e-7)) if (betas >= 0.999 - 1e-7).any() else T + 1
    np.testing.assert_allclose(s.alpha_bars.numpy()[:capped_from], expected[:capped_from], rtol=1e-3, atol=1e-6)
    assert uncapped[1:].all()


def test_quadratic_and_sigmoid_hit_their_endpoints_and_increase():
    for kind in ("quadratic", "sigmoid"):
        s = make_schedule(kind, 1e-4, 0.02, 500)
        b = s.betas.double().numpy()
        assert b[0] == pytest.approx(1e-4, rel=1e-5) and b[-1] == pytest.approx(0.02, rel=1e-5)
        assert np.all(np.diff(b) > 0)
    q = make_schedule("quadratic", 1e-4, 0.02, 500).betas.double().numpy()
    t = np.arange(501) / 500
    np.testing.assert_allclose(q, (np.sqrt(1e-4) + (np.sqrt(0.02) - np.sqrt(1e-4)) * t) ** 2, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"beta1": 0.0}, "beta1"),
        ({"beta1": -1e-4}, "beta1"),
        ({"beta2": 1.0}, "beta2"),
        ({"beta2": float("nan")}, "beta2"),
        ({"beta1": 0.02, "beta2": 1e-4}, "smaller than beta2"),
        ({"T": 0}, "T must be"),
        ({"T": MAX_T + 1}, "T must be"),
        ({"T": 10.5}, "T must be"),
        ({"kind": "exponential"}, "schedule kind"),
    ],
)
def test_bad_parameters_name_the_parameter_and_range(kwargs, word):
    args = {"kind": "linear", "beta1": 1e-4, "beta2": 0.02, "T": 100} | kwargs
    with pytest.raises(ValueError, match=word):
        make_schedule(**args)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["linear", "quadratic", "sigmoid", "cosine"]),
    b1=st.floats(1e-6, 0.5),
    ratio=st.floats(1.001, 100.0),
    T=st.integers(1, 3000),
)
def test_valid_schedules_give_decreasing_alpha_bar_in_unit_interval(kind, b1, ratio, T):
    b2 = b1 * ratio
    if b2 >= 1 and kind != "cosine":
        with pytest.raises(ValueError, match="beta2"):
            make_schedule(kind, b1, b2, T)
        return
    try:
        s = make_schedule(kind, b1, b2, T)
    except ValueError as exc:  # only allowed when the schedule would underflow ᾱ_T
        assert "destroy the signal" in str(exc)
        return
    ab = s.alpha_bars.double().numpy()
    assert ab.shape == (T + 1,)
    assert np.all((ab > 0) & (ab <= 1)) and np.all(np.diff(ab) <= 0)


def test_schedules_that_underflow_alpha_bar_are_refused():
    with pytest.raises(ValueError, match="lower beta2 or T"):
        make_schedule("linear", 0.375, 0.75, 120)  # ᾱ_T ≈ e^{−67}


@settings(max_examples=60, deadline=None)
@given(b1=st.floats(allow_nan=True, allow_infinity=True), b2=st.floats(allow_nan=True, allow_infinity=True))
def test_validator_accepts_exactly_the_documented_range(b1, b2):
    ok = 0 < b1 < b2 < 1 and np.log1p(-numpy_linear(b1, b2, 10)[0]).sum() > math.log(1e-20)
    if ok:
        assert make_schedule("linear", b1, b2, 10).betas.shape == (11,)
    else:
        with pytest.raises(ValueError):
            make_schedule("linear", b1, b2, 10)
