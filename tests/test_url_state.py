"""Every page's settings in its address (#16 item 6): a link opens the exact view, and changing a setting updates
the address."""

import json

import numpy as np

from tests.app_support import app, charts, errors, no_exceptions, ship_tiny_model


def weight_chart(at) -> dict:
    return next(f for f in charts(at) if f["layout"]["title"]["text"].startswith("Loss weight"))


def test_a_schedules_link_opens_its_settings_and_changes_go_into_the_address():
    at = app("pages/2_Schedules.py", query={"weight_gamma": "2.0", "strip_digit": "3",
                                           "weight_choices": json.dumps(["eps · min-snr"])}).run()
    no_exceptions(at)
    assert at.number_input(key="weight_gamma").value == 2.0 and at.number_input(key="strip_digit").value == 3
    trace = weight_chart(at)["data"][0]
    assert trace["name"] == "eps · min-snr" and np.allclose(trace["y"], np.minimum(np.exp(trace["x"]), 2.0))
    at.number_input(key="strip_digit").set_value(5).run()
    assert at.query_params["strip_digit"] == "5" and json.loads(at.query_params["weight_gamma"]) == 2.0


def test_a_reverse_diffusion_link_runs_the_same_choice(tmp_path, monkeypatch):
    ship_tiny_model(tmp_path, monkeypatch, T=50)
    monkeypatch.setenv("DIFFUSION_LAB_RUNS", str(tmp_path / "runs"))
    at = app("pages/3_Reverse_diffusion.py", query={"rd_seed": "7", "rd_n": "2", "rd_sampler": '"ddim"',
                                                    "rd_steps_ddim": "5"}).run()
    no_exceptions(at)
    at.button(key="rd_run").click().run(timeout=120)
    assert any(c.value.startswith("Trajectory: ddim, 5 steps, η = 0, seed 7") for c in at.caption)


def test_bad_values_in_the_address_are_named_or_ignored_never_a_traceback(tmp_path, monkeypatch):
    ship_tiny_model(tmp_path, monkeypatch, T=50)
    monkeypatch.setenv("DIFFUSION_LAB_RUNS", str(tmp_path / "runs"))
    at = app("pages/3_Reverse_diffusion.py", query={"rd_n": "99", "rd_sampler": '"nope"',
                                                    "rd_seed": '{"a": 1}'}).run()
    no_exceptions(at)
    assert "Images must be a whole number from 1 to 16; got 99" in errors(at)  # named under its box
    assert at.selectbox(key="rd_sampler").value != "nope"  # not a sampler: the default stays
    assert any("Ignored settings in the address that are not plain values: rd_seed" in i.value for i in at.info)


def test_every_page_reads_its_settings_from_the_address():
    """Home, Train, Explore and Evaluate too: a link opens them with its settings; a value a widget cannot take
    (a model that does not exist) leaves the widget at its default, without a traceback."""
    at = app(None, query={"home_seed": "42"}).run()
    assert at.number_input(key="home_seed").value == 42
    assert [c.value for c in at.sidebar.code] == ["/?home_seed=42"]
    assert [b.label for b in at.sidebar.button] == ["Reset to defaults"]
    at = app("pages/1_Train.py", query={"train_epochs": "3", "train_arch": '"unet"',
                                        "train_prediction": '"v"'}).run()
    no_exceptions(at)
    assert at.number_input(key="train_epochs").value == 3 and at.selectbox(key="train_arch").value == "unet"
    assert at.selectbox(key="train_prediction").value == "v"
    at = app("pages/5_Explore.py", query={"ex_k": "4"}).run(timeout=120)
    no_exceptions(at)
    assert at.query_params["ex_k"] == "4"
    at = app("pages/6_Evaluate.py", query={"ev_models": json.dumps(["shipped:nope"])}).run()
    no_exceptions(at)


def test_every_page_draws_its_settings_link_and_reset_through_url_state():
    """The sidebar's link and Reset come from url_state, so every page file (and Home) calls it (AppTest runs of
    pages below and in the page tests show them)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for path in [root / "streamlit_app.py", *sorted((root / "pages").glob("[0-9]_*.py"))]:
        calls = [n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)
                 and getattr(n.func, "id", None) == "url_state"]
        assert calls, f"{path.name} does not call url_state"


def test_the_link_shows_the_view_as_it_is_and_reset_restores_the_defaults(tmp_path, monkeypatch):
    ship_tiny_model(tmp_path, monkeypatch, T=50)
    monkeypatch.setenv("DIFFUSION_LAB_RUNS", str(tmp_path / "runs"))
    at = app("pages/3_Reverse_diffusion.py").run()
    assert [c.value for c in at.sidebar.code] == ["/Reverse_diffusion?model=shipped%3Atiny"]  # the model picked
    at.number_input(key="rd_seed").set_value(7).run()
    at.selectbox(key="rd_sampler").set_value("ddim").run()
    link = at.sidebar.code[0].value
    assert "rd_seed=7" in link and "rd_sampler=%22ddim%22" in link and "model=shipped%3Atiny" in link
    at.button(key="rd_run").click().run(timeout=120)
    assert "rd_result" in at.session_state
    at.sidebar.button(key="_reset_reverse").click().run()
    no_exceptions(at)
    assert at.number_input(key="rd_seed").value == 0 and at.selectbox(key="rd_sampler").value == "dpm++2m-sde"
    assert "rd_result" not in at.session_state  # the run shown is gone too: the page as a first visit shows it
    assert [c.value for c in at.sidebar.code] == ["/Reverse_diffusion?model=shipped%3Atiny"]



def test_the_link_holds_only_what_differs_from_the_defaults():
    """#26: the Train page's address ran to ~900 characters (every setting, defaults included). Settings still at
    the value the page opens with (given the others: the recipe's epochs) stay out; a changed one goes in (and
    stays, with its value, once there: it may be what restored the view)."""
    at = app("pages/1_Train.py").run()
    at.run()  # a second run: the widgets exist, so their defaults are known
    assert dict(at.query_params) == {}
    at.radio(key="train_recipe").set_value("report").run()
    at.run()
    # the report's recipe opens at its own epochs (100): the recipe alone says it
    assert dict(at.query_params) == {"train_recipe": '"report"'}
    at.number_input(key="train_epochs").set_value(30).run()
    assert dict(at.query_params) == {"train_recipe": '"report"', "train_epochs": "30"}
    at.number_input(key="train_epochs").set_value(100).run()  # back at the recipe's own: the address keeps it
    assert dict(at.query_params) == {"train_recipe": '"report"', "train_epochs": "100"}
    short = app("pages/1_Train.py", query={"train_recipe": '"report"'}).run()
    assert short.number_input(key="train_epochs").value == 100  # the short link opens the same view
    assert short.radio(key="train_recipe").value == "report"


def test_a_link_opens_a_tab_and_the_first_tab_stays_out_of_the_address():
    """#29: a lesson's link opens Edit on its Inpainting tab and Evaluate on Guidance (linked_tabs); the tab
    each page opens on by itself is not written into the address."""
    at = app("pages/8_Edit.py", query={"ed_tab": '"Inpainting"'}).run(timeout=120)
    no_exceptions(at)
    assert at.session_state["ed_tab"] == "Inpainting" and at.query_params["ed_tab"] == '"Inpainting"'
    at = app("pages/6_Evaluate.py").run(timeout=120)
    assert at.session_state["ev_tab"] == "Loss" and "ev_tab" not in at.query_params


def test_the_degradations_t_and_parameters_and_edits_guidance_travel_in_the_address():
    """#29's lessons found these left out of the address: a link could not set the blur's T or σ range, or Edit's
    guidance."""
    at = app("pages/4_Degradations.py", query={"deg_T_blur": "100", "deg_blur_sigma_max": "3.0"}).run(timeout=120)
    no_exceptions(at)
    assert at.number_input(key="deg_T_blur").value == 100 and at.number_input(key="deg_blur_sigma_max").value == 3.0
    at.number_input(key="deg_blur_sigma_min").set_value(0.5).run()
    assert json.loads(at.query_params["deg_blur_sigma_min"]) == 0.5 and at.query_params["deg_T_blur"] == "100"
    at = app("pages/8_Edit.py", query={"ed_tab": '"Guidance"', "ed_g_scale": "2.5", "ed_g_digit": "7"}).run(timeout=120)
    no_exceptions(at)
    assert at.slider(key="ed_g_scale").value == 2.5 and at.selectbox(key="ed_g_digit").value == 7
