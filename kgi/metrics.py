"""Image-quality metrics for try-on results: SSIM, PSNR and L1 (whole image or inside a mask), and LPIPS/FID/KID
when the user supplies the feature network's weights.

All functions are batched torch on images (B, 3, H, W) in [0, 1] and masks (B, 1, H, W) in {0, 1} (bool or
float); per-image functions return a (B,) float32 tensor.

LPIPS, FID and KID depend on pretrained feature networks that cannot be downloaded here. ``perceptual_metrics``
computes them only from TorchScript files the user names (the metric files of StyleGAN2-ADA / clean-fid:
``vgg16.pt`` for LPIPS, ``inception-2015-12-05.pt`` for FID and KID) and otherwise reports
``"not available"``: never a number from substitute or random weights.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

NOT_AVAILABLE = "not available"
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
_SSIM_C1 = 0.01 ** 2  # (K1 * data range)^2 with data range 1
_SSIM_C2 = 0.03 ** 2


class MetricInputError(ValueError):
    """Images or masks a metric cannot compare: wrong shapes, mismatched sizes, an empty mask, a bad weights file."""


def _check_pair(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | None:
    """Validate (B, C, H, W) images of equal shape and an optional (B, 1, H, W) mask; return the mask as float."""
    if a.ndim != 4 or a.shape != b.shape:
        raise MetricInputError(f"images must both be (B, C, H, W) of one shape; got {tuple(a.shape)} and "
                               f"{tuple(b.shape)}")
    if mask is None:
        return None
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[0] != a.shape[0] or mask.shape[-2:] != a.shape[-2:]:
        raise MetricInputError(f"mask must be (B, 1, H, W) matching images {tuple(a.shape)}; got {tuple(mask.shape)}")
    mask = mask.to(a.device, torch.float32)
    empty = (mask.flatten(1).sum(1) == 0).nonzero().flatten().tolist()
    if empty:
        raise MetricInputError(f"mask is empty for batch items {empty}: nothing to measure there")
    return mask


def _masked_mean(per_pixel: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over channels and pixels of (B, C, H, W), restricted to ``mask`` (B, 1, H, W) when given -> (B,)."""
    per_pixel = per_pixel.float().mean(1, keepdim=True)
    if mask is None:
        return per_pixel.flatten(1).mean(1)
    return (per_pixel * mask).flatten(1).sum(1) / mask.flatten(1).sum(1)


def _gaussian_window(channels: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Separable normalised Gaussian (SSIM_WINDOW taps, sigma SSIM_SIGMA) as depthwise conv kernels."""
    offsets = torch.arange(SSIM_WINDOW, device=device, dtype=torch.float32) - SSIM_WINDOW // 2
    taps = torch.exp(-offsets ** 2 / (2 * SSIM_SIGMA ** 2))
    taps = taps / taps.sum()
    vertical = taps.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    horizontal = taps.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    return vertical, horizontal


def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    r"""Per-pixel SSIM (Wang et al. 2004) of images in [0, 1], same size as the input, channels averaged.

    .. math:: \mathrm{SSIM} = \frac{(2\mu_a\mu_b + C_1)(2\sigma_{ab} + C_2)}
                                   {(\mu_a^2 + \mu_b^2 + C_1)(\sigma_a^2 + \sigma_b^2 + C_2)}

    with local statistics under an 11-tap Gaussian window (sigma 1.5), :math:`C_1 = 0.01^2`, :math:`C_2 = 0.03^2`,
    and reflect padding so the map covers every pixel (needed for masked means).

    Args:
        a, b: (B, C, H, W) images in [0, 1]; H and W at least 11.

    Returns (B, 1, H, W) float32.
    """
    _check_pair(a, b, None)
    if min(a.shape[-2:]) < SSIM_WINDOW:
        raise MetricInputError(f"images of {a.shape[-2]}x{a.shape[-1]} are smaller than the SSIM window "
                               f"({SSIM_WINDOW} pixels)")
    channels = a.shape[1]
    vertical, horizontal = _gaussian_window(channels, a.device)
    pad = SSIM_WINDOW // 2

    def local_mean(x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        return F.conv2d(F.conv2d(x, vertical, groups=channels), horizontal, groups=channels)

    a, b = a.float(), b.float()
    mu_a, mu_b = local_mean(a), local_mean(b)
    var_a = local_mean(a * a) - mu_a ** 2
    var_b = local_mean(b * b) - mu_b ** 2
    cov_ab = local_mean(a * b) - mu_a * mu_b
    numerator = (2 * mu_a * mu_b + _SSIM_C1) * (2 * cov_ab + _SSIM_C2)
    denominator = (mu_a ** 2 + mu_b ** 2 + _SSIM_C1) * (var_a + var_b + _SSIM_C2)
    return (numerator / denominator).mean(1, keepdim=True)


def ssim(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Gaussian-window SSIM per image: the mean of ``ssim_map`` over all pixels, or over ``mask`` when given.

    Args:
        a, b: (B, C, H, W) images in [0, 1].
        mask: optional (B, 1, H, W); pixels where it is 1 are averaged.

    Returns (B,) float32; 1 for identical images.
    """
    mask = _check_pair(a, b, mask)
    return _masked_mean(ssim_map(a, b), mask)


def masked_l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute difference per image over channels and pixels (only ``mask`` pixels when given) -> (B,)."""
    mask = _check_pair(a, b, mask)
    return _masked_mean((a.float() - b.float()).abs(), mask)


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""Peak signal-to-noise ratio per image for data range 1: :math:`10 \log_{10}(1 / \mathrm{MSE})` dB.

    The MSE is over channels and pixels (only ``mask`` pixels when given). Identical images give ``inf``.
    Returns (B,) float32.
    """
    mask = _check_pair(a, b, mask)
    mse = _masked_mean((a.float() - b.float()) ** 2, mask)
    return 10 * torch.log10(1 / mse)


def _load_feature_network(path: str | Path, device: torch.device) -> torch.jit.ScriptModule:
    if not Path(path).is_file():
        raise MetricInputError(f"feature-network weights {str(path)!r} do not exist")
    try:
        with warnings.catch_warnings():  # the metric files are TorchScript, whatever torch thinks of the format
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location=device).eval()
    except RuntimeError as exc:
        raise MetricInputError(f"feature-network weights {str(path)!r} are not a TorchScript file: {exc}") from exc


def frechet_distance(real_features: torch.Tensor, fake_features: torch.Tensor) -> float:
    r"""FID between two feature sets (N, D):
    :math:`\lVert\mu_r - \mu_f\rVert^2 + \mathrm{tr}(\Sigma_r + \Sigma_f - 2(\Sigma_r\Sigma_f)^{1/2})`.

    :math:`\mathrm{tr}(\Sigma_r\Sigma_f)^{1/2}` is the sum of square roots of the eigenvalues of
    :math:`\Sigma_r\Sigma_f` (real and non-negative up to rounding), computed in float64.
    """
    real, fake = real_features.double(), fake_features.double()
    mean_term = (real.mean(0) - fake.mean(0)).square().sum()
    cov_real, cov_fake = torch.cov(real.T), torch.cov(fake.T)
    eigenvalues = torch.linalg.eigvals(cov_real @ cov_fake).real.clamp(min=0)
    return float(mean_term + cov_real.trace() + cov_fake.trace() - 2 * eigenvalues.sqrt().sum())


def kernel_inception_distance(real_features: torch.Tensor, fake_features: torch.Tensor, *,
                              num_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> float:
    r"""KID: unbiased MMD² with the kernel :math:`k(x, y) = (x^\top y / D + 1)^3`, averaged over random subsets
    of ``min(subset_size, N_real, N_fake)`` features from each set (drawn with ``seed``)."""
    size = min(subset_size, len(real_features), len(fake_features))
    if size < 2:
        raise MetricInputError("KID needs at least 2 real and 2 fake images")
    dim = real_features.shape[1]
    generator = torch.Generator().manual_seed(seed)
    estimates = []
    for _ in range(num_subsets):
        x = real_features[torch.randperm(len(real_features), generator=generator)[:size]].double()
        y = fake_features[torch.randperm(len(fake_features), generator=generator)[:size]].double()
        k_xx, k_yy, k_xy = [(p @ q.T / dim + 1) ** 3 for p, q in ((x, x), (y, y), (x, y))]
        off_diagonal = size * (size - 1)
        estimates.append((k_xx.sum() - k_xx.trace()) / off_diagonal + (k_yy.sum() - k_yy.trace()) / off_diagonal
                         - 2 * k_xy.mean())
    return float(torch.stack(estimates).mean())


@torch.no_grad()
def perceptual_metrics(real01: torch.Tensor, fake01: torch.Tensor, *, lpips_weights: str | Path | None = None,
                       inception_weights: str | Path | None = None, batch_size: int = 16
                       ) -> dict[str, float | str]:
    """LPIPS (paired), FID and KID between real and generated images, each only if its network is given.

    Args:
        real01, fake01: (N, 3, H, W) images in [0, 1]; LPIPS pairs them item by item.
        lpips_weights: TorchScript LPIPS-VGG16 file called as ``net(images_0_255, resize_images=False,
            return_lpips=True)`` returning normalised features whose squared distance is LPIPS
            (StyleGAN2-ADA's ``vgg16.pt``). None: LPIPS is ``"not available"``.
        inception_weights: TorchScript Inception file called as ``net(images_0_255, return_features=True)``
            returning (N, 2048) pool features (``inception-2015-12-05.pt``). None: FID and KID are
            ``"not available"``.
        batch_size: images per network call.

    Returns ``{"lpips": mean LPIPS, "fid": FID, "kid": KID}``, each a float or ``"not available"``.
    """
    _check_pair(real01, fake01, None)

    def features(net: torch.jit.ScriptModule, images01: torch.Tensor, **kwargs) -> torch.Tensor:
        chunks = [net(chunk.float() * 255, **kwargs).flatten(1).double() for chunk in images01.split(batch_size)]
        return torch.cat(chunks)

    results: dict[str, float | str] = {"lpips": NOT_AVAILABLE, "fid": NOT_AVAILABLE, "kid": NOT_AVAILABLE}
    if lpips_weights is not None:
        net = _load_feature_network(lpips_weights, real01.device)
        real = features(net, real01, resize_images=False, return_lpips=True)
        fake = features(net, fake01, resize_images=False, return_lpips=True)
        results["lpips"] = float((real - fake).square().sum(1).mean())
    if inception_weights is not None:
        if len(real01) < 2:
            raise MetricInputError(f"FID and KID need at least 2 images per set; got {len(real01)}")
        net = _load_feature_network(inception_weights, real01.device)
        real = features(net, real01, return_features=True)
        fake = features(net, fake01, return_features=True)
        results["fid"] = frechet_distance(real, fake)
        results["kid"] = kernel_inception_distance(real, fake)
    return results


def mean_and_standard_error(values: torch.Tensor) -> tuple[float, float]:
    """Mean of per-image values and its standard error (sample std / sqrt(n); 0 for a single value)."""
    values = values.double().flatten()
    if values.numel() < 2:
        return float(values.mean()), 0.0
    return float(values.mean()), float(values.std() / math.sqrt(values.numel()))
