"""The keep-mask (RePaint) sampler: kept pixels, batching, seeds, evaluation counts, scheduler combinations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from kgi.data.labels import NUM_PARSE13
from kgi.models.inpainter import SpadeUNet, make_training_scheduler
from kgi.sampling import (FAST_SETTING, REFERENCE_SETTING, SamplerInputError, SamplerSetting, count_unet_evaluations,
                          inpaint, make_scheduler, repaint_positions, sampler_curve)

HEIGHT, WIDTH = 16, 12
TRAIN_SCHEDULER = make_training_scheduler()


def requests(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch of different requests: known images, keep masks (a different hole each) and parse maps."""
    generator = torch.Generator().manual_seed(seed)
    known = torch.rand(batch, 3, HEIGHT, WIDTH, generator=generator)
    keep = torch.ones(batch, 1, HEIGHT, WIDTH)
    for item in range(batch):
        keep[item, :, 2 + item: 10 + item, 3: 6 + 2 * item] = 0
    labels = torch.randint(0, NUM_PARSE13, (batch, HEIGHT, WIDTH), generator=generator)
    parse = nn.functional.one_hot(labels, NUM_PARSE13).permute(0, 3, 1, 2).float()
    return known, keep, parse


class OracleUNet(nn.Module):
    """Predicts the exact noise separating a sample from fixed clean images (the perfect denoiser of a
    one-point data set), and counts its calls."""

    def __init__(self, clean01: torch.Tensor):
        super().__init__()
        self.register_buffer("clean", clean01 * 2 - 1)
        self.alphas_cumprod = TRAIN_SCHEDULER.alphas_cumprod
        self.calls = 0

    def forward(self, sample, timesteps, parse_onehot):
        self.calls += 1
        alpha = self.alphas_cumprod[timesteps].view(-1, 1, 1, 1)
        return (sample - alpha.sqrt() * self.clean) / (1 - alpha).sqrt()


@pytest.fixture(scope="module")
def unet() -> SpadeUNet:
    torch.manual_seed(0)
    return SpadeUNet(block_out_channels=(16, 32), norm_num_groups=8, spade_hidden_channels=8).eval()


def test_reference_setting_costs_410_evaluations():
    assert count_unet_evaluations(50, jump_length=10, jump_n_sample=10) == 410
    assert REFERENCE_SETTING.unet_evaluations == 410
    assert FAST_SETTING.unet_evaluations <= 25
    assert count_unet_evaluations(50) == 50


def test_schedule_shape():
    positions = repaint_positions(50, 10, 10)
    assert positions[0] == 0 and positions[-1] == 50
    steps = [b - a for a, b in zip(positions, positions[1:])]
    assert set(steps) == {1, -1}
    assert min(positions[: positions.index(10)]) == 0 and max(positions[: positions.index(19)]) < 19
    # jump points every 10 steps counted from the clean end, none in the first 10 steps (RePaint)
    turning = {positions[i] for i in range(1, len(positions) - 1) if steps[i - 1] == 1 and steps[i] == -1}
    assert turning == {19, 29, 39, 49}


def test_oracle_counts_410_calls_with_the_reference_sampler_and_recovers_the_image():
    known, keep, parse = requests(2, seed=0)
    oracle = OracleUNet(known)
    result = inpaint(oracle, make_scheduler("ddpm", TRAIN_SCHEDULER.config), known, keep, parse, num_steps=50,
                     jump_length=10, jump_n_sample=10, seeds=[0, 1])
    assert oracle.calls == result.unet_evaluations == 410
    torch.testing.assert_close(result.images01, known, atol=2e-3, rtol=0)


@pytest.mark.parametrize("kind", ["ddpm", "ddim", "dpm++"])
def test_perfect_denoiser_fills_the_hole_with_the_truth(kind):
    """Every scheduler, driven by the exact noise, lands on the clean image inside the hole too."""
    known, keep, parse = requests(3, seed=1)
    result = inpaint(OracleUNet(known), make_scheduler(kind, TRAIN_SCHEDULER.config), known, keep, parse,
                     num_steps=8, seeds=[5, 6, 7])
    assert result.unet_evaluations == 8
    torch.testing.assert_close(result.images01, known, atol=2e-3, rtol=0)


class RecordingUNet(nn.Module):
    """Predicts zero noise and records what it is asked to denoise."""

    def __init__(self):
        super().__init__()
        self.register_buffer("anchor", torch.zeros(()))
        self.seen: list[tuple[torch.Tensor, int]] = []

    def forward(self, sample, timesteps, parse_onehot):
        self.seen.append((sample.clone(), int(timesteps[0])))
        return torch.zeros_like(sample)


def test_unet_sees_kept_pixels_noised_to_its_own_timestep():
    """Before each evaluation at t the kept pixels are sqrt(a_t) x0 + sqrt(1 - a_t) eps with eps ~ N(0, 1):
    the standardised residual must have unit spread at every low-noise step, jumps included."""
    known, keep, parse = requests(4, seed=8)
    recorder = RecordingUNet()
    inpaint(recorder, make_scheduler("ddpm", TRAIN_SCHEDULER.config), known, keep, parse, num_steps=20,
            jump_length=5, jump_n_sample=2, seeds=[0, 1, 2, 3])
    kept = keep.bool().expand_as(known)
    for sample, timestep in recorder.seen:
        alpha = TRAIN_SCHEDULER.alphas_cumprod[timestep]
        if alpha < 0.5:  # at high noise every level looks alike
            continue
        residual = (sample - alpha.sqrt() * (known * 2 - 1)) / (1 - alpha).sqrt()
        assert 0.85 < residual[kept].std() < 1.15 and residual[kept].mean().abs() < 0.15


def test_known_pixels_are_kept_exactly(unet):
    known, keep, parse = requests(3, seed=2)
    result = inpaint(unet, make_scheduler("ddpm", TRAIN_SCHEDULER.config), known, keep, parse, num_steps=6,
                     jump_length=2, jump_n_sample=2, seeds=[0, 1, 2])
    kept = keep.bool().expand_as(known)
    assert torch.equal(result.images01[kept], known[kept])
    assert (result.images01[~kept] - known[~kept]).abs().mean() > 0.05  # the hole was really painted
    assert result.images01.min() >= 0 and result.images01.max() <= 1


@pytest.mark.parametrize("kind, jumps, eta", [("ddpm", (2, 2), 0.0), ("ddim", (2, 2), 0.5), ("dpm++", (0, 1), 0.0)])
def test_batched_equals_alone(unet, kind, jumps, eta):
    known, keep, parse = requests(3, seed=3)
    scheduler = make_scheduler(kind, TRAIN_SCHEDULER.config)
    options = dict(num_steps=6, jump_length=jumps[0], jump_n_sample=jumps[1], eta=eta)
    seeds = [11, 22, 33]
    batched = inpaint(unet, scheduler, known, keep, parse, seeds=seeds, **options).images01
    for item in range(3):
        alone = inpaint(unet, scheduler, known[item:item + 1], keep[item:item + 1], parse[item:item + 1],
                        seeds=[seeds[item]], **options).images01
        torch.testing.assert_close(batched[item:item + 1], alone, atol=1e-4, rtol=0)


def test_seed_reproduces_and_differs(unet):
    known, keep, parse = requests(1, seed=4)
    scheduler = make_scheduler("ddpm", TRAIN_SCHEDULER.config)
    first = inpaint(unet, scheduler, known, keep, parse, num_steps=5, seeds=[7]).images01
    again = inpaint(unet, scheduler, known, keep, parse, num_steps=5, seeds=[7]).images01
    other = inpaint(unet, scheduler, known, keep, parse, num_steps=5, seeds=[8]).images01
    assert torch.equal(first, again)
    assert (first - other).abs().max() > 1e-2


def test_parse_steers_the_painted_region(unet):
    known, keep, parse = requests(1, seed=5)
    scheduler = make_scheduler("ddim", TRAIN_SCHEDULER.config)
    painted = inpaint(unet, scheduler, known, keep, parse, num_steps=4, seeds=[0]).images01
    repainted = inpaint(unet, scheduler, known, keep, parse.roll(1, dims=1), num_steps=4, seeds=[0]).images01
    assert (painted - repainted).abs().max() > 1e-3


def test_invalid_combinations_raise(unet):
    known, keep, parse = requests(2, seed=6)
    dpm = make_scheduler("dpm++", TRAIN_SCHEDULER.config)
    with pytest.raises(SamplerInputError, match="stateless"):
        inpaint(unet, dpm, known, keep, parse, num_steps=6, jump_length=2, jump_n_sample=2, seeds=[0, 1])
    with pytest.raises(SamplerInputError, match="eta"):
        inpaint(unet, make_scheduler("ddpm", TRAIN_SCHEDULER.config), known, keep, parse, num_steps=4,
                eta=0.5, seeds=[0, 1])
    with pytest.raises(SamplerInputError, match="seeds"):
        inpaint(unet, dpm, known, keep, parse, num_steps=4, seeds=[0])
    with pytest.raises(SamplerInputError, match="keep_mask"):
        inpaint(unet, dpm, known, keep * 0.5, parse, num_steps=4, seeds=[0, 1])
    with pytest.raises(SamplerInputError, match="smaller than num_steps"):
        count_unet_evaluations(10, jump_length=10, jump_n_sample=2)
    with pytest.raises(SamplerInputError, match="scheduler kind"):
        make_scheduler("euler", TRAIN_SCHEDULER.config)


def test_sampler_curve_rows():
    target, keep, parse = requests(3, seed=7)
    settings = (SamplerSetting("ddpm-j", "ddpm", 6, jump_length=2, jump_n_sample=2),
                SamplerSetting("dpm++-5", "dpm++", 5))
    rows = sampler_curve(OracleUNet(target), TRAIN_SCHEDULER, target, keep, parse, settings=settings)
    assert [row["name"] for row in rows] == ["ddpm-j", "dpm++-5"]
    assert [row["unet_evaluations"] for row in rows] == [count_unet_evaluations(6, 2, 2), 5]
    for row in rows:  # the perfect denoiser is perfect inside the hole
        assert row["ssim_mean"] > 0.99 and row["l1_mean"] < 2e-3
        assert row["ssim_se"] >= 0 and row["seconds_per_image"] > 0
