"""Classification network for downstream tasks: a (pre-trainable) encoder, global pooling, MLP head.

BrainMVP evaluates its encoder on four classification tasks (HGG vs LGG, MCI vs NC, ADHD vs NC, ASD
vs NC) with this shape of network: the encoder's deepest feature map is averaged over space and an
MLP maps it to class logits. The encoder is taken from the segmentation network that nnU-Net builds
from the plans, so pre-trained weights load by the same ``encoder.`` prefix as for fine-tuning and
every planner (UniFormer, residual-encoder UNet) gives a classifier without new plans.
"""

from __future__ import annotations

import torch
from torch import nn

from brainmvp_nnunet.errors import NetworkConfigError
from brainmvp_nnunet.networks.base import AxisOrder, to_network_axes


def _deepest_width(encoder: nn.Module) -> int:
    # ours declare out_channels; dynamic_network_architectures' encoders call it output_channels
    widths = getattr(encoder, "out_channels", None) or getattr(encoder, "output_channels", None)
    if not widths:
        raise NetworkConfigError(f"{type(encoder).__name__} declares no out_channels/output_channels")
    return int(widths[-1])


class EncoderClassifier(nn.Module):
    """Encoder -> global average pooling of the deepest feature -> Linear-GELU-Dropout-Linear.

    Args:
        encoder: a module returning a list of feature maps, deepest last (a
            :class:`~brainmvp_nnunet.networks.base.PretrainableEncoder` or a dynamic_network_architectures
            encoder with ``return_skips=True``).
        num_classes: output logits.
        hidden: width of the MLP's hidden layer.
        dropout: dropout before the last layer.
        axis_order: the segmentation network's axis order, so the encoder sees inputs as it was trained.
    """

    def __init__(self, encoder: nn.Module, num_classes: int, hidden: int = 256, dropout: float = 0.2,
                 axis_order: AxisOrder = "nnunet"):
        super().__init__()
        if num_classes < 2:
            raise NetworkConfigError(f"a classifier needs at least 2 classes, got {num_classes}")
        self.encoder = encoder
        self.axis_order = axis_order
        self.head = nn.Sequential(nn.Linear(_deepest_width(encoder), hidden), nn.GELU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, Z, Y, X) -> (B, num_classes) logits."""
        deepest = self.encoder(to_network_axes(x, self.axis_order))[-1]
        return self.head(deepest.mean(dim=tuple(range(2, deepest.ndim))))


def classifier_from_segmentation_network(network: nn.Module, num_classes: int, hidden: int = 256,
                                         dropout: float = 0.2) -> EncoderClassifier:
    """A classifier on the ``encoder`` of a segmentation network (whose decoder is dropped)."""
    encoder = getattr(network, "encoder", None)
    if not isinstance(encoder, nn.Module):
        raise NetworkConfigError(f"{type(network).__name__} has no `encoder` sub-module to classify with")
    return EncoderClassifier(encoder, num_classes, hidden, dropout, getattr(network, "axis_order", "nnunet"))
