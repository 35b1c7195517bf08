"""Prediction with missing modalities, as pure functions: which channel files a case has, and
templates resampled onto a case's grid (the nnU-Net side lives in ``workflows/predict.py``)."""

from brainmvp_nnunet.inference.channels import (
    CaseChannels,
    find_case_files,
    geometry_difference,
    nonempty_subsets,
    parse_available,
    select_channels,
    subset_name,
)
from brainmvp_nnunet.inference.fill import (
    FillTemplates,
    fill_templates_from_weights,
    template_on_grid,
    template_on_preprocessed_case,
)

__all__ = [
    "CaseChannels",
    "FillTemplates",
    "fill_templates_from_weights",
    "find_case_files",
    "geometry_difference",
    "nonempty_subsets",
    "parse_available",
    "select_channels",
    "subset_name",
    "template_on_grid",
    "template_on_preprocessed_case",
]
