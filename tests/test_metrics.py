"""SSIM, PSNR, L1 (whole and masked) against hand-computed values; LPIPS/FID/KID only from given weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kgi.metrics import (NOT_AVAILABLE, MetricInputError, frechet_distance, kernel_inception_distance,
                         masked_l1, mean_and_standard_error, perceptual_metrics, psnr, ssim, ssim_map)


def images(batch: int = 2, seed: int = 0, height: int = 24, width: int = 20) -> torch.Tensor:
    return torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))


def test_identical_images():
    a = images()
    torch.testing.assert_close(ssim(a, a), torch.ones(2))
    assert torch.equal(masked_l1(a, a), torch.zeros(2))
    assert torch.isinf(psnr(a, a)).all() and (psnr(a, a) > 0).all()


def test_known_shift_gives_expected_l1_and_psnr():
    a = images() * 0.8
    b = a + 0.1
    torch.testing.assert_close(masked_l1(a, b), torch.full((2,), 0.1))
    torch.testing.assert_close(psnr(a, b), torch.full((2,), 20.0))  # MSE 0.01 -> 10 log10(100)


def test_masked_means_only_look_inside_the_mask():
    a = torch.zeros(1, 3, 16, 16)
    b = a.clone()
    b[..., :, :8] = 0.5   # left half differs by 0.5
    b[..., :, 8:] = 0.25  # right half by 0.25
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 2:6, 1:5] = 1  # 16 left pixels
    mask[..., 10:12, 9:13] = 1  # 8 right pixels
    expected_l1 = (16 * 0.5 + 8 * 0.25) / 24
    expected_mse = (16 * 0.25 + 8 * 0.0625) / 24
    torch.testing.assert_close(masked_l1(a, b, mask), torch.tensor([expected_l1]))
    torch.testing.assert_close(psnr(a, b, mask.bool()), torch.tensor([10 * math.log10(1 / expected_mse)]))


def test_ssim_of_flat_images_is_the_luminance_term():
    """Constant images have zero variance: SSIM = (2 c1 c2 + C1) / (c1^2 + c2^2 + C1) everywhere."""
    c1, c2 = 0.3, 0.7
    a, b = torch.full((1, 3, 16, 16), c1), torch.full((1, 3, 16, 16), c2)
    expected = (2 * c1 * c2 + 0.01 ** 2) / (c1 ** 2 + c2 ** 2 + 0.01 ** 2)
    torch.testing.assert_close(ssim(a, b), torch.tensor([expected]))


def test_ssim_map_matches_the_formula_at_an_interior_pixel():
    """Recompute the local statistics of one pixel with an explicit 11x11 Gaussian window in numpy."""
    a, b = images(1, seed=1, height=32, width=32), images(1, seed=2, height=32, width=32)
    b = 0.6 * a + 0.4 * b  # correlated, so every SSIM term matters
    row, col = 15, 17
    offsets = np.arange(11) - 5
    taps = np.exp(-offsets ** 2 / (2 * 1.5 ** 2))
    window = np.outer(taps, taps) / np.outer(taps, taps).sum()
    values = []
    for channel in range(3):
        pa = a[0, channel, row - 5: row + 6, col - 5: col + 6].double().numpy()
        pb = b[0, channel, row - 5: row + 6, col - 5: col + 6].double().numpy()
        mu_a, mu_b = (window * pa).sum(), (window * pb).sum()
        var_a = (window * (pa - mu_a) ** 2).sum()
        var_b = (window * (pb - mu_b) ** 2).sum()
        cov = (window * (pa - mu_a) * (pb - mu_b)).sum()
        values.append((2 * mu_a * mu_b + 1e-4) * (2 * cov + 9e-4)
                      / ((mu_a ** 2 + mu_b ** 2 + 1e-4) * (var_a + var_b + 9e-4)))
    assert ssim_map(a, b)[0, 0, row, col].item() == pytest.approx(np.mean(values), abs=1e-5)


def test_masked_ssim_is_the_mean_of_the_map_inside_the_mask():
    a, b = images(2, seed=3), images(2, seed=4)
    mask = torch.zeros(2, 1, 24, 20)
    mask[0, :, 3:9, 4:15] = 1
    mask[1, :, 10:20, 2:6] = 1
    full_map = ssim_map(a, b)
    expected = torch.stack([full_map[i][mask[i].bool()].mean() for i in range(2)])
    torch.testing.assert_close(ssim(a, b, mask), expected)
    assert (ssim(a, b) < 0.5).all()  # independent noise images are dissimilar


def test_bad_inputs_raise():
    a = images()
    with pytest.raises(MetricInputError, match="one shape"):
        ssim(a, a[:, :, :10])
    with pytest.raises(MetricInputError, match="empty"):
        masked_l1(a, a, torch.zeros(2, 1, 24, 20))
    with pytest.raises(MetricInputError, match=r"\(B, 1, H, W\)"):
        psnr(a, a, torch.ones(2, 3, 24, 20))
    with pytest.raises(MetricInputError, match="window"):
        ssim(a[..., :8, :8], a[..., :8, :8])


def test_perceptual_metrics_are_not_available_without_weights():
    assert perceptual_metrics(images(), images(seed=1)) == {"lpips": NOT_AVAILABLE, "fid": NOT_AVAILABLE,
                                                            "kid": NOT_AVAILABLE}
    with pytest.raises(MetricInputError, match="do not exist"):
        perceptual_metrics(images(), images(seed=1), inception_weights="/nonexistent/inception.pt")


class ChannelMeans(torch.nn.Module):
    """A stand-in feature network with the TorchScript interfaces of the Inception and LPIPS metric files:
    features are the per-channel means of the [0, 255] input."""

    def forward(self, x: torch.Tensor, return_features: bool = False, resize_images: bool = True,
                return_lpips: bool = False) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def test_fid_kid_lpips_from_given_weights(tmp_path):
    path = tmp_path / "features.pt"
    torch.jit.script(ChannelMeans()).save(str(path))
    real = images(8, seed=5) * 0.8
    fake = real + 0.1  # every feature shifts by 25.5, covariances are unchanged
    results = perceptual_metrics(real, fake, lpips_weights=path, inception_weights=path, batch_size=3)
    assert results["fid"] == pytest.approx(3 * 25.5 ** 2, rel=1e-6)
    assert results["lpips"] == pytest.approx(3 * 25.5 ** 2, rel=1e-6)
    assert results["kid"] > 0
    same = perceptual_metrics(real, real, inception_weights=path)
    assert same["fid"] == pytest.approx(0, abs=1e-6) and same["lpips"] == NOT_AVAILABLE


def test_frechet_distance_of_gaussians_with_known_covariances():
    """Real features N(0, I), fake N(0, 4 I) in 2D: FID -> tr(I + 4I - 2 * 2I) = 2."""
    generator = torch.Generator().manual_seed(0)
    real = torch.randn(20000, 2, generator=generator)
    fake = 2 * torch.randn(20000, 2, generator=generator)
    assert frechet_distance(real, fake) == pytest.approx(2.0, abs=0.1)
    assert kernel_inception_distance(real, real.clone(), num_subsets=3, subset_size=200) == pytest.approx(0, abs=0.05)


def test_mean_and_standard_error():
    mean, se = mean_and_standard_error(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert mean == 2.5 and se == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)
    assert mean_and_standard_error(torch.tensor([5.0])) == (5.0, 0.0)
