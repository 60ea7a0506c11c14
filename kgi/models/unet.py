"""The U-Net both parse networks are made of: the target-parse network of stage 2a (``kgi.models.parse.ParseUNet``)
and the synthetic-only human parser (``kgi.parsing.ParserUNet``). Each subclass says what enters it and checks its
input; this module holds the layers.

Level ``i`` (resolution ``H / 2**i``) has ``min(base_channels * 2**i, max_channels)`` channels::

    x (B,C_in,H,W) -> ConvBlock -> [maxpool -> ConvBlock] x levels
      -> [upsample, concat skip -> ConvBlock] x levels -> 1x1 conv -> logits (B,C_out,H,W)

Parameter names (``stem``, ``down.i``, ``up.i``, ``head``) are those of the shipped checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from kgi.models.checkpoint import SafetensorsModel


class ConvBlock(nn.Sequential):
    """Two (3x3 conv -> GroupNorm -> SiLU) layers."""

    def __init__(self, in_channels: int, out_channels: int):
        groups = 8 if out_channels % 8 == 0 else 1
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.GroupNorm(groups, out_channels), nn.SiLU(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.GroupNorm(groups, out_channels), nn.SiLU(),
        )


class UNet(SafetensorsModel):
    """A U-Net with ``levels`` 2x max-pool downsamplings and as many bilinear upsamplings with skip connections.

    Args:
        in_channels: channels of the input.
        out_channels: channels of the output (the classes' logits).
        base_channels: channels at full resolution.
        max_channels: cap on the channels of the deeper levels.
        levels: 2x downsamplings; H and W of the input must be multiples of ``2**levels``.
    """

    def __init__(self, in_channels: int, out_channels: int, base_channels: int, max_channels: int, levels: int):
        super().__init__()
        if base_channels < 1 or max_channels < base_channels or levels < 1:
            raise ValueError("need 1 <= base_channels <= max_channels and levels >= 1")
        widths = [min(base_channels * 2**level, max_channels) for level in range(levels + 1)]
        self.stem = ConvBlock(in_channels, widths[0])
        self.down = nn.ModuleList(ConvBlock(widths[i], widths[i + 1]) for i in range(levels))
        self.up = nn.ModuleList(ConvBlock(widths[i + 1] + widths[i], widths[i]) for i in range(levels))
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: (B, in_channels, H, W), H and W multiples of ``2**levels``. Returns (B, out_channels, H, W)."""
        skips = [self.stem(x)]
        for down in self.down:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        h = skips.pop()
        for up in reversed(self.up):
            skip = skips.pop()
            h = up(torch.cat([F.interpolate(h, size=skip.shape[2:], mode="bilinear", align_corners=False), skip], 1))
        return self.head(h)
