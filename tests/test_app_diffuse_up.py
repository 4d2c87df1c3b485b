"""Reverse diffusion's Diffuse ↑: re-noise the frame shown by n steps and run down again (#16 item 3)."""

from __future__ import annotations

from tests.app_support import app, errors, no_exceptions, ship_tiny_model

PAGE = "pages/3_Reverse_diffusion.py"


def frames(at) -> list[str]:
    return list(at.select_slider[0].options)


def test_diffuse_up_from_the_last_frame_then_down_again(tmp_path, monkeypatch):
    ship_tiny_model(tmp_path, monkeypatch, T=50)
    monkeypatch.setenv("DIFFUSION_LAB_RUNS", str(tmp_path / "runs"))
    at = app(PAGE).run(timeout=60)
    at.button(key="rd_run").click().run(timeout=120)
    no_exceptions(at)
    assert frames(at)[0] == "t = 50" and frames(at)[-1] == "t = 0"
    at.select_slider[0].set_value(len(frames(at)) - 1).run()  # the final samples, t = 0
    at.number_input(key="rd_up").set_value(20).run()
    at.button(key="rd_diffuse_button").click().run(timeout=120)
    no_exceptions(at)
    assert not errors(at)
    assert frames(at)[0] == "t = 20" and frames(at)[-1] == "t = 0"  # went up to t = 20, and down again
    assert any("diffused up from t = 0 by 20 steps to t = 20" in c.value for c in at.caption)
    at.number_input(key="rd_up").set_value(500).run()  # more than T: named, and Diffuse ↑ is refused
    assert "Steps up must be a whole number from 1 to 50; got 500" in errors(at)
    assert at.button(key="rd_diffuse_button").disabled
    at.number_input(key="rd_up").set_value(45).run()  # from the frame shown (t = 20): capped at T = 50
    at.button(key="rd_diffuse_button").click().run(timeout=120)
    assert frames(at)[0] == "t = 50" and any("from t = 20 by 30 steps to t = 50" in c.value for c in at.caption)
