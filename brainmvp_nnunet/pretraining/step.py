"""One pre-training step's losses from the prepared inputs: both views, one encoder pass, three losses.

The trainer does the random draws (modalities, masks), the template windows, autocast, backward and
the optimizer step; this function is deterministic given its inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from brainmvp_nnunet.errors import PretrainingError
from brainmvp_nnunet.pretraining.losses import (
    PretrainConfig,
    ProjectionHead,
    contrastive_active,
    contrastive_embedding,
    cross_modal_active,
    info_nce,
    reconstruction_loss,
)
from brainmvp_nnunet.pretraining.masking import apply_fill


def build_views(
    target: torch.Tensor,
    partner: torch.Tensor,
    has_partner: torch.Tensor,
    template: torch.Tensor,
    mask_a: torch.Tensor,
    mask_b: torch.Tensor,
    use_partner: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """View A: ``target`` with the ``mask_a`` blocks from ``template``. View B: ``mask_b`` blocks from
    ``partner`` when ``use_partner`` and the sample has one, else from ``template``. All (B, 1, Z, Y, X)
    except ``has_partner`` (B,) bool."""
    view_a = apply_fill(target, mask_a, template)
    fill_b = template
    if use_partner:
        fill_b = torch.where(has_partner.view(-1, 1, 1, 1, 1), partner.to(template.dtype), template)
    return view_a, apply_fill(target, mask_b, fill_b)


def pretrain_losses(
    encoder_fn: Callable[[torch.Tensor], Sequence[torch.Tensor]],
    decoder_fn: Callable[[Sequence[torch.Tensor]], torch.Tensor],
    target: torch.Tensor,
    partner: torch.Tensor,
    has_partner: torch.Tensor,
    template: torch.Tensor,
    mask_a: torch.Tensor,
    mask_b: torch.Tensor,
    epoch: int,
    num_epochs: int,
    config: PretrainConfig,
    head: ProjectionHead | None = None,
) -> dict[str, torch.Tensor]:
    """Build both views, run the encoder once on [view A; view B] (one normalisation batch, as
    upstream), reconstruct, and return the weighted losses.

    Args:
        encoder_fn: (2B, 1, Z, Y, X) views -> encoder features, the last one the (2B, C, z, y, x) bottleneck
            (the contrastive features).
        decoder_fn: encoder features -> (2B, 1, Z, Y, X) reconstructions.
        target, partner, has_partner: from :func:`.availability.apply_modality_choices`.
        template: (B, 1, Z, Y, X) template windows (:func:`.templates.template_window`).
        mask_a, mask_b: independent (B, 1, Z, Y, X) masks (:func:`.masking.draw_block_masks`).
        epoch, num_epochs: 0-based current epoch and total, for the phase switches.
        config: the method's settings; ``head`` is required when ``config.projection``.

    Returns:
        ``loss`` (weighted total), ``template_rec``, ``cross_modal_rec`` and ``contrastive`` (0 while off),
        the last three detached for logging.
    """
    if config.projection and head is None:
        raise PretrainingError("config.projection is set but no ProjectionHead was given")
    b = target.shape[0]
    view_a, view_b = build_views(target, partner, has_partner, template, mask_a, mask_b,
                                 cross_modal_active(epoch, num_epochs, config))
    features = encoder_fn(torch.cat([view_a, view_b]))
    reconstruction = decoder_fn(features)
    rec_a = reconstruction_loss(reconstruction[:b], target)
    rec_b = reconstruction_loss(reconstruction[b:], target)
    w = config.weights
    total = w.template * rec_a + w.cross_modal * rec_b
    contrastive = torch.zeros((), device=total.device)
    if contrastive_active(epoch, num_epochs, config):
        emb = contrastive_embedding(features[-1], head if config.projection else None)
        # Upstream order: f = cross-modal view, g = template view (the loss is symmetric anyway).
        contrastive = info_nce(emb[b:], emb[:b], config.temperature)
        total = total + w.contrastive * contrastive
    return {"loss": total, "template_rec": rec_a.detach(), "cross_modal_rec": rec_b.detach(),
            "contrastive": contrastive.detach()}
