"""BrainMVP pre-training as pure functions: modality choice, block masks, templates, losses, schedule.

The nnU-Net trainer (``trainers/``) draws the random parameters and calls these; nothing here knows
about nnU-Net's trainer classes. Not imported here: :mod:`.model` (the pre-training network as one
module whose forward is the loss), :mod:`.nnunet` (nnU-Net adapters: a loader reporting patch
origins, a logger with extra curves, random-state capture) and :mod:`.export` (artefact, template
NIfTIs, pictures).
"""

from brainmvp_nnunet.pretraining.availability import (
    BrainMVPBlock,
    ModalityChoice,
    SelectedModalities,
    apply_modality_choices,
    draw_modality_choice,
    draw_modality_choices,
    parse_brainmvp_block,
)
from brainmvp_nnunet.pretraining.losses import (
    PretrainConfig,
    PretrainLossWeights,
    ProjectionHead,
    contrastive_active,
    contrastive_embedding,
    cross_modal_active,
    gather_with_grad,
    info_nce,
    reconstruction_loss,
)
from brainmvp_nnunet.pretraining.masking import (
    apply_fill,
    block_grid,
    draw_block_masks,
    expand_block_mask,
    masked_block_count,
)
from brainmvp_nnunet.pretraining.schedule import WarmupCosineLR, warmup_cosine_factor
from brainmvp_nnunet.pretraining.step import build_views, pretrain_losses
from brainmvp_nnunet.pretraining.templates import (
    CANONICAL_SHAPE,
    CANONICAL_SPACING,
    ModalityTemplates,
    patch_origin_to_template_origin,
    template_window,
)

__all__ = [
    "CANONICAL_SHAPE", "CANONICAL_SPACING", "BrainMVPBlock", "ModalityChoice", "ModalityTemplates", "PretrainConfig",
    "PretrainLossWeights", "ProjectionHead", "SelectedModalities", "WarmupCosineLR", "apply_fill",
    "apply_modality_choices", "block_grid", "build_views", "contrastive_active", "contrastive_embedding",
    "cross_modal_active", "draw_block_masks", "draw_modality_choice", "draw_modality_choices", "expand_block_mask",
    "gather_with_grad", "info_nce", "masked_block_count", "parse_brainmvp_block", "patch_origin_to_template_origin",
    "pretrain_losses", "reconstruction_loss", "template_window", "warmup_cosine_factor",
]
