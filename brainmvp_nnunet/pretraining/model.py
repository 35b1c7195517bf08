"""The pre-training network as one module: encoder, reconstruction head, templates, projection head.

Everything trainable lives in :class:`PretrainingModel`, and its ``forward`` computes the whole loss
(template windows, views, encoder, head, InfoNCE), so that DDP sees every parameter use inside one
forward call and nnU-Net's checkpointing saves the templates with the network.

The encoder is built from a plans configuration (``network_class_name``, ``arch_kwargs``) with one
input channel: the UniFormer encoder for :class:`~brainmvp_nnunet.networks.UniFormerSegNet` plans,
nnU-Net's residual encoder for ``ResidualEncoderUNet`` plans.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from brainmvp_nnunet.errors import NetworkConfigError
from brainmvp_nnunet.networks.base import PretrainableEncoder, check_axis_order, from_network_axes, to_network_axes
from brainmvp_nnunet.networks.reconstruction import build_reconstruction_head
from brainmvp_nnunet.networks.resenc import residual_encoder_from_arch_kwargs
from brainmvp_nnunet.networks.segmentation import UniFormerSegNet
from brainmvp_nnunet.networks.uniformer import UniFormerEncoder
from brainmvp_nnunet.pretraining.losses import PretrainConfig, ProjectionHead, reconstruction_loss
from brainmvp_nnunet.pretraining.step import build_views, pretrain_losses
from brainmvp_nnunet.pretraining.templates import ModalityTemplates

# The canonical field of view of the templates (BraTS/SRI24: 155 x 240 x 240 voxels of 1 mm), z, y, x in mm.
CANONICAL_FOV_MM: tuple[float, float, float] = (155.0, 240.0, 240.0)
_UNIFORMER = f"{UniFormerSegNet.__module__}.{UniFormerSegNet.__name__}"
_RESENC = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"
# UniFormerSegNet kwargs that only its decoder or nnU-Net's deep-supervision scaling use
_UNIFORMER_NON_ENCODER = frozenset({"strides", "axis_order"})


def template_grid_shape(spacing: Sequence[float], fov_mm: Sequence[float] = CANONICAL_FOV_MM) -> tuple[int, int, int]:
    """Template grid covering ``fov_mm`` at ``spacing`` (z, y, x): ``round(fov / spacing)`` voxels per axis."""
    return tuple(max(1, round(f / s)) for f, s in zip(fov_mm, spacing, strict=True))  # type: ignore[return-value]


def build_pretraining_encoder(network_class_name: str, arch_kwargs: Mapping[str, Any],
                              requires_import: Sequence[str] = ()) -> tuple[PretrainableEncoder, str]:
    """The 1-channel encoder of the segmentation network a plans configuration names, and its axis order.

    Raises:
        NetworkConfigError: for any other network class (nnU-Net's PlainConvUNet has no adapter yet).
    """
    if network_class_name == _UNIFORMER:
        kwargs = {k: v for k, v in arch_kwargs.items() if k not in _UNIFORMER_NON_ENCODER}
        return UniFormerEncoder(1, **kwargs), str(arch_kwargs.get("axis_order", "nnunet"))
    if network_class_name == _RESENC:
        return residual_encoder_from_arch_kwargs(1, arch_kwargs, requires_import), "nnunet"
    raise NetworkConfigError(f"BrainMVP pre-training supports {_UNIFORMER} and {_RESENC} plans, got "
                             f"{network_class_name}; plan with BrainMVPPlanner or BrainMVPResEncPlanner")


class PretrainingModel(nn.Module):
    """Encoder + reconstruction head (``config.reconstruction_head``) + modality templates (+ projection head)
    with the loss as forward.

    State-dict keys: ``encoder.*`` (what the fine-tuning network loads), ``head.*``,
    ``templates.templates`` and ``projection.*``, the layout the transfer readers expect of a
    pre-training checkpoint.

    Args:
        encoder: a 1-channel :class:`PretrainableEncoder`.
        templates: the learnable templates; their slot index is the dataset channel index.
        config: the method's settings (:class:`PretrainConfig`).
        axis_order: "upstream" swaps the last two axes around encoder and head (see ``networks.base``).
        activation_checkpointing: recompute parts of the encoder in backward where it supports it
            (:meth:`PretrainableEncoder.set_activation_checkpointing`): less memory, same numbers.
    """

    def __init__(self, encoder: PretrainableEncoder, templates: ModalityTemplates, config: PretrainConfig,
                 axis_order: str = "nnunet", activation_checkpointing: bool = True):
        super().__init__()
        self.config = config
        self.axis_order = check_axis_order(axis_order)
        encoder.set_activation_checkpointing(activation_checkpointing)
        self.encoder = encoder
        self.head = build_reconstruction_head(encoder, config.reconstruction_head)
        self.templates = templates
        self.projection = ProjectionHead(encoder.out_channels[-1], encoder.out_channels[-1],
                                         config.projection_dim) if config.projection else None

    def _features(self, views: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder(to_network_axes(views, self.axis_order))

    def _reconstruct(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        return from_network_axes(self.head(features), self.axis_order)

    def forward(self, target: torch.Tensor, partner: torch.Tensor, has_partner: torch.Tensor,
                slots: Sequence[int], origins: Sequence[Sequence[int]], mask_a: torch.Tensor, mask_b: torch.Tensor,
                epoch: int, num_epochs: int) -> dict[str, torch.Tensor]:
        """Losses of one batch (:func:`pretrain_losses`) plus ``template_only``, the MSE of predicting the
        template window alone (the baseline the reconstruction has to beat; detached).

        ``slots`` and ``origins`` (template grid voxels, from ``patch_origin_to_template_origin``) give the
        template window of every sample; the other tensors are (B, 1, Z, Y, X) (``has_partner`` (B,)).
        """
        self.encoder.check_input_shape(target.shape[2:])
        template = self.templates(slots, origins, target.shape[2:])
        losses = pretrain_losses(self._features, self._reconstruct, target, partner, has_partner, template,
                                 mask_a, mask_b, epoch, num_epochs, self.config, self.projection)
        losses["template_only"] = reconstruction_loss(template.detach(), target)
        return losses

    @torch.no_grad()
    def reconstruct(self, target: torch.Tensor, partner: torch.Tensor, has_partner: torch.Tensor,
                    slots: Sequence[int], origins: Sequence[Sequence[int]], mask_a: torch.Tensor, mask_b: torch.Tensor,
                    use_partner: bool) -> dict[str, torch.Tensor]:
        """Views and reconstructions for pictures: ``template``, ``view_a``, ``view_b``, ``rec_a``, ``rec_b``."""
        template = self.templates(slots, origins, target.shape[2:])
        view_a, view_b = build_views(target, partner, has_partner, template, mask_a, mask_b, use_partner)
        rec = self._reconstruct(self._features(torch.cat([view_a, view_b])))
        b = target.shape[0]
        return {"template": template, "view_a": view_a, "view_b": view_b, "rec_a": rec[:b], "rec_b": rec[b:]}
