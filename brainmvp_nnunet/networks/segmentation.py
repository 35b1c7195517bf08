"""UniFormer segmentation network for nnU-Net: encoder + UNETR-style decoder with deep supervision.

The decoder follows the published downstream network (UniUnet): per level a transposed conv
(k2 s2, no bias), concatenation with the encoder skip, and a residual conv block (conv3-IN-LeakyReLU
twice plus a 1x1x1 residual conv, InstanceNorm without affine); a kernel-3 projection of the input
(conv + LayerNorm) is the full-resolution skip. Block names mirror the published ones (``decoder5``..
``decoder2`` with ``transp_conv``, ``proj1``).

Deep supervision departs from the published network on purpose: instead of upsampling two auxiliary
heads to full resolution, every decoder level gets a 1x1x1 head and the logits are returned at their
own resolution, highest first, as nnU-Net's loss expects. nnU-Net derives the target scales from
``arch_kwargs['strides']`` (``1 / cumprod(strides)[:-1]``), so ``strides`` is
``[[1,1,1]] + [[2,2,2]] * 4``: five entries give the four scales 1, 1/2, 1/4, 1/8 of the outputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from brainmvp_nnunet.errors import NetworkConfigError
from brainmvp_nnunet.networks.base import check_axis_order, from_network_axes, to_network_axes
from brainmvp_nnunet.networks.uniformer import (
    N_STAGES,
    UNIFORMER_S_DEPTHS,
    UNIFORMER_S_WIDTHS,
    PatchEmbed,
    UniFormerEncoder,
)

SEG_STRIDES: list[list[int]] = [[1, 1, 1]] + [[2, 2, 2]] * N_STAGES


def uniformer_arch_kwargs(widths: Sequence[int] = UNIFORMER_S_WIDTHS, depths: Sequence[int] = UNIFORMER_S_DEPTHS,
                          head_dim: int = 64, mlp_ratio: float = 4.0, drop_path_rate: float = 0.0,
                          axis_order: str = "nnunet") -> dict[str, Any]:
    """The JSON-able ``arch_kwargs`` a planner writes for :class:`UniFormerSegNet` (no imports required)."""
    return {"widths": [int(w) for w in widths], "depths": [int(d) for d in depths], "head_dim": int(head_dim),
            "mlp_ratio": float(mlp_ratio), "drop_path_rate": float(drop_path_rate),
            "strides": [list(s) for s in SEG_STRIDES], "axis_order": axis_order}


class ResidualConvBlock(nn.Module):
    """conv3-IN-LeakyReLU-conv3-IN plus a 1x1x1 conv-IN shortcut, summed and LeakyReLU'd (no biases)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm1 = nn.InstanceNorm3d(out_channels)
        self.conv2 = nn.Conv3d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = nn.InstanceNorm3d(out_channels)
        self.conv3 = nn.Conv3d(in_channels, out_channels, 1, bias=False)
        self.norm3 = nn.InstanceNorm3d(out_channels)
        self.lrelu = nn.LeakyReLU(0.01, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, Cin, ...) -> (B, Cout, ...)."""
        out = self.norm2(self.conv2(self.lrelu(self.norm1(self.conv1(x)))))
        return self.lrelu(out + self.norm3(self.conv3(x)))


class UpBlock(nn.Module):
    """Transposed conv k2 s2 (``transp_conv``), concat the skip, :class:`ResidualConvBlock` (``conv_block``)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.transp_conv = nn.ConvTranspose3d(in_channels, out_channels, 2, 2, bias=False)
        self.conv_block = ResidualConvBlock(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Upsample ``x`` x2 and fuse it with ``skip`` (same size, ``out_channels`` channels)."""
        return self.conv_block(torch.cat([self.transp_conv(x), skip], dim=1))


class UniFormerSegDecoder(nn.Module):
    """UNETR-style decoder over the four UniFormer features plus a full-resolution input projection.

    ``deep_supervision`` may be flipped at any time (nnU-Net does it before validation).
    ``seg_layers`` are ordered like the outputs: highest resolution first.
    """

    def __init__(self, input_channels: int, encoder_channels: Sequence[int], num_classes: int,
                 deep_supervision: bool = False):
        super().__init__()
        c1, c2, c3, c4 = encoder_channels
        self.deep_supervision = deep_supervision
        self.num_classes = num_classes
        self.proj1 = PatchEmbed(input_channels, c1, kernel_size=3, stride=1, padding=1)
        self.decoder5 = UpBlock(c4, c3)
        self.decoder4 = UpBlock(c3, c2)
        self.decoder3 = UpBlock(c2, c1)
        self.decoder2 = UpBlock(c1, c1)
        self.level_channels = (c1, c1, c2, c3)  # outputs of decoder2..5, highest resolution first
        self.seg_layers = nn.ModuleList(nn.Conv3d(c, num_classes, 1) for c in self.level_channels)

    def forward(self, x: torch.Tensor, features: Sequence[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        """Logits from the input ``x`` and the encoder ``features`` (strides 2..16)."""
        x1, x2, x3, x4 = features
        d5 = self.decoder5(x4, x3)
        d4 = self.decoder4(d5, x2)
        d3 = self.decoder3(d4, x1)
        d2 = self.decoder2(d3, self.proj1(x))
        if not self.deep_supervision:
            return self.seg_layers[0](d2)
        return [head(d) for head, d in zip(self.seg_layers, (d2, d3, d4, d5), strict=True)]

    def compute_conv_feature_map_size(self, patch_size: Sequence[int]) -> int:
        """Conv output elements per sample: projection, 4 per up block (transp, 3 convs), the used heads."""
        voxels = math.prod(int(p) for p in patch_size)
        total = self.level_channels[0] * voxels
        for level, channels in enumerate(self.level_channels):
            n = voxels // 8 ** level
            total += 4 * channels * n
            if self.deep_supervision or level == 0:
                total += self.num_classes * n
        return total


class UniFormerSegNet(nn.Module):
    """BrainMVP's UniFormer segmentation network with nnU-Net's constructor and deep-supervision conventions.

    Args:
        input_channels: image channels (modalities).
        num_classes: output channels (labels or regions).
        deep_supervision: return a list of logits (full, 1/2, 1/4, 1/8 resolution) instead of one tensor.
        widths, depths, head_dim, mlp_ratio, drop_path_rate: :class:`UniFormerEncoder` arguments.
        strides: must be ``[[1,1,1]] + [[2,2,2]] * 4`` (or None); nnU-Net reads it to downsample the
            deep-supervision targets, so it has to describe this network.
        axis_order: "nnunet" computes on nnU-Net's (z, y, x); "upstream" swaps the last two axes before
            the encoder and back after the decoder, the order the published weights were trained on.
    """

    def __init__(self, input_channels: int, num_classes: int, deep_supervision: bool = False, *,
                 widths: Sequence[int] = UNIFORMER_S_WIDTHS, depths: Sequence[int] = UNIFORMER_S_DEPTHS,
                 head_dim: int = 64, mlp_ratio: float = 4.0, drop_path_rate: float = 0.0,
                 strides: Sequence[Sequence[int]] | None = None, axis_order: str = "nnunet"):
        super().__init__()
        if strides is not None and [[int(s) for s in level] for level in strides] != SEG_STRIDES:
            raise NetworkConfigError(f"{type(self).__name__} has fixed strides {SEG_STRIDES} (stride-2 patch "
                                     f"embeddings); got strides={[list(s) for s in strides]}")
        self.axis_order = check_axis_order(axis_order)
        self.strides = [list(s) for s in SEG_STRIDES]
        self.encoder = UniFormerEncoder(input_channels, widths, depths, head_dim, mlp_ratio, drop_path_rate)
        self.decoder = UniFormerSegDecoder(input_channels, self.encoder.out_channels, num_classes, deep_supervision)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """(B, C, Z, Y, X), every axis divisible by 16 -> logits (list when deep supervision is on)."""
        self.encoder.check_input_shape(x.shape[2:])
        x = to_network_axes(x, self.axis_order)
        out = self.decoder(x, self.encoder(x))
        if isinstance(out, list):
            return [from_network_axes(o, self.axis_order) for o in out]
        return from_network_axes(out, self.axis_order)

    def compute_conv_feature_map_size(self, patch_size: Sequence[int]) -> int:
        """Per-sample activation estimate in the unit nnU-Net's planner compares against its reference.

        Counts every conv/linear output once, as dynamic_network_architectures does for its U-Nets
        (the default PlainConvUNet gives 1.9e8 at 96^3 and 4.5e8 at 128^3, against a reference of 5.6e8 for
        8 GB at batch 2; UniFormer-S gives 6.4e8 at 96^3).
        The attention matrices are not counted: SDPA's fused kernels do not store them.
        """
        if len(patch_size) != 3:
            raise NetworkConfigError(f"patch_size must have 3 axes (Z, Y, X) without channels, got {patch_size}")
        return self.encoder.compute_conv_feature_map_size(patch_size) + \
            self.decoder.compute_conv_feature_map_size(patch_size)
