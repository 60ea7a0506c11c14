r"""Stage 3 sampling: keep-mask inpainting (RePaint) with the SPADE UNet over diffusers schedulers.

Before every UNet evaluation at noise level t, the kept pixels of the current sample are replaced by the known
image forward-noised to t, :math:`\sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon`; the scheduler's
reverse step then moves the whole sample to the next level, and the result is finally pasted
``keep * known + (1 - keep) * generated``.

RePaint resampling jumps (``jump_length``, ``jump_n_sample``) go back up ``jump_length`` levels with the forward
process :math:`x_{t'} = \sqrt{\bar\alpha_{t'}/\bar\alpha_t}\,x_t + \sqrt{1-\bar\alpha_{t'}/\bar\alpha_t}\,\epsilon`
(computed here from the scheduler's ``alphas_cumprod``) and redo the reverse steps, so that the generated region
harmonises with the kept one. KGI's public setting, 50 steps with jumps 10 x 10, costs 410 UNet evaluations.

Allowed combinations:

    scheduler                   no jumps   jumps
    DDPMScheduler               yes        yes   (stateless step; the reference sampler)
    DDIMScheduler (eta)         yes        yes   (stateless step)
    DPMSolverMultistepScheduler yes        no    (multistep: its history would be wrong after a jump)
    any other epsilon scheduler yes        no

Batches may mix requests: every item has its own mask, parse and seed. Each item owns one ``torch.Generator``
(on the CPU) that draws its initial noise, its re-noised known image and every stochastic step, so an item's
result does not depend on what it is batched with, and a seed always gives the same image.

Example:

    >>> result = inpaint(unet, make_scheduler("ddpm", train_scheduler.config), known01, keep_mask, parse_onehot,
    ...                  num_steps=25, seeds=[0, 1])               # FAST_SETTING
    >>> result.images01.shape, result.unet_evaluations      # (2, 3, H, W), 25
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from itertools import chain, pairwise

import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from kgi import metrics

# Schedulers whose step depends only on (model output, timestep, sample): RePaint jumps may revisit levels.
STATELESS_SCHEDULERS = (DDPMScheduler, DDIMScheduler)
SCHEDULERS: dict[str, type[SchedulerMixin]] = {
    "ddpm": DDPMScheduler,
    "ddim": DDIMScheduler,
    "dpm++": DPMSolverMultistepScheduler,
}


class SamplerInputError(ValueError):
    """Inputs or settings the sampler cannot use: shapes, seeds, step counts, a scheduler/jump combination."""


@dataclass
class InpaintResult:
    """What ``inpaint`` returns.

    Attributes:
        images01: (B, 3, H, W) float32 in [0, 1]; kept pixels equal the known image exactly.
        unet_evaluations: UNet evaluations per image (each batched call counts once for every item).
    """

    images01: torch.Tensor
    unet_evaluations: int


def make_scheduler(kind: str, train_config, **overrides) -> SchedulerMixin:
    """A sampling scheduler of ``kind`` ("ddpm", "ddim", "dpm++") on the training noise schedule.

    Uses ``timestep_spacing="trailing"`` (the first step starts at the last training timestep, as KGI's
    respaced sampler does), and DPM-Solver++ of order 2 with its x0 predictions clipped to the image range
    (``thresholding`` with ``sample_max_value=1``: the pixel-space counterpart of DDPM/DDIM's ``clip_sample``;
    unclipped, the x0 predictions at the noisiest steps are amplified ~160x and the result falls apart, L1 in
    the holes 0.45 against 0.19); ``overrides`` replace any config entry.
    """
    if kind not in SCHEDULERS:
        raise SamplerInputError(f"scheduler kind {kind!r} is unknown; choose one of {sorted(SCHEDULERS)}")
    options = {"timestep_spacing": "trailing"}
    if kind == "dpm++":
        options.update(algorithm_type="dpmsolver++", solver_order=2, thresholding=True, sample_max_value=1.0)
    return SCHEDULERS[kind].from_config(train_config, **{**options, **overrides})


def repaint_positions(num_steps: int, jump_length: int = 0, jump_n_sample: int = 1) -> list[int]:
    """The sequence of positions the RePaint schedule visits (Lugmayr et al. 2022, ``get_schedule_jump``).

    Position ``i`` is the sample after ``i`` reverse steps (noise level ``scheduler.timesteps[i]``;
    ``num_steps`` = clean). A jump point every ``jump_length`` steps, counted from the clean end and none in
    the first ``jump_length`` steps, sends the sample back ``jump_length`` positions ``jump_n_sample - 1``
    times. Reverse steps (UNet evaluations) are the increments:
    ``num_steps + jump_points * (jump_n_sample - 1) * jump_length``, 410 for (50, 10, 10).
    """
    if num_steps < 1:
        raise SamplerInputError(f"num_steps must be at least 1; got {num_steps}")
    if jump_n_sample < 1 or jump_length < 0:
        raise SamplerInputError(f"jump_length must be >= 0 and jump_n_sample >= 1; got {jump_length}, "
                                f"{jump_n_sample}")
    if jump_length >= num_steps and jump_n_sample > 1:
        raise SamplerInputError(f"jump_length {jump_length} must be smaller than num_steps {num_steps}")
    jumps_left = {}
    if jump_length > 0 and jump_n_sample > 1:
        jumps_left = {num_steps - 1 - level: jump_n_sample - 1
                      for level in range(0, num_steps - jump_length, jump_length)}
    positions, position = [], -1
    while position < num_steps - 1:
        position += 1
        positions.append(position)
        if jumps_left.get(position, 0) > 0:
            jumps_left[position] -= 1
            for _ in range(jump_length):
                position -= 1
                positions.append(position)
    positions.append(num_steps)
    return positions


def count_unet_evaluations(num_steps: int, jump_length: int = 0, jump_n_sample: int = 1) -> int:
    """UNet evaluations per image of ``inpaint`` with these settings (the reverse steps of the schedule)."""
    positions = repaint_positions(num_steps, jump_length, jump_n_sample)
    return sum(later > earlier for earlier, later in pairwise(positions))


def _check_inputs(known01: torch.Tensor, keep_mask: torch.Tensor, parse_onehot: torch.Tensor,
                  seeds: list[int]) -> None:
    if known01.ndim != 4 or known01.shape[1] != 3:
        raise SamplerInputError(f"known01 must be (B, 3, H, W); got {tuple(known01.shape)}")
    batch, _, height, width = known01.shape
    if keep_mask.shape != (batch, 1, height, width):
        raise SamplerInputError(f"keep_mask must be ({batch}, 1, {height}, {width}); got {tuple(keep_mask.shape)}")
    if parse_onehot.ndim != 4 or parse_onehot.shape[0] != batch or parse_onehot.shape[-2:] != (height, width):
        raise SamplerInputError(
            f"parse_onehot must be ({batch}, classes, {height}, {width}); got {tuple(parse_onehot.shape)}")
    if len(seeds) != batch:
        raise SamplerInputError(f"seeds must hold one seed per image: {len(seeds)} seeds for {batch} images")
    if known01.min() < 0 or known01.max() > 1:
        raise SamplerInputError("known01 must lie in [0, 1]")
    if ((keep_mask != 0) & (keep_mask != 1)).any():
        raise SamplerInputError("keep_mask must hold only 0 (inpaint) and 1 (keep)")


@torch.no_grad()
def inpaint(unet: torch.nn.Module, scheduler: SchedulerMixin, known01: torch.Tensor, keep_mask: torch.Tensor,
            parse_onehot: torch.Tensor, *, num_steps: int, seeds: list[int], jump_length: int = 0,
            jump_n_sample: int = 1, eta: float = 0.0) -> InpaintResult:
    """Inpaint the pixels outside ``keep_mask`` (RePaint keep-mask sampling), batched over requests.

    Args:
        unet: noise predictor called as ``unet(sample, timesteps (B,), parse_onehot)`` (``SpadeUNet``); wrap the
            call in ``torch.autocast`` for bf16/fp16.
        scheduler: any epsilon-prediction diffusers scheduler; only its config is used (a fresh copy is made,
            so one instance can serve concurrent calls). Jumps need DDPM or DDIM (see the module docstring).
        known01: (B, 3, H, W) image in [0, 1] whose kept pixels are imposed.
        keep_mask: (B, 1, H, W) 1 where ``known01`` is kept, 0 where the UNet paints.
        parse_onehot: (B, 13, H, W) parse conditioning the UNet.
        num_steps: reverse steps of the scheduler.
        seeds: one int per image; seeds its generator.
        jump_length, jump_n_sample: RePaint resampling (0 and 1: none; KGI's public setting: 10 and 10).
        eta: DDIM's stochasticity (0 = deterministic); DDIM only.

    Returns ``InpaintResult(images01, unet_evaluations)``.
    """
    _check_inputs(known01, keep_mask, parse_onehot, seeds)
    if scheduler.config.prediction_type != "epsilon":
        raise SamplerInputError(f"the scheduler predicts {scheduler.config.prediction_type!r}; the UNet predicts "
                                "'epsilon'")
    jumps = jump_length > 0 and jump_n_sample > 1
    if jumps and not isinstance(scheduler, STATELESS_SCHEDULERS):
        raise SamplerInputError(f"RePaint jumps need a stateless scheduler (DDPM, DDIM); got "
                                f"{type(scheduler).__name__}")
    if eta and not isinstance(scheduler, DDIMScheduler):
        raise SamplerInputError(f"eta applies to DDIMScheduler only; got {type(scheduler).__name__}")
    positions = repaint_positions(num_steps, jump_length, jump_n_sample)

    scheduler = type(scheduler).from_config(scheduler.config)
    device = next(chain(unet.parameters(), unet.buffers())).device
    scheduler.set_timesteps(num_steps, device=device)
    timesteps = scheduler.timesteps
    alphas_cumprod = scheduler.alphas_cumprod.to(device=device, dtype=torch.float32)
    step_kwargs = {"eta": eta} if isinstance(scheduler, DDIMScheduler) else {}

    generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
    known = known01.to(device, torch.float32) * 2 - 1
    keep = keep_mask.to(device, torch.float32)
    parse_onehot = parse_onehot.to(device)

    def noise() -> torch.Tensor:  # (B, 3, H, W), item i from generators[i]
        return randn_tensor(known.shape, generator=generators, device=device, dtype=torch.float32)

    sample = noise() * scheduler.init_noise_sigma
    evaluations = 0
    for here, there in pairwise(positions):
        if there > here:  # reverse step at level timesteps[here], kept pixels imposed first
            timestep = timesteps[here]
            alpha = alphas_cumprod[timestep]
            sample = keep * (alpha.sqrt() * known + (1 - alpha).sqrt() * noise()) + (1 - keep) * sample
            model_input = scheduler.scale_model_input(sample, timestep)
            noise_prediction = unet(model_input, timestep.expand(len(sample)), parse_onehot).float()
            evaluations += 1
            sample = scheduler.step(noise_prediction, timestep, sample, generator=generators,
                                    **step_kwargs).prev_sample
        else:  # RePaint jump: forward-noise from level timesteps[here] back up to timesteps[there]
            ratio = alphas_cumprod[timesteps[there]] / alphas_cumprod[timesteps[here]]
            sample = ratio.sqrt() * sample + (1 - ratio).sqrt() * noise()

    generated01 = (sample.clamp(-1, 1) + 1) / 2
    images01 = keep * known01.to(device, torch.float32) + (1 - keep) * generated01
    return InpaintResult(images01=images01, unet_evaluations=evaluations)


@dataclass(frozen=True)
class SamplerSetting:
    """One sampler configuration of ``sampler_curve``.

    Attributes:
        name: row label.
        scheduler: "ddpm", "ddim" or "dpm++" (see ``make_scheduler``).
        num_steps, jump_length, jump_n_sample, eta: as in ``inpaint``.
    """

    name: str
    scheduler: str
    num_steps: int
    jump_length: int = 0
    jump_n_sample: int = 1
    eta: float = 0.0

    @property
    def unet_evaluations(self) -> int:
        return count_unet_evaluations(self.num_steps, self.jump_length, self.jump_n_sample)


# KGI's public sampler: DDPM respaced to 50 steps, RePaint jumps 10 x 10 (410 evaluations).
REFERENCE_SETTING = SamplerSetting("repaint-ddpm-50-j10x10", "ddpm", 50, jump_length=10, jump_n_sample=10)
# The fast sampler: 25 stochastic DDPM steps (trailing spacing), kept pixels re-noised before each evaluation,
# no jumps. With the shipped inpainter (3000 steps) it matches REFERENCE_SETTING inside the holes of 36 held-out
# synthetic pairs (SSIM 0.889 vs 0.890, L1 0.099 vs 0.097, standard errors 0.005 / 0.003) at 6% of its time;
# DDIM-25 (0.875) and DPM-Solver++-25 (0.870) are below it (BENCHMARKS.md, `kgi bench sampler`). With the
# 250-step inpainter before it, DDIM-25 had been the better one: re-measure when the inpainter changes.
FAST_SETTING = SamplerSetting("repaint-ddpm-25", "ddpm", 25)
DEFAULT_CURVE_SETTINGS: tuple[SamplerSetting, ...] = (
    REFERENCE_SETTING,
    FAST_SETTING,
    SamplerSetting("repaint-ddpm-13-j4x2", "ddpm", 13, jump_length=4, jump_n_sample=2),
    SamplerSetting("repaint-ddpm-10", "ddpm", 10),
    SamplerSetting("ddim-25", "ddim", 25),
    SamplerSetting("dpm++-25", "dpm++", 25),
)


def sampler_curve(unet: torch.nn.Module, train_scheduler: SchedulerMixin, target01: torch.Tensor,
                  keep_mask: torch.Tensor, parse_onehot: torch.Tensor, *,
                  settings: tuple[SamplerSetting, ...] = DEFAULT_CURVE_SETTINGS, seed: int = 0,
                  batch_size: int = 16) -> list[dict]:
    """UNet evaluations vs. quality of inpainting a held-out set, one row per sampler setting.

    The known image is ``target01`` itself (only its kept pixels are used); the quality is measured inside the
    inpainted region (``keep_mask == 0``) against ``target01``.

    Args:
        unet: the trained noise predictor.
        train_scheduler: the training scheduler (its config gives the noise schedule).
        target01: (N, 3, H, W) ground-truth images in [0, 1].
        keep_mask: (N, 1, H, W) 1 = kept, 0 = inpainted (must leave something to inpaint in every image).
        parse_onehot: (N, 13, H, W) the parse each image is conditioned on.
        settings: the samplers to compare.
        seed: image ``n`` is sampled with seed ``seed + n`` under every setting.
        batch_size: images per ``inpaint`` call.

    Returns a list of dicts: the setting's fields, ``unet_evaluations``, ``ssim_mean``, ``ssim_se``,
    ``l1_mean``, ``l1_se`` (standard errors over images) and ``seconds_per_image``.
    """
    hole = 1 - keep_mask.float()
    rows = []
    for setting in settings:
        scheduler = make_scheduler(setting.scheduler, train_scheduler.config)
        started = time.perf_counter()
        outputs = []
        for start in range(0, len(target01), batch_size):
            stop = min(start + batch_size, len(target01))
            result = inpaint(unet, scheduler, target01[start:stop], keep_mask[start:stop],
                             parse_onehot[start:stop], num_steps=setting.num_steps,
                             seeds=list(range(seed + start, seed + stop)), jump_length=setting.jump_length,
                             jump_n_sample=setting.jump_n_sample, eta=setting.eta)
            outputs.append(result.images01.cpu())
        seconds = time.perf_counter() - started
        generated01 = torch.cat(outputs)
        ssim_mean, ssim_se = metrics.mean_and_standard_error(metrics.ssim(generated01, target01, hole))
        l1_mean, l1_se = metrics.mean_and_standard_error(metrics.masked_l1(generated01, target01, hole))
        rows.append({**asdict(setting), "unet_evaluations": setting.unet_evaluations, "ssim_mean": ssim_mean,
                     "ssim_se": ssim_se, "l1_mean": l1_mean, "l1_se": l1_se,
                     "seconds_per_image": seconds / len(target01)})
    return rows
