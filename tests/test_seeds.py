"""Per-sample seeds (#16 item 6): an image depends only on its own seed — sample k of a batch drawn with seed s
equals the image drawn alone with seed s + k, for every sampler, a class-conditional model and a cold model."""

import pytest
import torch

from diffusion_core.io.checkpoints import load_checkpoint, resolve_checkpoint
from diffusion_core.process import ColdProcess, GaussianProcess, SamplerChoice, Start
from diffusion_core.process.cold import fit_mixture_start
from diffusion_core.process.degradations import make_degradation
from diffusion_core.process.schedules import preset_schedule
from diffusion_core.samplers import sampler_spec, samplers_of
from diffusion_core.samplers.base import SeedBatch, seeded_noise
from diffusion_core.sampling import sample, sample_checkpoint
from tests.test_samplers import GaussianOracleEps


@pytest.mark.parametrize("sampler", samplers_of("noise"))
def test_sample_k_of_a_batch_of_16_is_seed_plus_k_drawn_alone(sampler):
    process = GaussianProcess(preset_schedule("default"))
    model = GaussianOracleEps(0.1, 0.2, process.schedule)
    steps = None if sampler == "ancestral" else 10
    knobs = {k.name: k.hi for k in sampler_spec(sampler).knobs}  # every knob at its noisiest (DDIM η = 1)
    batch = sample(process, model, SamplerChoice(sampler, steps, seed=5, knobs=knobs), 16, precision="fp32").samples
    for k in (0, 7, 15):
        alone = sample(process, model, SamplerChoice(sampler, steps, seed=5 + k, knobs=knobs), 1,
                       precision="fp32").samples
        assert torch.allclose(batch[k], alone[0], atol=1e-5), (sampler, k)
    assert not torch.allclose(batch[0], batch[1])


def test_the_class_conditional_models_digits_follow_the_seed_too():
    ckpt = load_checkpoint(resolve_checkpoint("default-unet"))
    batch = sample_checkpoint(ckpt, SamplerChoice("dpm++2m-sde", 10, seed=20), 12, precision="fp32").samples
    alone = sample_checkpoint(ckpt, SamplerChoice("dpm++2m-sde", 10, seed=27), 1, precision="fp32").samples
    assert torch.allclose(batch[7], alone[0], atol=1e-4)  # seed 27: digit 7 in the 0–9 cycle, the same noise


def test_a_cold_models_mixture_start_and_hybrid_noise_are_per_sample():
    process = ColdProcess(make_degradation("noise-blur", 10))
    images = torch.rand((64, 1, 28, 28), generator=torch.Generator().manual_seed(0)) - 0.5
    mixture = fit_mixture_start(process.degradation, images, n_components=3)
    x_batch, batch = process.start(SamplerChoice("improved", seed=3, start=Start(fitted=mixture)), 6, SeedBatch(3, 6))
    x_alone, alone = process.start(SamplerChoice("improved", seed=7, start=Start(fitted=mixture)), 1, SeedBatch(7, 1))
    assert torch.allclose(x_batch[4], x_alone[0]) and torch.allclose(batch["noise"][4], alone["noise"][0])
    assert not torch.allclose(x_batch[0], x_batch[1])


def test_seed_batches_name_their_limits():
    with pytest.raises(ValueError, match="seed"):
        SeedBatch(2**63 - 1, 2)  # the last sample's seed would pass the largest seed
    with pytest.raises(ValueError, match="2 per-sample seeds cannot draw noise for 3 samples"):
        seeded_noise((3, 1, 2, 2), SeedBatch(0, 2), "cpu")


def test_sampling_in_chunks_draws_the_same_images_as_one_run_and_none_twice():
    """Benchmarks and the sampler-cost view sample n = 1000 in chunks: the chunk from offset i must start at
    seed + i (not seed + chunk number, which drew 4 × 250 images from 253 seeds and read FID 70 for 51)."""
    from diffusion_core.sampling import sample_in_chunks

    ckpt = load_checkpoint(resolve_checkpoint("quick-unet"))
    choice = SamplerChoice("dpm++2m-sde", 4, seed=3)
    whole = sample_checkpoint(ckpt, choice, 10, precision="fp32").samples
    chunked = sample_in_chunks(ckpt, choice, 10, chunk=4, precision="fp32")
    # the same images up to float rounding (a batch of 4 and one of 10 take different kernels: ~1e-5 after 4
    # SDE steps); a chunk on the wrong seeds differs by the images' own size, ~1
    assert torch.allclose(chunked, whole, atol=1e-4)
    assert len({tuple(img.flatten()[::37].tolist()) for img in chunked}) == 10  # ten different images
    with pytest.raises(ValueError, match="chunk must be a positive number of samples; got 0"):
        sample_in_chunks(ckpt, choice, 10, chunk=0)
