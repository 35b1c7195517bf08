"""Fine-tuning helpers: template channel substitution, templates aligned to nnU-Net's cases, consistency loss."""

from brainmvp_nnunet.finetuning.case_templates import (
    CaseWithTemplates,
    TemplateAugmentedDataset,
    case_template_origin,
    channel_templates,
    templates_at_spacing,
    window,
)
from brainmvp_nnunet.finetuning.substitution import (
    TemplateChannelSubstitution,
    draw_replaced_channels,
    embedding_consistency_loss,
    substitute_channels,
    two_views,
)

__all__ = ["CaseWithTemplates", "TemplateAugmentedDataset", "TemplateChannelSubstitution", "case_template_origin",
           "channel_templates", "draw_replaced_channels", "embedding_consistency_loss", "substitute_channels",
           "templates_at_spacing", "two_views", "window"]
