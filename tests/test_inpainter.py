"""The SPADE-conditioned inpainter UNet: shapes, parse conditioning, safetensors round trip, training signal."""

from __future__ import annotations

import pytest
import torch

from kgi.data.labels import NUM_PARSE13
from kgi.models.inpainter import (InpainterInputError, SpadeNorm, SpadeUNet, make_training_scheduler,
                                  noise_prediction_loss)

HEIGHT, WIDTH = 32, 24


def random_parse(batch: int, seed: int, height: int = HEIGHT, width: int = WIDTH) -> torch.Tensor:
    """(B, 13, H, W) one-hot of blocky random labels (4x4 cells)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, NUM_PARSE13, (batch, height // 4, width // 4), generator=generator)
    labels = labels.repeat_interleave(4, 1).repeat_interleave(4, 2)
    return torch.nn.functional.one_hot(labels, NUM_PARSE13).permute(0, 3, 1, 2).float()


@pytest.fixture(scope="module")
def unet() -> SpadeUNet:
    torch.manual_seed(0)
    return SpadeUNet.from_preset("tiny").eval()


def test_forward_shape_and_timestep_forms(unet):
    sample = torch.randn(2, 3, HEIGHT, WIDTH)
    parse = random_parse(2, seed=1)
    with torch.no_grad():
        batched_t = unet(sample, torch.tensor([500, 500]), parse)
        scalar_t = unet(sample, 500, parse)
    assert batched_t.shape == (2, 3, HEIGHT, WIDTH)
    assert torch.isfinite(batched_t).all()
    torch.testing.assert_close(batched_t, scalar_t)


def test_timestep_changes_the_prediction(unet):
    sample, parse = torch.randn(1, 3, HEIGHT, WIDTH), random_parse(1, seed=1)
    with torch.no_grad():
        assert (unet(sample, 10, parse) - unet(sample, 900, parse)).abs().max() > 1e-3


def test_parse_conditioning_changes_the_output(unet):
    sample = torch.randn(1, 3, HEIGHT, WIDTH)
    zero_parse = torch.zeros(1, NUM_PARSE13, HEIGHT, WIDTH)
    with torch.no_grad():
        zero = unet(sample, 300, zero_parse)
        first = unet(sample, 300, random_parse(1, seed=1))
        second = unet(sample, 300, random_parse(1, seed=2))
        first_again = unet(sample, 300, random_parse(1, seed=1))
    assert (zero - first).abs().max() > 1e-3
    assert (first - second).abs().max() > 1e-3
    torch.testing.assert_close(first, first_again)


def test_spade_norm_is_local_to_the_parse():
    """SPADE modulates each pixel by the parse around it: changing the parse in one corner leaves far pixels
    untouched (two 3x3 convolutions see 2 pixels away)."""
    torch.manual_seed(0)
    norm = SpadeNorm(channels=8, parse_channels=NUM_PARSE13, hidden_channels=8, num_groups=4)
    features = torch.randn(1, 8, 16, 16)
    parse = random_parse(1, seed=3, height=16, width=16)
    changed = parse.clone()
    changed[..., :4, :4] = 0
    changed[:, 0, :4, :4] = 1
    difference = (norm(features, parse) - norm(features, changed)).abs().sum(1)[0]
    assert difference[:4, :4].max() > 0
    assert difference[7:, :].max() == 0 and difference[:, 7:].max() == 0


def test_bad_inputs_raise_clear_errors(unet):
    parse = random_parse(1, seed=1)
    with pytest.raises(InpainterInputError, match="multiple of 8"):
        unet(torch.randn(1, 3, 36, 24), 1, random_parse(1, seed=1, height=36, width=24))
    with pytest.raises(InpainterInputError, match="parse_onehot"):
        unet(torch.randn(1, 3, HEIGHT, WIDTH), 1, parse[:, :12])
    with pytest.raises(InpainterInputError, match="match sample"):
        unet(torch.randn(2, 3, HEIGHT, WIDTH), 1, parse)
    with pytest.raises(InpainterInputError, match="preset"):
        SpadeUNet.from_preset("huge")


def test_loading_a_missing_directory_fails_without_downloading(tmp_path):
    with pytest.raises(InpainterInputError, match="not a saved inpainter"):
        SpadeUNet.from_pretrained(tmp_path / "nowhere")


def test_save_pretrained_round_trip(unet, tmp_path):
    unet.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    assert (tmp_path / "config.json").is_file()
    loaded = SpadeUNet.from_pretrained(tmp_path).eval()
    assert tuple(loaded.config.block_out_channels) == tuple(unet.config.block_out_channels)
    sample, parse = torch.randn(1, 3, HEIGHT, WIDTH), random_parse(1, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(loaded(sample, 42, parse), unet(sample, 42, parse))


def test_configurable_size_without_attention():
    small = SpadeUNet(block_out_channels=(8, 16), layers_per_block=2, norm_num_groups=4,
                      spade_hidden_channels=8, attention=False)
    assert small.mid_block.attention is None and small.size_multiple == 2
    with torch.no_grad():
        assert small(torch.randn(1, 3, 12, 4), 3, random_parse(1, seed=0, height=12, width=4)).shape == (1, 3, 12, 4)


@pytest.mark.slow  # trains the UNet
def test_loss_decreases_when_overfitting_a_fixed_batch():
    torch.manual_seed(0)
    unet = SpadeUNet(block_out_channels=(16, 32), norm_num_groups=8, spade_hidden_channels=8)
    scheduler = make_training_scheduler()
    images = torch.rand(2, 3, 16, 12)
    parse = random_parse(2, seed=6, height=16, width=12)
    optimizer = torch.optim.Adam(unet.parameters(), lr=2e-3)
    losses = []
    for _ in range(30):
        # The same timesteps and noise every step: a fixed regression problem the model must fit.
        loss = noise_prediction_loss(unet, scheduler, images, parse, generator=torch.Generator().manual_seed(7))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_loss_is_the_epsilon_mse():
    """With a UNet that predicts zero noise the loss is the mean squared noise, about 1."""
    scheduler = make_training_scheduler()
    zero_unet = SpadeUNet.from_preset("tiny")
    torch.nn.init.zeros_(zero_unet.conv_out.weight)
    torch.nn.init.zeros_(zero_unet.conv_out.bias)
    with torch.no_grad():
        loss = noise_prediction_loss(zero_unet, scheduler, torch.rand(8, 3, HEIGHT, WIDTH), random_parse(8, 1),
                                     generator=torch.Generator().manual_seed(0))
    assert 0.9 < loss.item() < 1.1


def test_bfloat16_autocast_smoke(unet):
    scheduler = make_training_scheduler()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        prediction = unet(torch.randn(2, 3, HEIGHT, WIDTH), torch.tensor([1, 999]), random_parse(2, seed=1))
        loss = noise_prediction_loss(unet, scheduler, torch.rand(2, 3, HEIGHT, WIDTH), random_parse(2, seed=2))
    assert prediction.dtype == torch.bfloat16 and torch.isfinite(prediction.float()).all()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
