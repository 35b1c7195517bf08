"""What pre-training needs from an encoder, and the shape/axis helpers every network shares.

BrainMVP's pre-training only needs "an encoder that returns a bottleneck of known stride":
:class:`PretrainableEncoder` states that contract, so the UniFormer encoder and nnU-Net's residual
encoder can both be pre-trained by the same code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from brainmvp_nnunet.errors import NetworkConfigError

AxisOrder = Literal["nnunet", "upstream"]
AXIS_ORDERS: tuple[str, ...] = ("nnunet", "upstream")


class PretrainableEncoder(nn.Module, ABC):
    """A 3-D encoder that returns multi-scale features, the last one being the bottleneck.

    Subclasses set ``out_channels`` (channels of each returned feature) and ``feature_strides``
    (cumulative per-axis stride of each returned feature w.r.t. the input), both ordered like the
    features: highest resolution first.
    """

    out_channels: tuple[int, ...]
    feature_strides: tuple[tuple[int, int, int], ...]

    @property
    def total_stride(self) -> tuple[int, int, int]:
        """Per-axis stride of the bottleneck; every input axis must be divisible by it."""
        return self.feature_strides[-1]

    @abstractmethod
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features of ``x`` (B, C, Z, Y, X), highest resolution first; the last is the bottleneck."""

    def set_activation_checkpointing(self, enabled: bool) -> None:
        """Trade compute for memory: recompute activations in backward instead of keeping them.

        The default keeps everything (encoders without such an option, e.g. nnU-Net's residual encoder).
        """

    def check_input_shape(self, spatial_shape: Sequence[int]) -> None:
        """Raise :class:`NetworkConfigError` unless every axis is divisible by :attr:`total_stride`."""
        check_divisible(spatial_shape, self.total_stride, type(self).__name__)


def check_divisible(spatial_shape: Sequence[int], stride: Sequence[int], what: str) -> None:
    """Raise :class:`NetworkConfigError` when an axis of ``spatial_shape`` is not a multiple of ``stride``."""
    shape, stride = tuple(int(s) for s in spatial_shape), tuple(int(s) for s in stride)
    if len(shape) != len(stride) or any(n <= 0 or n % s for n, s in zip(shape, stride, strict=True)):
        raise NetworkConfigError(
            f"{what}: spatial size {shape} is not divisible by the total stride {stride} on every axis; "
            f"use a patch whose every axis is a positive multiple of the stride "
            f"(e.g. {tuple(max(1, round(n / s)) * s for n, s in zip(shape, stride, strict=False))})")


def check_axis_order(axis_order: str) -> AxisOrder:
    """Validate an ``axis_order`` option ("nnunet" or "upstream")."""
    if axis_order not in AXIS_ORDERS:
        raise NetworkConfigError(f"axis_order must be one of {AXIS_ORDERS}, got {axis_order!r}")
    return axis_order  # type: ignore[return-value]


def to_network_axes(x: torch.Tensor, axis_order: AxisOrder) -> torch.Tensor:
    """nnU-Net (z, y, x) -> the order the network computes in.

    "upstream": the published BrainMVP weights were trained on (z, x, y) (NIfTI/RAS permuted by the
    encoder, spec 10.1), so the last two axes are swapped. The swap is its own inverse.
    """
    return x.transpose(-1, -2).contiguous() if axis_order == "upstream" else x


def from_network_axes(x: torch.Tensor, axis_order: AxisOrder) -> torch.Tensor:
    """Inverse of :func:`to_network_axes`: back to nnU-Net's (z, y, x)."""
    return to_network_axes(x, axis_order)
