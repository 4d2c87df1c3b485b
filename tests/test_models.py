"""Denoisers: the report's CNN structure, the U-Net, and the shared interface."""

import math

import pytest
import torch
from torch import nn

from diffusion_core.models import ReportCNN, UNet, build_model


def test_report_cnn_has_the_reports_structure():
    m = ReportCNN()
    convs = [b.conv for b in m.blocks]
    assert [c.out_channels for c in convs] == [16, 32, 32, 16]
    assert all(c.kernel_size == (7, 7) and c.padding == (3, 3) for c in convs)  # "same" padding
    assert all(b.norm.normalized_shape == (c.out_channels, 28, 28) for b, c in zip(m.blocks, convs, strict=True))
    assert all(isinstance(b.act, nn.GELU) for b in m.blocks)
    assert m.final.kernel_size == (3, 3) and m.final.out_channels == 1
    widths = [layer.out_features for layer in m.time_embed if isinstance(layer, nn.Linear)]
    assert widths == [128, 128, 128, 16]
    expected = [0.0] + [2 * math.pi * 1.5**i for i in range(15)]  # 16 frequencies
    torch.testing.assert_close(m.frequencies, torch.tensor(expected))


def test_one_report_block_is_layernorm_then_gelu_then_the_time_embedding():
    """A known answer: with identity convolutions and a constant time embedding c, the one-block CNN gives
    GELU(LayerNorm(z)) + c, LayerNorm over the whole (C, H, W) map of each image."""
    m = ReportCNN(hidden=(1,)).eval()
    with torch.no_grad():
        for conv in (m.blocks[0].conv, m.final):
            conv.weight.zero_()
            conv.bias.zero_()
            k = conv.kernel_size[0] // 2
            conv.weight[0, 0, k, k] = 1.0  # the identity, given "same" padding
        m.time_embed[-1].weight.zero_()
        m.time_embed[-1].bias.fill_(0.25)
    z = torch.randn(3, 1, 28, 28) * 2 + 1
    x = (z - z.mean(dim=(1, 2, 3), keepdim=True)) / (z.var(dim=(1, 2, 3), unbiased=False, keepdim=True) + 1e-5).sqrt()
    expected = 0.5 * x * (1 + torch.erf(x / math.sqrt(2))) + 0.25
    torch.testing.assert_close(m(z, torch.tensor([0.0, 0.5, 1.0])), expected)


@pytest.mark.parametrize("cfg", [{"arch": "cnn", "params": {"hidden": [4, 4], "kernel_size": 3, "time_embed_dim": 8}},
                                 {"arch": "unet", "params": {"base_channels": 8}}])
def test_the_output_depends_on_t_and_on_nothing_else_in_the_batch(cfg):
    torch.manual_seed(0)
    m = build_model(cfg).eval()
    z = torch.randn(3, 1, 28, 28)
    t = torch.tensor([0.1, 0.5, 0.9])
    out = m(z, t)
    assert torch.equal(m(z, t), out)  # the same t, the same output
    assert ((m(z, t + 0.05) - out).abs().amax(dim=(1, 2, 3)) > 1e-4).all()  # another t, another output
    torch.testing.assert_close(m(z[1:2], t[1:2]), out[1:2])  # each image on its own: no batch statistics


@pytest.mark.parametrize("cfg", [{"arch": "cnn", "params": {}}, {"arch": "unet", "params": {}},
                                 {"arch": "cnn", "params": {"hidden": [8, 8, 8], "kernel_size": 5}},
                                 {"arch": "unet", "params": {"base_channels": 16, "channel_mult": [1, 3]}},
                                 {"arch": "unet", "params": {"base_channels": 16, "patch": 2}}])
def test_every_denoiser_maps_z_to_a_tensor_shaped_like_z(cfg):
    m = build_model(cfg)
    z = torch.randn(3, 1, 28, 28)
    out = m(z, torch.rand(3))
    assert out.shape == z.shape and out.dtype == z.dtype
    out.pow(2).mean().backward()
    assert all(p.grad is not None for p in m.parameters())  # every parameter is used


def test_unet_uses_the_time_and_an_optional_label():
    torch.manual_seed(0)
    m = UNet(base_channels=8, num_classes=10).eval()
    z = torch.randn(2, 1, 28, 28)
    t = torch.tensor([0.2, 0.2])
    assert not torch.allclose(m(z, t), m(z, t + 0.5))
    assert not torch.allclose(m(z, t, torch.tensor([1, 1])), m(z, t, torch.tensor([7, 7])))
    torch.testing.assert_close(m(z, t, torch.tensor([-1, -1])), m(z, t))  # label −1: no label


def test_a_patched_unet_runs_at_a_quarter_of_the_pixels_and_keeps_each_pixel_in_place():
    """patch 2: the first layer sees 14×14 blocks of 2×2 pixels as 4 channels (pixel-unshuffle) and the last one
    folds them back, so a pixel's output lands where the pixel was."""
    torch.manual_seed(0)
    m = UNet(base_channels=8, patch=2).eval()
    seen = {}
    m.stem.register_forward_hook(lambda mod, inp, out: seen.update(stem=tuple(inp[0].shape)))
    m.down2.register_forward_hook(lambda mod, inp, out: seen.update(inner=tuple(out.shape)))
    z = torch.randn(2, 1, 28, 28)
    assert m(z, torch.rand(2)).shape == z.shape
    assert seen == {"stem": (2, 4, 14, 14), "inner": (2, 16, 7, 7)}
    # the folding is the identity map with a 1×1 identity in the middle: stem and out see exactly z's blocks
    unfolded = torch.nn.functional.pixel_unshuffle(z, 2)
    assert torch.equal(torch.nn.functional.pixel_shuffle(unfolded, 2), z) and unfolded[0, 1, 0, 0] == z[0, 0, 0, 1]


@pytest.mark.parametrize(
    "cfg, word",
    [({"arch": "cnn", "params": {"kernel_size": 4}}, "kernel_size"),
     ({"arch": "cnn", "params": {"hidden": []}}, "hidden"),
     ({"arch": "cnn", "params": {"time_embed_dim": 7}}, "time_embed_dim"),
     ({"arch": "unet", "params": {"base_channels": 10}}, "base_channels"),
     ({"arch": "unet", "params": {"channel_mult": [1, 2, 4]}}, "channel_mult"),
     ({"arch": "unet", "params": {"depth": 3}}, "unknown parameters"),
     ({"arch": "unet", "params": {"patch": 3}}, "patch must be 1, 2 or 4"),
     ({"arch": "vit"}, "arch must be")],
)
def test_bad_architecture_parameters(cfg, word):
    with pytest.raises(ValueError, match=word):
        build_model(cfg)
