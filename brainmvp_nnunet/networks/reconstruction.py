"""Pre-training reconstruction heads: from an encoder's features back to the input resolution.

``linear`` (:class:`ReconstructionHead`), as published (spec 3.2): only transposed convolutions
(kernel = stride, no bias) from the bottleneck, no skips, no normalisation, no non-linearity, then a
1x1x1 conv to the output channels. For UniFormer-S this is 512 -> 320 -> 128 -> 64 -> 64 -> 1. The
published checkpoint's ``decoder.decoder{5,4,3,2}.transp_conv.conv.weight`` map to
``upsamples.{0,1,2,3}.weight`` and ``decoder.out_1.*`` to ``out.*``.

``skip`` (:class:`SkipReconstructionHead`), our departure: a light U-Net decoder over every encoder
feature (upsample, concatenate the skip, one conv per level). Each output voxel of
the linear head is a linear function of the one bottleneck cell above it (a stride-16 cube), so the
masked regions can only be filled by what that cell encodes; with small patches (2^3 cells at 32^3) it
learns slowly and noisily. Skip connections give the decoder the finer context around every masked
block, as SparK and nnssl's MAE do for convolutional encoders.

Both heads take the encoder's feature list (highest resolution first, bottleneck last).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from brainmvp_nnunet.errors import NetworkConfigError
from brainmvp_nnunet.networks.base import PretrainableEncoder, check_axis_order, from_network_axes, to_network_axes

RECONSTRUCTION_HEADS: tuple[str, ...] = ("linear", "skip")


def upsampling_factors(strides: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """Per-axis factor from each feature's resolution to the previous one's, bottleneck first; the last
    entry goes from the first feature to stride 1. ``strides``: cumulative, highest resolution first.

    Raises:
        NetworkConfigError: when a stride is not an integer multiple of the previous one.
    """
    levels = [tuple(int(s) for s in stride) for stride in strides]
    targets = [(1,) * len(levels[0])] + levels[:-1]
    factors = []
    for level, target in zip(reversed(levels), reversed(targets), strict=True):
        if any(a % b for a, b in zip(level, target, strict=True)):
            raise NetworkConfigError(f"feature strides must grow by integer factors, got {levels}")
        factors.append(tuple(a // b for a, b in zip(level, target, strict=True)))
    return factors


def _check_features(channels: Sequence[int], strides: Sequence[Sequence[int]]) -> None:
    if len(channels) != len(strides) or not channels:
        raise NetworkConfigError(f"need one stride per feature, got channels={list(channels)} "
                                 f"strides={[list(s) for s in strides]}")


class ReconstructionHead(nn.Module):
    """Linear upsampling decoder from the bottleneck alone (the published head).

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
        _check_features(channels, strides)
        ups = []
        current = int(channels[-1])
        for i, factor in zip(reversed(range(len(channels))), upsampling_factors(strides), strict=True):
            if all(f == 1 for f in factor):
                continue
            target_channels = int(channels[max(i - 1, 0)])
            ups.append(nn.ConvTranspose3d(current, target_channels, factor, factor, bias=False))
            current = target_channels
        self.upsamples = nn.ModuleList(ups)
        self.out = nn.Conv3d(current, out_channels, 1)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Encoder features (bottleneck (B, C_last, Z/s, Y/s, X/s) last) -> (B, out_channels, Z, Y, X)."""
        x = features[-1]
        for up in self.upsamples:
            x = up(x)
        return self.out(x)


class LightUpBlock(nn.Module):
    """Transposed conv (kernel = stride = ``factor``) to the skip's resolution and channels, concatenation
    with the skip, then one conv3-InstanceNorm-LeakyReLU.

    One conv instead of the segmentation decoder's residual block of three (``segmentation.UpBlock``) keeps
    the head cheap where it is widest: with ``UpBlock``s a UniFormer-S step (96^3, 2 cases, 2-core CPU, no
    recomputation) took 56 s instead of 47 s (linear head: 34 s), and learned the proxy task barely faster
    (tiny UniFormer, 200 steps: 0.63 of the template-alone loss against 0.64).
    """

    def __init__(self, in_channels: int, out_channels: int, factor: Sequence[int]):
        super().__init__()
        self.transp_conv = nn.ConvTranspose3d(in_channels, out_channels, factor, factor, bias=False)
        self.conv = nn.Conv3d(2 * out_channels, out_channels, 3, padding=1, bias=False)
        self.norm = nn.InstanceNorm3d(out_channels, affine=True)
        self.nonlin = nn.LeakyReLU(0.01, inplace=True)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Upsample ``x`` to ``skip``'s shape and fuse the two."""
        return self.nonlin(self.norm(self.conv(torch.cat([self.transp_conv(x), skip], dim=1))))


class SkipReconstructionHead(nn.Module):
    """Light U-Net decoder over all encoder features (the ``skip`` head).

    Per feature level, bottleneck first: a :class:`LightUpBlock` to the next finer feature's resolution
    and channels; then a linear transposed conv from the finest feature to stride 1 (none when it is
    already there) and a 1x1x1 conv to the output channels. The raw input is not a skip: the
    reconstruction must come from encoder features.

    Args: as :class:`ReconstructionHead`.
    """

    def __init__(self, channels: Sequence[int], strides: Sequence[Sequence[int]], out_channels: int = 1):
        super().__init__()
        _check_features(channels, strides)
        factors = upsampling_factors(strides)
        levels = zip(reversed(range(1, len(channels))), factors[:-1], strict=True)
        self.up_blocks = nn.ModuleList(LightUpBlock(int(channels[i]), int(channels[i - 1]), factor)
                                       for i, factor in levels)
        first, finest = factors[-1], int(channels[0])
        self.to_full_resolution = nn.Identity() if all(f == 1 for f in first) else \
            nn.ConvTranspose3d(finest, finest, first, first, bias=False)
        self.out = nn.Conv3d(finest, out_channels, 1)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Encoder features (highest resolution first) -> (B, out_channels, Z, Y, X)."""
        x = features[-1]
        for block, skip in zip(self.up_blocks, reversed(features[:-1]), strict=True):
            x = block(x, skip)
        return self.out(self.to_full_resolution(x))


def build_reconstruction_head(encoder: PretrainableEncoder, kind: str = "linear",
                              out_channels: int = 1) -> ReconstructionHead | SkipReconstructionHead:
    """The reconstruction head of ``kind`` ("linear" or "skip") that fits ``encoder``'s features.

    Raises:
        NetworkConfigError: for an unknown ``kind``.
    """
    if kind not in RECONSTRUCTION_HEADS:
        raise NetworkConfigError(f"reconstruction head must be one of {RECONSTRUCTION_HEADS}, got {kind!r}")
    head_class = ReconstructionHead if kind == "linear" else SkipReconstructionHead
    return head_class(encoder.out_channels, encoder.feature_strides, out_channels)


class ReconstructionNetwork(nn.Module):
    """Encoder + reconstruction head, as pre-trained; the axis-order swap wraps both.

    ``forward`` returns the reconstruction (nnU-Net axis order) and the bottleneck (in the order the
    network computes in; pool it for the contrastive features).
    """

    def __init__(self, encoder: PretrainableEncoder, head: nn.Module | None = None, axis_order: str = "nnunet"):
        super().__init__()
        self.axis_order = check_axis_order(axis_order)
        self.encoder = encoder
        self.head = head if head is not None else build_reconstruction_head(encoder)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, Z, Y, X) -> (reconstruction (B, out, Z, Y, X), bottleneck)."""
        self.encoder.check_input_shape(x.shape[2:])
        features = self.encoder(to_network_axes(x, self.axis_order))
        return from_network_axes(self.head(features), self.axis_order), features[-1]
