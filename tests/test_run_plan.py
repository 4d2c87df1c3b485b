"""Planning a reverse run: network calls counted against a real run, the time estimate from a measured
call, the samplers known to fail on a model, and the sampler a page opens on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from diffusion_core.io.checkpoints import LoadedCheckpoint
from diffusion_core.models import build_model
from diffusion_core.models.guidance import NO_LABEL
from diffusion_core.process.degradations import make_degradation
from diffusion_core.sampling import SamplerChoice, checkpoint_frames
from diffusion_core.services.run_plan import (
    CONFIRM_ABOVE_S,
    RunEstimate,
    default_sampler,
    format_seconds,
    known_bad_samplers,
    network_calls,
    seconds_per_call,
)

ROOT = Path(__file__).resolve().parent.parent
TINY_CNN = {"arch": "cnn", "params": {"hidden": [4, 4], "kernel_size": 3, "time_embed_dim": 8}}
TINY_UNET = {"arch": "unet", "params": {"base_channels": 8, "time_embed_dim": 16, "num_classes": 10}}


def noise(T: int = 30, model: dict = TINY_CNN, **extra) -> LoadedCheckpoint:
    torch.manual_seed(0)
    config = {"model": model, "diffusion": {"type": "noise", "schedule": {
        "kind": "linear", "beta1": 1e-4, "beta2": 0.02, "T": T}}, **extra}
    return LoadedCheckpoint(build_model(model), config, Path("tiny.safetensors"))


def cold(T: int = 10) -> LoadedCheckpoint:
    torch.manual_seed(0)
    config = {"model": TINY_CNN, "diffusion": {"type": "cold", "degradation": make_degradation("blur", T=T).config()}}
    return LoadedCheckpoint(build_model(TINY_CNN), config, Path("cold.safetensors"))


def counted_calls(ckpt: LoadedCheckpoint, n: int, **kwargs) -> int:
    """Run the sampler to the end, counting the network's work in calls on the batch of n images."""
    images = []
    hook = ckpt.model.register_forward_hook(lambda module, args, out: images.append(args[0].shape[0]))
    try:
        frames = list(checkpoint_frames(ckpt, SamplerChoice(seed=0, **kwargs), n))
    finally:
        hook.remove()
    assert frames[-1].t == 0
    assert sum(images) % n == 0
    return sum(images) // n


@pytest.mark.parametrize("sampler, steps", [
    ("ancestral", None), ("ddim", 7), ("ddim", None), ("dpm++2m", 5), ("dpm++2m-sde", None), ("dpm++2m-sde", 1),
])
def test_noise_calls_match_a_counted_run(sampler, steps):
    ckpt = noise(T=60)  # ddim's default 50 steps fit
    expected = counted_calls(ckpt, 3, sampler=sampler, steps=steps)
    assert network_calls(ckpt, SamplerChoice(sampler, steps)) == expected


@pytest.mark.parametrize("sampler, steps", [("improved", None), ("improved", 4), ("naive", 3), ("direct", None)])
def test_cold_calls_match_a_counted_run(sampler, steps):
    ckpt = cold(T=10)
    counted = counted_calls(ckpt, 2, sampler=sampler, steps=steps, start="black")
    assert network_calls(ckpt, SamplerChoice(sampler, steps, start="black")) == counted


@pytest.mark.parametrize("digit, guidance, doubled", [
    (3, 2.0, True), (None, 1.0, True), (3, 0.0, False), (NO_LABEL, 2.0, False), (None, None, True),
])
def test_guidance_doubles_the_calls_as_counted(digit, guidance, doubled):
    ckpt = noise(T=20, model=TINY_UNET, guidance=1.5)  # guidance None: the checkpoint's own 1.5
    counted = counted_calls(ckpt, 2, sampler="ddim", steps=4, digit=digit, guidance=guidance)
    assert counted == (8 if doubled else 4)
    assert network_calls(ckpt, SamplerChoice("ddim", 4, digit=digit, guidance=guidance)) == counted


def test_unknown_samplers_and_steps_are_refused():
    with pytest.raises(ValueError, match="sampler must be one of"):
        network_calls(noise(), SamplerChoice("improved"))
    with pytest.raises(ValueError, match="cold sampler must be one of"):
        network_calls(cold(), SamplerChoice("ddim"))
    with pytest.raises(ValueError, match="steps must be an integer between 1 and T=30"):
        network_calls(noise(), SamplerChoice("ddim", 31))


def test_seconds_per_call_times_one_call_on_the_batch():
    ckpt = noise(T=30)
    batches = []
    hook = ckpt.model.register_forward_hook(lambda module, args, out: batches.append(args[0].shape[0]))
    try:
        seconds = seconds_per_call(ckpt, 5, repeats=3)
    finally:
        hook.remove()
    assert batches == [5] * 4  # one warm-up call, then the three timed
    assert 0 < seconds < 5
    with pytest.raises(ValueError, match="repeats"):
        seconds_per_call(ckpt, 5, repeats=0)


def test_a_conditional_model_is_timed_on_its_own_batch():
    ckpt = noise(T=20, model=TINY_UNET, guidance=3.0)
    batches = []
    hook = ckpt.model.register_forward_hook(lambda module, args, out: batches.append(args[0].shape[0]))
    try:
        seconds_per_call(ckpt, 4, repeats=1)
    finally:
        hook.remove()
    assert batches == [4, 4]  # unguided: the doubling is counted in network_calls, not in the timing


def test_the_estimate_is_calls_times_the_measured_call():
    fast = RunEstimate(calls=20, seconds_per_call=0.15)
    assert fast.seconds == pytest.approx(3.0) and not fast.needs_confirmation
    assert fast.describe() == "about 3.0 s (20 network calls × 150 ms measured here)"
    slow = RunEstimate(calls=1000, seconds_per_call=0.095)
    assert slow.seconds == pytest.approx(95.0) and slow.needs_confirmation
    assert slow.describe() == "about 1 min 35 s (1,000 network calls × 95 ms measured here)"
    assert RunEstimate(1, 0.0004).describe() == "about under 0.1 s (1 network call × 0.4 ms measured here)"
    assert not RunEstimate(100, CONFIRM_ABOVE_S / 100).needs_confirmation  # exactly at the limit: no question
    assert [format_seconds(s) for s in (0.01, 0.44, 9.96, 59.4, 3599, 7300)] == [
        "under 0.1 s", "0.4 s", "10.0 s", "59 s", "59 min 59 s", "2 h 01 min"]


def shipped_config(name: str) -> dict:
    return json.loads((ROOT / "checkpoints" / f"{name}.json").read_text())


def test_the_shipped_report_cnns_flag_the_deterministic_few_step_samplers():
    for name in ("default", "model1"):
        bad = known_bad_samplers(shipped_config(name))
        assert set(bad) == {"dpm++2m", "ddim"}
        assert "static" in bad["dpm++2m"] and "η = 0" in bad["ddim"]
    assert known_bad_samplers(shipped_config("default-unet")) == {}
    assert known_bad_samplers(shipped_config("blur")) == {}


def test_card_metrics_can_name_a_failing_sampler():
    config = noise().config | {"metrics": {"fid": 30.0, "known_bad_samplers": {"ddim": "blurry"}}}
    assert known_bad_samplers(config) == {"ddim": "blurry"}
    assert known_bad_samplers(noise().config | {"metrics": {"known_bad_samplers": "not a table"}}) == {}


def test_pages_open_on_the_quick_sampler_unless_it_is_known_to_fail():
    assert default_sampler(noise(T=50)) == SamplerChoice("dpm++2m-sde", 20)
    assert default_sampler(noise(T=8)) == SamplerChoice("dpm++2m-sde", 8)
    assert default_sampler(cold()) == SamplerChoice("improved")
    flaky = noise(T=50, metrics={"known_bad_samplers": {"dpm++2m-sde": "static"}})
    assert default_sampler(flaky) == SamplerChoice("ancestral")
    shipped = noise(T=1000)
    shipped.config.update(shipped_config("default"))  # the report CNN: the quick sampler works on it
    assert default_sampler(shipped) == SamplerChoice("dpm++2m-sde", 20)


def test_a_distilled_flow_opens_in_the_steps_it_was_made_for():
    """flow-one-step opened on 20 Euler steps measured 78× the floor against 2.3× in its own one step."""
    from diffusion_core.io.checkpoints import load_checkpoint

    for name, steps in (("flow-one-step", 1), ("flow-two-step", 2), ("flow-reflow", 20), ("flow-unet", 20)):
        assert default_sampler(load_checkpoint(ROOT / "checkpoints" / name)) == SamplerChoice("flow-euler", steps)
