"""Inpainting (#16 item 2): replacement and RePaint leave the known pixels exactly the conditioning at t = 0,
RePaint's schedule follows its paper, masks from presets and painted strokes, bad masks named, and the page."""

import pytest
import torch

from diffusion_core.editing.inpainting import (
    MASKS,
    cold_restore,
    compare,
    disc_mask,
    inpaint,
    mask_from_strokes,
    preset_mask,
    repaint_schedule,
)
from diffusion_core.process.degradations import make_degradation
from diffusion_core.process.schedules import preset_schedule
from tests.app_support import app, errors, no_exceptions, ship_tiny_model
from tests.test_cold import Constant, Identity
from tests.test_cold_views import cold
from tests.test_editing import oracle_checkpoint
from tests.test_samplers import GaussianOracleEps, OracleEps


@pytest.mark.parametrize("method", ["replacement", "RePaint"])
@pytest.mark.parametrize("mask_name", ["left half", "random pixels"])
def test_known_pixels_come_back_exactly_and_an_oracle_fills_the_rest(method, mask_name):
    schedule = preset_schedule("default")
    x_star = torch.rand((1, 1, 28, 28), generator=torch.Generator().manual_seed(1)) - 0.5
    mask = preset_mask(mask_name, seed=2)
    out = inpaint(oracle_checkpoint(OracleEps(x_star, schedule)), x_star.expand(3, 1, 28, 28), mask, method,
                  steps=20, seed=0, jump=4, resample=3)
    known = mask.bool().expand_as(out)
    assert torch.equal(out[known], x_star.expand_as(out)[known])  # exactly the conditioning
    assert torch.allclose(out, x_star.expand_as(out), atol=1e-3)  # the one-image oracle fills in x* itself
    gauss = inpaint(oracle_checkpoint(GaussianOracleEps(0.1, 0.2, schedule)), x_star, mask, method, steps=20)
    assert torch.equal(gauss[mask.bool()], x_star[mask.bool()]) and torch.isfinite(gauss).all()


def test_repaint_schedule_follows_the_paper():
    """get_schedule_jump(t_T=10, jump_length=5, jump_n_sample=3): down to 0, back up 5, twice more."""
    assert repaint_schedule(10, 5, 3) == [10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 4, 3, 2, 1, 0,
                                          1, 2, 3, 4, 5, 4, 3, 2, 1, 0]
    s = repaint_schedule(50, 5, 5)
    assert s[0] == 50 and s[-1] == 0 and all(abs(a - b) == 1 for a, b in zip(s, s[1:], strict=False))
    assert sum(b < a for a, b in zip(s, s[1:], strict=False)) == 50 + 9 * 4 * 5  # 9 jump points × 4 × 5 back down
    assert repaint_schedule(10, 5, 1) == list(range(10, -1, -1))  # one sample per point: plain descent
    with pytest.raises(ValueError, match="RePaint needs 1 ≤ jump ≤ steps"):
        repaint_schedule(10, 11, 2)


def test_masks_presets_strokes_and_bad_ones():
    for name in MASKS:
        m = preset_mask(name)
        assert m.shape == (1, 1, 28, 28) and 0 < float(m.mean()) < 1
    assert float(preset_mask("left half")[..., :14].sum()) == 0 and float(preset_mask("left half")[..., 14:].min()) == 1
    stroke = {"objects": [{"type": "path", "strokeWidth": 24, "path": [["M", 0, 112], ["L", 224, 112]]}]}
    m = mask_from_strokes(stroke, 224)
    assert float(m[0, 0, 14].max()) == 0 and float(m[0, 0, 0].min()) == 1  # a band across the middle row
    assert float(mask_from_strokes(None, 224).min()) == 1
    ckpt = oracle_checkpoint(GaussianOracleEps(0.1, 0.2, preset_schedule("default")))
    x = torch.zeros(1, 1, 28, 28)
    with pytest.raises(ValueError, match="the mask keeps every pixel: nothing is left to fill in"):
        inpaint(ckpt, x, torch.ones(1, 1, 28, 28))
    with pytest.raises(ValueError, match="the mask keeps no pixel"):
        inpaint(ckpt, x, torch.zeros(1, 1, 28, 28))
    with pytest.raises(ValueError, match="mask must be one of"):
        preset_mask("heart")


def test_compare_scores_each_method_over_seeds():
    schedule = preset_schedule("default")
    x_star = torch.rand((1, 1, 28, 28), generator=torch.Generator().manual_seed(1)) - 0.5
    scores = compare(oracle_checkpoint(OracleEps(x_star, schedule)), x_star, preset_mask("centre box"), seeds=2,
                     steps=10)
    assert [s.method for s in scores] == ["replacement", "RePaint"]
    assert all(s.rmse < 1e-3 and s.ssim > 0.999 and s.images.shape == (2, 1, 28, 28) for s in scores)


def test_the_cold_mask_model_fills_its_own_disc():
    """The third method: the mask model's disc at t is the mask (ρ_t grows with t); a perfect restorer gives x
    back through Algorithm 2; a restorer that only echoes its input leaves the disc at the fill; known pixels are
    x exactly; a noise model or a blur model is refused by name."""
    mask_kind = make_degradation("mask", T=20)
    x = torch.rand((2, 1, 28, 28), generator=torch.Generator().manual_seed(3)) - 0.5
    small, large = disc_mask(cold(Identity(), mask_kind), 5), disc_mask(cold(Identity(), mask_kind), 15)
    assert torch.equal(small, 1 - mask_kind.masks(28, 28)[5].view(1, 1, 28, 28))
    assert 0 < float((1 - small).sum()) < float((1 - large).sum()) < 28 * 28 and bool((small >= large).all())
    assert float(small[0, 0, 14, 14]) == 0 and float(small[0, 0, 0, 0]) == 1  # the centre is filled in
    restored, known = cold_restore(cold(Constant(x), mask_kind), x, 15)
    assert torch.equal(known, large) and torch.allclose(restored, x, atol=1e-6)
    echoed, _ = cold_restore(cold(Identity(), mask_kind), x, 15)
    assert torch.equal(echoed[known.bool().expand_as(x)], x[known.bool().expand_as(x)])  # known pixels exact
    assert torch.allclose(echoed[~known.bool().expand_as(x)], torch.tensor(-0.5))  # the echo keeps the black fill
    with pytest.raises(ValueError, match="needs a cold-diffusion mask model; mem restores blur"):
        cold_restore(cold(Identity(), make_degradation("blur", T=20)), x, 5)
    with pytest.raises(ValueError, match="the disc's step t must be from 1 to 20"):
        disc_mask(cold(Identity(), mask_kind), 0)
    noise = oracle_checkpoint(GaussianOracleEps(0.1, 0.2, preset_schedule("default")))
    with pytest.raises(ValueError, match="restores noise"):
        disc_mask(noise, 5)


def test_compare_adds_the_cold_method_on_its_disc():
    mask_kind = make_degradation("mask", T=20)
    schedule = preset_schedule("default")
    x_star = torch.rand((1, 1, 28, 28), generator=torch.Generator().manual_seed(1)) - 0.5
    mask_model = cold(Constant(x_star.expand(2, 1, 28, 28)), mask_kind)
    scores = compare(oracle_checkpoint(OracleEps(x_star, schedule)), x_star, disc_mask(mask_model, 12), seeds=2,
                     steps=10, cold=mask_model, cold_t=12)
    assert [s.method for s in scores] == ["replacement", "RePaint", "cold mask model"]
    assert all(s.rmse < 1e-3 and s.ssim > 0.999 for s in scores)


def test_the_inpainting_tab(tmp_path, monkeypatch):
    ship_tiny_model(tmp_path, monkeypatch, T=50)
    monkeypatch.setenv("DIFFUSION_LAB_RUNS", str(tmp_path / "runs"))
    at = app("pages/8_Edit.py").run(timeout=60)
    at.number_input(key="ed_paint_steps").set_value(10)
    at.button(key="ed_paint_run").click().run(timeout=120)
    no_exceptions(at)
    assert not errors(at)
    table = at.dataframe[0].value
    assert table["method"].tolist() == ["replacement", "RePaint"] and (table["SSIM"] <= 1).all()
    at.selectbox(key="ed_paint_mask").set_value("paint it").run()  # nothing painted yet: every pixel known
    at.button(key="ed_paint_run").click().run(timeout=120)
    assert any("the mask keeps every pixel" in e for e in errors(at))


def test_the_inpainting_tab_compares_three_ways_with_a_cold_mask_model(tmp_path, monkeypatch):
    from diffusion_core.io.checkpoints import save_checkpoint
    from diffusion_core.models import build_model
    from tests.app_support import TINY_CNN

    shipped = ship_tiny_model(tmp_path, monkeypatch, T=50)
    monkeypatch.setenv("DIFFUSION_LAB_RUNS", str(tmp_path / "runs"))
    at = app("pages/8_Edit.py").run(timeout=60)
    assert any("No cold-diffusion mask model" in c.value for c in at.caption)  # and how to get one
    config = {"model": TINY_CNN, "diffusion": {"type": "cold", "degradation": make_degradation("mask", T=20).config(),
                                               "loss": "l2"}, "dataset": "mnist", "epochs": 1}
    save_checkpoint(shipped / "tiny-mask", build_model(TINY_CNN), config)
    at = app("pages/8_Edit.py").run(timeout=60)
    assert at.selectbox(key="ed_paint_mask").value == "the cold model's disc"  # offered first when there is one
    at.slider(key="ed_paint_disc_t").set_value(10)
    at.number_input(key="ed_paint_steps").set_value(10)
    at.button(key="ed_paint_run").click().run(timeout=120)
    no_exceptions(at)
    assert not errors(at)
    assert at.dataframe[0].value["method"].tolist() == ["replacement", "RePaint", "cold mask model"]
    at.selectbox(key="ed_paint_mask").set_value("left half").run()
    assert any("fills only its own disc" in c.value for c in at.caption)
