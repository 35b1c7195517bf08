"""nnU-Net's residual-encoder UNet as a BrainMVP pre-training encoder.

:class:`ResidualEncoderAdapter` presents dynamic_network_architectures' ``ResidualEncoder`` (the
``encoder`` of ``ResidualEncoderUNet``) as a :class:`PretrainableEncoder`. It re-registers the
wrapped encoder's ``stem`` and ``stages`` under the same names, so its state dict has exactly the
keys of ``ResidualEncoderUNet.encoder``: pre-trained weights load into the fine-tuning UNet by the
``encoder.`` prefix.
"""

from __future__ import annotations

import pydoc
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from dynamic_network_architectures.architectures.unet import ResidualEncoderUNet
from dynamic_network_architectures.building_blocks.residual_encoders import ResidualEncoder
from torch import nn

from brainmvp_nnunet.errors import NetworkConfigError
from brainmvp_nnunet.networks.base import PretrainableEncoder

# keys of ResidualEncoderUNet's arch_kwargs that only its decoder uses
_DECODER_ONLY_KWARGS = frozenset({"n_conv_per_stage_decoder", "deep_supervision", "num_classes"})
_DEFAULT_REQUIRES_IMPORT = ("conv_op", "norm_op", "dropout_op", "nonlin")


class ResidualEncoderAdapter(PretrainableEncoder):
    """A ``ResidualEncoder`` returning every stage's output, with channels and strides exposed."""

    def __init__(self, encoder: ResidualEncoder):
        super().__init__()
        if encoder.conv_op is not nn.Conv3d:
            raise NetworkConfigError(f"BrainMVP pre-training needs a 3-D encoder, got conv_op={encoder.conv_op}")
        self.stem = encoder.stem
        self.stages = encoder.stages
        self.out_channels = tuple(int(c) for c in encoder.output_channels)
        cumulative = np.cumprod(np.array(encoder.strides, dtype=int), axis=0)
        self.feature_strides = tuple(tuple(int(s) for s in level) for level in cumulative)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C, Z, Y, X) -> every stage's output, highest resolution first."""
        self.check_input_shape(x.shape[2:])
        if self.stem is not None:
            x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


def residual_encoder_from_arch_kwargs(input_channels: int, arch_kwargs: Mapping[str, Any],
                                      requires_import: Iterable[str] = _DEFAULT_REQUIRES_IMPORT
                                      ) -> ResidualEncoderAdapter:
    """Build the encoder of the ``ResidualEncoderUNet`` described by a plan's ``arch_kwargs``.

    ``requires_import`` names the kwargs given as dotted paths (the plan's ``_kw_requires_import``);
    decoder-only kwargs are ignored, so a plan's arch_kwargs can be passed unchanged. The weights are
    initialised as nnU-Net initialises a ``ResidualEncoderUNet`` trained from scratch.
    """
    kwargs = {k: v for k, v in arch_kwargs.items() if k not in _DECODER_ONLY_KWARGS}
    for name in requires_import:
        if isinstance(kwargs.get(name), str):
            located = pydoc.locate(kwargs[name])
            if located is None:
                raise NetworkConfigError(f"arch_kwargs[{name!r}] = {kwargs[name]!r} cannot be imported")
            kwargs[name] = located
    try:
        encoder = ResidualEncoder(input_channels, return_skips=True, **kwargs)
    except (TypeError, AssertionError) as exc:
        raise NetworkConfigError(f"arch_kwargs do not describe a ResidualEncoder: {exc}") from exc
    encoder.apply(ResidualEncoderUNet.initialize)
    return ResidualEncoderAdapter(encoder)
