"""Stage 3: the semantic-conditioned denoising UNet (KGI's inpainter).

A DDPM noise predictor whose normalisation layers are SPADE-conditioned on the 13-class parse map. It is
trained as a plain denoiser on whole person images (``noise_prediction_loss``); inpainting only happens at
sampling time (``kgi.sampling.inpaint``), where the kept pixels are imposed at every reverse step.

diffusers provides what it does well: ``ModelMixin``/``ConfigMixin`` (``save_pretrained``/``from_pretrained``
as safetensors + ``config.json``), timestep embeddings, the attention block, down/up-sampling. The SPADE blocks
are ours:

    SpadeNorm        GroupNorm without affine, gamma/beta predicted from the parse at the layer's resolution
    SpadeResBlock    the residual block of the UNet, both norms SPADE, timestep added in between
    SpadeDownBlock   ``layers_per_block`` SpadeResBlocks, then a stride-2 convolution
    SpadeMidBlock    SpadeResBlock, self-attention (optional), SpadeResBlock at the lowest resolution
    SpadeUpBlock     ``layers_per_block + 1`` SpadeResBlocks eating the skip connections, then 2x upsampling

Example:

    >>> unet = SpadeUNet.from_preset("tiny")
    >>> scheduler = make_training_scheduler()
    >>> loss = noise_prediction_loss(unet, scheduler, images01, parse_onehot)   # (B,3,H,W), (B,13,H,W)
    >>> unet.save_pretrained("/tmp/inpainter"); SpadeUNet.from_pretrained("/tmp/inpainter")
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention_processor import Attention
from diffusers.models.downsampling import Downsample2D
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.upsampling import Upsample2D
from torch import nn

from kgi.data.labels import NUM_PARSE13

PRESETS: dict[str, dict] = {
    # 2.3 M parameters (9 MB float32): for CPUs, 128x96 or 64x48 (multiples of 8).
    "tiny": dict(block_out_channels=(16, 32, 64, 96), layers_per_block=1, norm_num_groups=8,
                 spade_hidden_channels=16, attention=True, attention_head_dim=32),
    # 114 M parameters: for GPUs, 1024x768 or 512x384 (multiples of 32).
    "base": dict(block_out_channels=(64, 128, 128, 256, 256, 512), layers_per_block=2, norm_num_groups=32,
                 spade_hidden_channels=128, attention=True, attention_head_dim=64),
}


class InpainterInputError(ValueError):
    """An input of the inpainter with the wrong shape, size or value range."""


class SpadeNorm(nn.Module):
    r"""Spatially-adaptive normalisation (SPADE, Park et al. 2019) on a parse map.

    .. math::
        s' = \mathrm{resize}_\mathrm{nearest}(s, H \times W), \quad
        a = \mathrm{ReLU}(\mathrm{Conv}_{3\times3}(s')), \\
        \mathrm{SPADE}(x, s) = \mathrm{GroupNorm}(x) \odot (1 + \gamma(a)) + \beta(a)

    where GroupNorm has no affine parameters and :math:`\gamma, \beta` are 3x3 convolutions, so every pixel is
    scaled and shifted according to the semantic class around it.

    Args:
        channels: channels of the normalised features ``x``.
        parse_channels: classes of the one-hot parse ``s`` (13).
        hidden_channels: channels of the shared hidden map ``a``.
        num_groups: GroupNorm groups; must divide ``channels``.
    """

    def __init__(self, channels: int, parse_channels: int, hidden_channels: int, num_groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(num_groups, channels, eps=1e-6, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(parse_channels, hidden_channels, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden_channels, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden_channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, parse_onehot: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` (B, C, h, w) and modulate it by ``parse_onehot`` (B, K, H, W), resized to (h, w)."""
        parse = F.interpolate(parse_onehot.to(x.dtype), size=x.shape[-2:], mode="nearest")
        hidden = self.shared(parse)
        return self.norm(x) * (1 + self.gamma(hidden)) + self.beta(hidden)


class SpadeResBlock(nn.Module):
    r"""Residual block with SPADE normalisation and a timestep embedding.

    .. math::
        h = \mathrm{Conv}_{3\times3}(\mathrm{SiLU}(\mathrm{SPADE}_1(x, s))) + W_t\,\mathrm{SiLU}(e_t), \\
        y = \mathrm{skip}(x) + \mathrm{Conv}_{3\times3}(\mathrm{Dropout}(\mathrm{SiLU}(\mathrm{SPADE}_2(h, s))))

    with :math:`\mathrm{skip}` the identity, or a 1x1 convolution when the channel count changes, and the
    projected embedding :math:`W_t\,\mathrm{SiLU}(e_t)` broadcast over the pixels.

    Args:
        in_channels, out_channels: channels of ``x`` and ``y``.
        temb_channels: width of the timestep embedding ``e_t``.
        parse_channels, spade_hidden_channels, num_groups: see ``SpadeNorm``.
        dropout: dropout probability before the second convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, parse_channels: int,
                 spade_hidden_channels: int, num_groups: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = SpadeNorm(in_channels, parse_channels, spade_hidden_channels, num_groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = SpadeNorm(out_channels, parse_channels, spade_hidden_channels, num_groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, temb: torch.Tensor, parse_onehot: torch.Tensor) -> torch.Tensor:
        """``x`` (B, C_in, h, w), ``temb`` (B, T), ``parse_onehot`` (B, K, H, W) -> (B, C_out, h, w)."""
        h = self.conv1(F.silu(self.norm1(x, parse_onehot)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h, parse_onehot))))
        return self.skip(x) + h


class SpadeDownBlock(nn.Module):
    r"""One encoder level: :math:`h_{i+1} = \mathrm{ResBlock}_i(h_i, e_t, s)` for ``num_layers`` blocks, then
    :math:`h_\downarrow = \mathrm{Conv}^{\mathrm{stride}\,2}_{3\times3}(h)` unless it is the lowest level.

    Every intermediate ``h`` (after each block and after downsampling) is returned as a skip connection.
    """

    def __init__(self, in_channels: int, out_channels: int, num_layers: int, add_downsample: bool, **res_kwargs):
        super().__init__()
        self.resnets = nn.ModuleList(
            SpadeResBlock(in_channels if i == 0 else out_channels, out_channels, **res_kwargs)
            for i in range(num_layers))
        self.downsample = (Downsample2D(out_channels, use_conv=True, out_channels=out_channels, padding=1, name="op")
                           if add_downsample else None)

    def forward(self, x: torch.Tensor, temb: torch.Tensor, parse_onehot: torch.Tensor
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        for resnet in self.resnets:
            x = resnet(x, temb, parse_onehot)
            skips.append(x)
        if self.downsample is not None:
            x = self.downsample(x)
            skips.append(x)
        return x, skips


class SpadeMidBlock(nn.Module):
    r"""The bottleneck: :math:`y = \mathrm{ResBlock}_2(\mathrm{Attn}(\mathrm{ResBlock}_1(x, e_t, s)), e_t, s)`,
    where Attn is diffusers' residual multi-head self-attention over the pixels (GroupNorm, q/k/v, out
    projection), or the identity when ``attention`` is off.
    """

    def __init__(self, channels: int, attention: bool, attention_head_dim: int, **res_kwargs):
        super().__init__()
        self.resnet1 = SpadeResBlock(channels, channels, **res_kwargs)
        self.attention = Attention(
            channels, heads=max(1, channels // attention_head_dim), dim_head=attention_head_dim,
            norm_num_groups=res_kwargs["num_groups"], residual_connection=True, bias=True, upcast_softmax=True,
            eps=1e-6, _from_deprecated_attn_block=True) if attention else None
        self.resnet2 = SpadeResBlock(channels, channels, **res_kwargs)

    def forward(self, x: torch.Tensor, temb: torch.Tensor, parse_onehot: torch.Tensor) -> torch.Tensor:
        x = self.resnet1(x, temb, parse_onehot)
        if self.attention is not None:
            x = self.attention(x)
        return self.resnet2(x, temb, parse_onehot)


class SpadeUpBlock(nn.Module):
    r"""One decoder level: :math:`h_{i+1} = \mathrm{ResBlock}_i([h_i; \mathrm{skip}_i], e_t, s)` for
    ``num_layers`` blocks, each concatenating the last unused encoder skip, then
    :math:`h_\uparrow = \mathrm{Conv}_{3\times3}(\mathrm{upsample}_\mathrm{nearest}(h))` unless it is the top level.

    Args:
        in_channels: channels coming from the level below.
        out_channels: channels of this level.
        skip_channels: channels of the skip connections it consumes, in consumption order.
    """

    def __init__(self, in_channels: int, out_channels: int, skip_channels: list[int], add_upsample: bool,
                 **res_kwargs):
        super().__init__()
        self.resnets = nn.ModuleList(
            SpadeResBlock((in_channels if i == 0 else out_channels) + skip, out_channels, **res_kwargs)
            for i, skip in enumerate(skip_channels))
        self.upsample = Upsample2D(out_channels, use_conv=True, out_channels=out_channels) if add_upsample else None

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor], temb: torch.Tensor,
                parse_onehot: torch.Tensor) -> torch.Tensor:
        """Consumes ``len(self.resnets)`` tensors from the end of ``skips`` (the list is shortened in place)."""
        for resnet in self.resnets:
            x = resnet(torch.cat([x, skips.pop()], dim=1), temb, parse_onehot)
        if self.upsample is not None:
            x = self.upsample(x)
        return x


class SpadeUNet(ModelMixin, ConfigMixin):
    r"""Denoising UNet conditioned on a 13-class parse through SPADE normalisation (KGI stage 3).

    .. math::
        \hat\epsilon = f_\theta(x_t, t, s), \qquad x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon

    Args:
        in_channels, out_channels: image channels (3) in and noise channels out.
        parse_channels: classes of the one-hot parse (13). A pixel whose one-hot is all zero is "unknown".
        block_out_channels: channels per resolution level, top to bottom; the image side must be a multiple of
            ``2 ** (len(block_out_channels) - 1)``.
        layers_per_block: SpadeResBlocks per encoder level (the decoder has one more).
        norm_num_groups: GroupNorm groups in every SPADE norm and the attention norm.
        spade_hidden_channels: width of the hidden map inside each SPADE norm.
        attention: self-attention in the bottleneck (lowest resolution) or not.
        attention_head_dim: channels per attention head.
        dropout: dropout in the residual blocks (training only).
    """

    @register_to_config
    def __init__(self, in_channels: int = 3, out_channels: int = 3, parse_channels: int = NUM_PARSE13,
                 block_out_channels: tuple[int, ...] = (16, 32, 64, 96), layers_per_block: int = 1,
                 norm_num_groups: int = 8, spade_hidden_channels: int = 16, attention: bool = True,
                 attention_head_dim: int = 32, dropout: float = 0.0):
        super().__init__()
        block_out_channels = tuple(block_out_channels)
        if any(c % norm_num_groups for c in block_out_channels):
            raise InpainterInputError(
                f"block_out_channels {block_out_channels} must all be multiples of norm_num_groups {norm_num_groups}")
        temb_channels = block_out_channels[0] * 4
        res_kwargs = dict(temb_channels=temb_channels, parse_channels=parse_channels,
                          spade_hidden_channels=spade_hidden_channels, num_groups=norm_num_groups, dropout=dropout)

        self.time_proj = Timesteps(block_out_channels[0], flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(block_out_channels[0], temb_channels)
        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], 3, padding=1)

        last = len(block_out_channels) - 1
        self.down_blocks = nn.ModuleList()
        skip_channels = [block_out_channels[0]]  # conv_in's output is the first skip
        for level, channels in enumerate(block_out_channels):
            in_ch = block_out_channels[max(level - 1, 0)]
            self.down_blocks.append(SpadeDownBlock(in_ch, channels, layers_per_block, level < last, **res_kwargs))
            skip_channels += [channels] * (layers_per_block + (level < last))

        self.mid_block = SpadeMidBlock(block_out_channels[-1], attention, attention_head_dim, **res_kwargs)

        self.up_blocks = nn.ModuleList()
        previous = block_out_channels[-1]
        for level in reversed(range(len(block_out_channels))):
            channels = block_out_channels[level]
            level_skips = [skip_channels.pop() for _ in range(layers_per_block + 1)]
            self.up_blocks.append(SpadeUpBlock(previous, channels, level_skips, level > 0, **res_kwargs))
            previous = channels

        self.norm_out = SpadeNorm(block_out_channels[0], parse_channels, spade_hidden_channels, norm_num_groups)
        self.conv_out = nn.Conv2d(block_out_channels[0], out_channels, 3, padding=1)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "SpadeUNet":
        """A freshly initialised UNet of a named size: ``"tiny"`` (CPU, 128x96) or ``"base"`` (GPU).

        ``overrides`` replace single config entries, e.g. ``attention=False``.
        """
        if name not in PRESETS:
            raise InpainterInputError(f"preset {name!r} is unknown; choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], **kwargs) -> "SpadeUNet":
        """Load a UNet written by ``save_pretrained`` from a local directory; never downloads, never unpickles
        (a folder holding only a pickled ``.bin`` is refused).

        Args:
            directory: holds ``config.json`` and ``diffusion_pytorch_model.safetensors``.
            kwargs: passed to ``ModelMixin.from_pretrained`` (e.g. ``torch_dtype``).
        """
        if not Path(directory, "config.json").is_file():
            raise InpainterInputError(f"{str(directory)!r} is not a saved inpainter (no config.json there)")
        kwargs = {"local_files_only": True, "low_cpu_mem_usage": False, "use_safetensors": True, **kwargs}
        return super().from_pretrained(directory, **kwargs)

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this (one halving per level below the top)."""
        return 2 ** (len(self.config.block_out_channels) - 1)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | int, parse_onehot: torch.Tensor
                ) -> torch.Tensor:
        """Predict the noise in ``sample``.

        Args:
            sample: (B, 3, H, W) noisy image in the [-1, 1] scale of the clean images.
            timestep: (B,) or scalar training timesteps (0 .. num_train_timesteps - 1).
            parse_onehot: (B, 13, H, W) one-hot parse (all-zero pixels = unknown class).

        Returns the predicted noise, (B, 3, H, W).
        """
        self._check_inputs(sample, parse_onehot)
        timesteps = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(sample.shape[0])
        # Timesteps returns float32; cast to the weights' dtype (autocast handles mixed precision itself).
        temb = self.time_embedding(self.time_proj(timesteps).to(self.conv_in.weight.dtype))

        x = self.conv_in(sample)
        skips = [x]
        for block in self.down_blocks:
            x, block_skips = block(x, temb, parse_onehot)
            skips += block_skips
        x = self.mid_block(x, temb, parse_onehot)
        for block in self.up_blocks:
            x = block(x, skips, temb, parse_onehot)
        return self.conv_out(F.silu(self.norm_out(x, parse_onehot)))

    def _check_inputs(self, sample: torch.Tensor, parse_onehot: torch.Tensor) -> None:
        expected = self.config.in_channels
        if sample.ndim != 4 or sample.shape[1] != expected:
            raise InpainterInputError(f"sample must be (B, {expected}, H, W); got {tuple(sample.shape)}")
        classes = self.config.parse_channels
        if parse_onehot.ndim != 4 or parse_onehot.shape[1] != classes:
            raise InpainterInputError(f"parse_onehot must be (B, {classes}, H, W); got {tuple(parse_onehot.shape)}")
        if parse_onehot.shape[0] != sample.shape[0] or parse_onehot.shape[-2:] != sample.shape[-2:]:
            raise InpainterInputError(
                f"parse_onehot {tuple(parse_onehot.shape)} must match sample {tuple(sample.shape)} in batch and size")
        height, width = sample.shape[-2:]
        if height % self.size_multiple or width % self.size_multiple:
            raise InpainterInputError(
                f"sample size {height}x{width} must be a multiple of {self.size_multiple} on both sides")


def make_training_scheduler(num_train_timesteps: int = 1000) -> DDPMScheduler:
    """The noise schedule KGI trains with: DDPM, linear betas 1e-4 .. 0.02 over 1000 steps, epsilon target.

    Save it next to the UNet (``scheduler.save_pretrained(dir)``); samplers are built from its config.
    """
    return DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_schedule="linear", beta_start=1e-4,
                         beta_end=0.02, prediction_type="epsilon", clip_sample=True)


def noise_prediction_loss(unet: SpadeUNet, scheduler: DDPMScheduler, images01: torch.Tensor,
                          parse_onehot: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""The epsilon loss of a denoiser on whole person images conditioned on their parse.

    .. math:: \mathcal{L} = \mathbb{E}_{t, \epsilon}\,\lVert \epsilon - f_\theta(\sqrt{\bar\alpha_t}\,x_0
              + \sqrt{1-\bar\alpha_t}\,\epsilon,\ t,\ s) \rVert^2, \quad x_0 = 2\,\mathrm{image} - 1

    Args:
        unet: the denoiser.
        scheduler: supplies ``alphas_cumprod`` (``add_noise``) and ``num_train_timesteps``.
        images01: (B, 3, H, W) person images in [0, 1].
        parse_onehot: (B, 13, H, W) their one-hot parse.
        generator: draws the timesteps and the noise (on the images' device); None = global RNG.

    Returns the scalar mean-squared error (float32, also under autocast).
    """
    if images01.ndim != 4 or images01.shape[1] != 3:
        raise InpainterInputError(f"images01 must be (B, 3, H, W); got {tuple(images01.shape)}")
    clean = images01 * 2 - 1
    noise = torch.randn(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (clean.shape[0],), generator=generator,
                              device=clean.device)
    noisy = scheduler.add_noise(clean, noise, timesteps)
    return F.mse_loss(unet(noisy, timesteps, parse_onehot).float(), noise.float())
