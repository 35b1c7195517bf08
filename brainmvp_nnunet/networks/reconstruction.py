"""Pre-training reconstruction head: from any encoder's bottleneck back to the input resolution.

As published (spec 3.2): only transposed convolutions (kernel = stride, no bias), no skips, no
normalisation, no non-linearity, then a 1x1x1 conv to the output channels. For UniFormer-S this is
512 -> 320 -> 128 -> 64 -> 64 -> 1. The published checkpoint's ``decoder.decoder{5,4,3,2}.transp_conv.conv.weight``
map to ``upsamples.{0,1,2,3}.weight`` and ``decoder.out_1.*`` to ``out.*``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from brainmvp_nnunet.errors import NetworkConfigError
from brainmvp_nnunet.networks.base import PretrainableEncoder, check_axis_order, from_network_axes, to_network_axes


class ReconstructionHead(nn.Module):
    """Linear upsampling decoder for a bottleneck described by per-feature channels and strides.

    Args:
        channels: channels of the encoder's features, highest resolution first.
        strides: cumulative per-axis stride of each feature, highest resolution first.
        out_channels: channels of the reconstruction (1: one modality).

    Each step goes from one feature's resolution to the previous one's with the previous one's
    channels (features at an equal resolution are skipped); the last step reaches stride 1 with
    the first feature's channels.
    """

    def __init__(self, channels: Sequence[int], strides: Sequence[Sequence[int]], out_channels: int = 1):
        super().__init__()
        if len(channels) != len(strides) or not channels:
            raise NetworkConfigError(f"need one stride per feature, got channels={list(channels)} "
                                     f"strides={[list(s) for s in strides]}")
        levels = [tuple(int(s) for s in stride) for stride in strides]
        targets = [(1,) * len(levels[0])] + levels[:-1]
        ups = []
        current = int(channels[-1])
        for i in reversed(range(len(channels))):
            if any(a % b for a, b in zip(levels[i], targets[i], strict=True)):
                raise NetworkConfigError(f"feature strides must grow by integer factors, got {levels}")
            factor = tuple(a // b for a, b in zip(levels[i], targets[i], strict=True))
            if all(f == 1 for f in factor):
                continue
            target_channels = int(channels[max(i - 1, 0)])
            ups.append(nn.ConvTranspose3d(current, target_channels, factor, factor, bias=False))
            current = target_channels
        self.upsamples = nn.ModuleList(ups)
        self.out = nn.Conv3d(current, out_channels, 1)

    def forward(self, bottleneck: torch.Tensor) -> torch.Tensor:
        """(B, C_last, Z/s, Y/s, X/s) -> (B, out_channels, Z, Y, X)."""
        for up in self.upsamples:
            bottleneck = up(bottleneck)
        return self.out(bottleneck)


def build_reconstruction_head(encoder: PretrainableEncoder, out_channels: int = 1) -> ReconstructionHead:
    """The reconstruction head that fits ``encoder``'s bottleneck (channels and stride)."""
    return ReconstructionHead(encoder.out_channels, encoder.feature_strides, out_channels)


class ReconstructionNetwork(nn.Module):
    """Encoder + reconstruction head, as pre-trained; the axis-order swap wraps both.

    ``forward`` returns the reconstruction (nnU-Net axis order) and the bottleneck (in the order the
    network computes in; pool it for the contrastive features).
    """

    def __init__(self, encoder: PretrainableEncoder, head: ReconstructionHead | None = None,
                 axis_order: str = "nnunet"):
        super().__init__()
        self.axis_order = check_axis_order(axis_order)
        self.encoder = encoder
        self.head = head if head is not None else build_reconstruction_head(encoder)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, Z, Y, X) -> (reconstruction (B, out, Z, Y, X), bottleneck)."""
        self.encoder.check_input_shape(x.shape[2:])
        bottleneck = self.encoder(to_network_axes(x, self.axis_order))[-1]
        return from_network_axes(self.head(bottleneck), self.axis_order), bottleneck
