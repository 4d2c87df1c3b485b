"""Bad parameters: every numeric input out of range is refused with a message that names it — through
the CLI, through the validators (property-based, hypothesis) and through the pages' number inputs."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as hs

from diffusion_core.cli import main
from diffusion_core.models import build_model
from diffusion_core.process import GaussianProcess, SamplerChoice
from diffusion_core.process.degradations import MAX_KERNEL, make_degradation
from diffusion_core.process.degradations import MAX_T as DEG_MAX_T
from diffusion_core.process.schedules import MAX_T, make_schedule, validate_schedule_params
from diffusion_core.samplers import MAX_SAMPLES, validate_sample_count, validate_seed
from diffusion_core.samplers.base import spaced_timesteps
from diffusion_core.services import jobs
from diffusion_core.training.config import MAX_BATCH, MAX_EPOCHS, TrainConfig
from tests.app_support import TINY_CNN, app, errors, no_exceptions, shipped_folder, write_checkpoint

# ---------------------------------------------------------------- the CLI

TRAIN_CASES = [
    (["--schedule", "linear", "--beta1", "0"], "argument --beta1: must be a number with 0 < value < 1; got '0'"),
    (["--schedule", "linear", "--beta2", "1"], "argument --beta2: must be a number with 0 < value < 1; got '1'"),
    (["--schedule", "linear", "--beta1", "nan"], "argument --beta1: must be a number with 0 < value < 1"),
    (["--schedule", "linear", "--T", str(MAX_T + 1)], f"argument --T: must be an integer between 1 and {MAX_T}"),
    (["--lr", "2"], "argument --lr: must be a number with 0 < value ≤ 1"),
    (["--lr", "nan"], "argument --lr: must be a number with 0 < value ≤ 1"),
    (["--epochs", str(MAX_EPOCHS + 1)], f"argument --epochs: must be an integer between 1 and {MAX_EPOCHS}"),
    (["--batch-size", "0"], f"argument --batch-size: must be an integer between 1 and {MAX_BATCH}"),
    (["--seed", str(2**63)], "argument --seed: must be a non-negative integer below 2**63"),
    (["--ema", "1.5"], "argument --ema: must be a number with 0 < value < 1"),
    (["--limit", "0"], "argument --limit: must be an integer between 1"),
    (["--degradation", "blur", "--degradation-T", "0"],
     f"argument --degradation-T: must be an integer between 1 and {DEG_MAX_T}"),
    (["--degradation", "fade", "--degradation-T", str(DEG_MAX_T + 1)], "argument --degradation-T: must be an integer"),
    (["--degradation", "blur", "--degradation-param", "sigma_max=-1"], "sigma_max must be a number with 0.001 ≤"),
    (["--degradation", "blur", "--degradation-param", "sigma_max=inf"], "sigma_max must be a number"),
    (["--degradation", "noise-blur", "--degradation-param", "noise_std=2"], "noise_std must be a number"),
    (["--degradation", "mask", "--degradation-param", "fill=1.5"], "fill must be a number with 0.0 ≤ fill ≤ 1.0"),
    (["--degradation", "pixelate", "--degradation-param", "min_size=0"], "min_size must be an integer between 1"),
    (["--degradation", "cumulative-blur", "--degradation-param", "kernel_size=4"], "kernel_size must be an odd"),
    (["--degradation", "blur", "--degradation-param", "T=5"], "set ['T'] with --degradation"),
]


@pytest.mark.parametrize("args, message", TRAIN_CASES)
def test_cli_train_refuses_out_of_range_numbers(tmp_path, capsys, args, message):
    code = main(["train", "--out", str(tmp_path / "run"), "--quiet", "--no-download", *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "run").exists()  # refused before anything was written


SAMPLE_CASES = [
    (["--n", str(MAX_SAMPLES + 1)], f"argument --n: must be an integer between 1 and {MAX_SAMPLES}"),
    (["--seed", str(2**63)], "argument --seed: must be a non-negative integer below 2**63"),
    (["--sampler", "dpm++2m", "--steps", "-1"], "argument --steps: must be an integer between 1 and"),
    (["--sampler", "ddim", "--steps", "21"], "steps must be an integer between 1 and T=20"),  # this model's T
    (["--sampler", "dpm++2m", "--steps", "0"], "argument --steps: must be an integer between 1 and"),
    (["--sampler", "ddim", "--eta", "1.5"], "argument --eta: must be a number with 0 ≤ value ≤ 1"),
    (["--sampler", "ddim", "--eta", "nan"], "argument --eta: must be a number with 0 ≤ value ≤ 1"),
]


@pytest.mark.parametrize("args, message", SAMPLE_CASES)
def test_cli_sample_refuses_out_of_range_numbers(tmp_path, capsys, args, message):
    ckpt = write_checkpoint(tmp_path, "tiny", T=20)
    code = main(["sample", str(ckpt), "--out", str(tmp_path / "s"), *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "s.npy").exists()


# ---------------------------------------------------------------- validators (property-based)

ANY = hs.one_of(hs.floats(allow_nan=True, allow_infinity=True), hs.integers(-10**6, 10**6), hs.booleans(),
                hs.none(), hs.text(max_size=3))


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# kind, parameter, accepted iff (with every other parameter at its default: blur's σ_min 0.02, σ_max 5.02)
DEGRADATION_RANGES = [
    ("blur", "sigma_min", lambda v: is_number(v) and 1e-3 <= v <= 5.02),
    ("blur", "sigma_max", lambda v: is_number(v) and 0.02 <= v <= 100),
    ("noise-blur", "noise_std", lambda v: is_number(v) and 0 < v <= 1),
    ("cumulative-blur", "sigma", lambda v: is_number(v) and 1e-3 <= v <= 100),
    ("mask", "fill", lambda v: is_number(v) and 0 <= v <= 1),
    ("fade", "target", lambda v: is_number(v) and 0 <= v <= 1),
    ("pixelate", "min_size", lambda v: is_int(v) and 1 <= v <= 64),
]


@pytest.mark.parametrize("kind, name, ok", DEGRADATION_RANGES, ids=[f"{k}-{n}" for k, n, _ in DEGRADATION_RANGES])
@settings(max_examples=40, deadline=None)
@given(value=hs.one_of(ANY, hs.floats(-1, 110), hs.integers(-2, 70)))
def test_degradation_strength_accepted_exactly_in_range(kind, name, ok, value):
    if ok(value):
        d = make_degradation(kind, T=8, **{name: value})
        x = torch.rand(2, 1, 28, 28) - 0.5
        noise = d.draw_noise(tuple(x.shape), torch.Generator().manual_seed(0))
        assert torch.equal(d(x, 0, noise), x.float())  # D(x, 0) = x
        assert torch.isfinite(d(x, 8, noise)).all()
    else:  # the message names the parameter (blur's σ_min above σ_max: "sigma_max must be ≥ sigma_min")
        with pytest.raises(ValueError, match=f"^{kind} degradation: .*{name}"):
            make_degradation(kind, T=8, **{name: value})


def test_a_vanishing_cumulative_blur_sigma_is_refused_or_harmless():
    try:
        d = make_degradation("cumulative-blur", T=8, sigma=1e-300)
    except ValueError as exc:
        assert "sigma" in str(exc)
        return
    assert torch.isfinite(d(torch.zeros(1, 1, 28, 28), 8)).all()


@settings(max_examples=60, deadline=None)
@given(kind=hs.sampled_from(["blur", "mask", "fade", "pixelate"]), T=hs.one_of(ANY, hs.integers(-5, DEG_MAX_T + 5)))
def test_degradation_T_accepted_exactly_in_range(kind, T):
    if T is None:  # None means "the kind's default T"
        return
    if is_int(T) and 1 <= T <= DEG_MAX_T:
        assert make_degradation(kind, T=T).T == T
    else:
        with pytest.raises(ValueError, match=f"degradation T must be an integer between 1 and {DEG_MAX_T}"):
            make_degradation(kind, T=T)


@settings(max_examples=60, deadline=None)
@given(kind=hs.sampled_from(["blur", "cumulative-blur"]),
       size=hs.one_of(ANY, hs.integers(-3, MAX_KERNEL + 4)))
def test_blur_kernel_size_outside_odd_range_is_refused(kind, size):
    lo = 1 if kind == "blur" else 3
    if (size is None and kind == "blur") or (is_int(size) and lo <= size <= MAX_KERNEL and size % 2):
        return  # accepted (usability on a 28×28 image: see the next test)
    with pytest.raises(ValueError, match=f"{kind} degradation: kernel_size must be an odd integer"):
        make_degradation(kind, T=8, kernel_size=size)


@pytest.mark.parametrize("size", [55, 57, 101, 255])
def test_an_accepted_blur_kernel_works_on_a_digit(size):
    try:
        d = make_degradation("blur", T=8, kernel_size=size)
    except ValueError as exc:
        assert "kernel_size" in str(exc)  # refusing it up front is fine too
        return
    d(torch.zeros(1, 1, 28, 28), 8)


@settings(max_examples=80, deadline=None)
@given(n=hs.one_of(ANY, hs.integers(-3, MAX_SAMPLES + 3)))
def test_sample_count_validator(n):
    if is_int(n) and 1 <= n <= MAX_SAMPLES:
        validate_sample_count(n)
    else:
        with pytest.raises(ValueError, match=f"number of samples must be an integer between 1 and {MAX_SAMPLES}"):
            validate_sample_count(n)


@settings(max_examples=80, deadline=None)
@given(seed=hs.one_of(ANY, hs.integers(-3, 2**64)))
def test_seed_validator(seed):
    if is_int(seed) and 0 <= seed < 2**63:
        validate_seed(seed)
    else:
        with pytest.raises(ValueError, match="seed must be a non-negative integer below 2"):
            validate_seed(seed)


@settings(max_examples=80, deadline=None)
@given(T=hs.integers(1, 3000), steps=hs.one_of(ANY, hs.integers(-3, 3003)))
def test_step_count_validator_and_the_timesteps_it_gives(T, steps):
    if is_int(steps) and 1 <= steps <= T:
        ts = spaced_timesteps(T, steps)
        assert len(ts) == steps and ts[0] == T and ts[-1] >= 1
        assert all(a > b for a, b in zip(ts, ts[1:], strict=False))  # strictly decreasing t
    else:
        with pytest.raises(ValueError, match=f"steps must be an integer between 1 and T={T}"):
            spaced_timesteps(T, steps)


@settings(max_examples=40, deadline=None)
@given(eta=hs.floats(allow_nan=True, allow_infinity=True))
def test_ddim_eta_validator(eta):
    torch.manual_seed(0)
    process = GaussianProcess(make_schedule("linear", 1e-4, 0.02, 4))
    choice = SamplerChoice("ddim", 2, knobs={"eta": eta})
    if 0 <= eta <= 1:
        assert next(process.frames(build_model(TINY_CNN), choice, 1)).t == 4
    else:  # refused when the run is asked for, before anything is drawn
        with pytest.raises(ValueError, match=r"eta \(DDIM η\) must be a number from 0 to 1"):
            process.frames(build_model(TINY_CNN), choice, 1)


@settings(max_examples=60, deadline=None)
@given(T=hs.one_of(ANY, hs.integers(-3, MAX_T + 3)))
def test_schedule_T_validator(T):
    ok = (is_int(T) or (isinstance(T, float) and T.is_integer())) and 1 <= T <= MAX_T
    if ok:
        validate_schedule_params("linear", 1e-4, 0.02, T)
    else:
        with pytest.raises(ValueError, match=f"T must be an integer between 1 and {MAX_T}"):
            validate_schedule_params("linear", 1e-4, 0.02, T)


@settings(max_examples=60, deadline=None)
@given(lr=hs.one_of(hs.floats(allow_nan=True, allow_infinity=True), hs.floats(-1, 2)),
       epochs=hs.integers(-2, MAX_EPOCHS + 2), batch=hs.integers(-2, MAX_BATCH + 2))
def test_training_numbers_validator(lr, epochs, batch):
    cfg = TrainConfig(model=TINY_CNN, lr=lr, epochs=epochs, batch_size=batch)
    problems = [name for name, ok in (("epochs", 1 <= epochs <= MAX_EPOCHS), ("batch_size", 1 <= batch <= MAX_BATCH),
                                      ("lr", math.isfinite(lr) and 0 < lr <= 1)) if not ok]
    if not problems:
        cfg.validate()
    else:
        with pytest.raises(ValueError, match=f"^{problems[0]} must be"):
            cfg.validate()


# ---------------------------------------------------------------- the pages' number inputs


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    return shipped_folder(tmp_path, monkeypatch)


@pytest.fixture
def launched(monkeypatch):
    """Capture the CLI arguments of jobs started from a page instead of launching a process."""
    calls: list[list[str]] = []

    def spawn(run_dir, cli_args, job, address=None):
        calls.append(cli_args)
        from diffusion_core.io.files import atomic_write_json

        atomic_write_json(run_dir / "job.json", {**job, "pid": 0, "command": cli_args, "started": 0.0})
        return 0

    monkeypatch.setattr(jobs, "_launch", spawn)
    return calls


# key: (too low, too high) for every number input of the Train page's noise form
TRAIN_INPUTS = {
    "train_limit": (-1, 100_001), "train_epochs": (0, MAX_EPOCHS + 1), "train_batch": (0, MAX_BATCH + 1),
    "train_lr": (0.0, 2.0), "train_ema": (0.1, 1.0), "train_seed": (-1, 2**31),
    "train_beta1": (-0.1, 1.5), "train_beta2": (-0.1, 1.5), "train_T": (0, MAX_T + 1),
}


@pytest.mark.parametrize("side", [0, 1], ids=["too-low", "too-high"])
@pytest.mark.parametrize("key", list(TRAIN_INPUTS))
def test_train_page_number_inputs_refuse_out_of_range_values(shipped, launched, key, side):
    """A bad value stays in its box (never swapped for the last valid one): Start refuses it with a
    message naming the field, and nothing is launched; fixed, the run starts with what was typed."""
    at = app("pages/1_Train.py").run()
    at.radio(key="train_schedule_mode").set_value("Custom").run()
    at.selectbox(key="train_kind").set_value("linear").run()  # a kind with β1 and β2 (the quick recipe's is cosine)
    good = at.number_input(key=key).value
    at.number_input(key=key).set_value(TRAIN_INPUTS[key][side]).run()
    no_exceptions(at)
    assert at.number_input(key=key).value == TRAIN_INPUTS[key][side]
    label = at.number_input(key=key).label
    at.button(key="train_start").click().run()
    no_exceptions(at)
    assert launched == [] and any(e.startswith("Could not start training") and label in e for e in errors(at)), \
        errors(at)
    at.number_input(key=key).set_value(good).run()
    at.button(key="train_start").click().run()
    assert len(launched) == 1 and not any(e.startswith("Could not start training") for e in errors(at))


@pytest.mark.parametrize("beta1, beta2, message", [
    (0.0, 0.02, "beta1 must be a number with 0 < beta1 < 1; got 0.0"),
    (1e-4, 1.0, "beta2 must be a number with 0 < beta2 < 1; got 1.0"),
])
def test_train_page_betas_at_the_edges_are_errors(shipped, launched, beta1, beta2, message):
    at = app("pages/1_Train.py").run()
    at.radio(key="train_schedule_mode").set_value("Custom").run()
    at.selectbox(key="train_kind").set_value("linear").run()
    at.number_input(key="train_beta1").set_value(beta1)
    at.number_input(key="train_beta2").set_value(beta2)
    at.button(key="train_start").click().run()
    no_exceptions(at)
    # named as typed, under the schedule, and again by Start, which starts nothing
    assert errors(at) == [f"This schedule cannot be trained: {message}", f"Could not start training: {message}"]
    assert launched == []


@pytest.mark.parametrize("params, message", [
    ("sigma_max=-1", "blur degradation: sigma_max must be a number with 0.001 ≤ sigma_max ≤ 100.0; got -1"),
    ("sigma_min=9", "blur degradation: sigma_max must be ≥ sigma_min"),
    ("sigma_max=1e999", "blur degradation: sigma_max must be a number"),
])
def test_train_page_degradation_strength_out_of_range_is_an_error(shipped, launched, params, message):
    at = app("pages/1_Train.py").run()
    at.radio(key="train_process").set_value("Cold (degradation)").run()
    at.text_input(key="train_degradation_params").set_value(params)
    at.button(key="train_start").click().run()
    no_exceptions(at)
    assert len(errors(at)) == 1 and message in errors(at)[0] and launched == []
    at.number_input(key="train_degradation_T_blur").set_value(DEG_MAX_T + 1)  # a bad T is named as well
    at.button(key="train_start").click().run()
    assert any(f"Degradation steps T must be a whole number from 1 to {DEG_MAX_T:,}" in e for e in errors(at))
    assert launched == []


@pytest.mark.parametrize("key, bad, label", [("rd_n", 0, "Images"), ("rd_n", 17, "Images"), ("rd_seed", -1, "Seed"),
                                             ("rd_seed", 2**31, "Seed"), ("rd_steps_ddim", 0, "Steps"),
                                             ("rd_steps_ddim", 21, "Steps")])  # at most 16 images, T = 20
def test_reverse_page_refuses_out_of_range_images_steps_and_seed(shipped, key, bad, label):
    write_checkpoint(shipped, "tiny", T=20)
    at = app("pages/3_Reverse_diffusion.py").run()
    at.selectbox(key="rd_sampler").set_value("ddim").run()
    good = at.number_input(key=key).value
    at.number_input(key=key).set_value(bad).run()
    assert at.number_input(key=key).value == bad  # kept as typed, not replaced by the last valid value
    at.button(key="rd_run").click().run()
    no_exceptions(at)
    assert "rd_result" not in at.session_state  # nothing was sampled
    assert any(e.startswith("Could not sample") and f"{label} must be" in e for e in errors(at)), errors(at)
    at.number_input(key=key).set_value(good).run()
    at.button(key="rd_run").click().run()
    traj = at.session_state["rd_result"]["traj"]
    assert traj.z.shape[1] == at.number_input(key="rd_n").value
    assert len(traj) == at.number_input(key="rd_steps_ddim").value + 1


def test_home_seed_refuses_out_of_range_values(shipped):
    write_checkpoint(shipped, "tiny", T=20)
    at = app().run()
    for bad in (-1, 2**31):
        at.number_input(key="home_seed").set_value(bad).run()
        assert at.number_input(key="home_seed").value == bad  # kept as typed, not replaced by 0
        at.button(key="home_generate").click().run()
        no_exceptions(at)
        assert "home_grid" not in at.session_state  # nothing was sampled
        assert any("Seed must be a whole number from 0 to 2,147,483,647" in e for e in errors(at)), errors(at)
    at.number_input(key="home_seed").set_value(0).run()
    at.button(key="home_generate").click().run()
    no_exceptions(at)
    assert at.session_state["home_grid"]["seed"] == 0
