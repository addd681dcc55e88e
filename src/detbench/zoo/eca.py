"""Efficient Channel Attention (Wang et al., "ECA-Net", CVPR 2020).

Global average pooling gives one value per channel; a 1-D convolution across
neighbouring channels (no dimensionality reduction) and a sigmoid turn them
into per-channel weights. The kernel size adapts to the channel count C:
k = |(log2(C) + b) / gamma|, rounded up to the next odd number, gamma=2, b=1.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def eca_kernel_size(channels: int, gamma: int = 2, b: int = 1) -> int:
    t = int(abs((math.log2(channels) + b) / gamma))
    return t if t % 2 else t + 1


class ECA(nn.Module):
    """Channel attention that keeps the shape of its input: [B, C, H, W] -> [B, C, H, W]."""

    def __init__(self, channels: int, gamma: int = 2, b: int = 1) -> None:
        super().__init__()
        self.channels = int(channels)
        k = eca_kernel_size(self.channels, gamma, b)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=k // 2, bias=False)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.pool(x).squeeze(-1).transpose(-1, -2)  # [B, 1, C]
        weights = self.gate(self.conv(weights)).transpose(-1, -2).unsqueeze(-1)  # [B, C, 1, 1]
        return x * weights
