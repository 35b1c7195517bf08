"""Modality templates resampled onto a case's grid, to fill the channels a case does not have.

Geometry: the convention of :mod:`brainmvp_nnunet.pretraining.templates`, image centre on template
centre, per axis. With ``N`` image voxels of spacing ``d`` and ``T`` template voxels of spacing ``t``,
``s = d / t`` template voxels per image voxel and the voxel corners map as
``template = image * s + (T - N * s) / 2``. Here values are interpolated (linear) instead of taken
from the nearest integer window, so any image spacing works: the centre of image voxel ``i`` sits at
template index ``(i + 0.5) * s + (T - N * s) / 2 - 0.5`` (index = voxel centre), outside the template
grid the value is 0 (the background of a z-scored image).

Intensities: the templates live in the z-scored space of nnU-Net's preprocessed data, so prediction
fills them into the *preprocessed* case (cropped to the nonzero box, resampled to the plans' spacing,
normalised), the space the templates were learned in and where the fine-tuning trainer substitutes
them. :func:`template_on_preprocessed_case` composes the crop and the resampling into the mapping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from brainmvp_nnunet.pretraining.templates import CANONICAL_SHAPE, CANONICAL_SPACING
from brainmvp_nnunet.transfer.formats import EncoderWeights

#: The canonical field of view (z, y, x) in mm every template grid covers, whatever its spacing.
CANONICAL_FOV_MM: tuple[float, float, float] = tuple(  # type: ignore[assignment]
    n * s for n, s in zip(CANONICAL_SHAPE, CANONICAL_SPACING, strict=True))


@dataclass(frozen=True)
class FillTemplates:
    """Templates usable for filling: one (Z, Y, X) float32 volume per modality slot.

    Attributes:
        volumes: slot name -> template volume in nnU-Net's (z, y, x) axis order.
        spacing: template grid spacing (z, y, x) in mm.
        source: where they were read from (for messages and the prediction record).
    """

    volumes: Mapping[str, np.ndarray]
    spacing: tuple[float, float, float]
    source: str


def fill_templates_from_weights(weights: EncoderWeights) -> FillTemplates | None:
    """The templates of a checkpoint, or None when it has none (or their slots are unknown).

    A checkpoint that does not record its template spacing (a pre-training checkpoint may not) is on
    the canonical field of view, so the spacing follows from the grid shape.
    """
    if weights.templates is None or not weights.template_slots:
        return None
    templates = weights.templates.detach().float().cpu().numpy()
    spacing = weights.template_spacing or tuple(f / n for f, n in zip(CANONICAL_FOV_MM, templates.shape[1:],
                                                                      strict=True))
    return FillTemplates({slot: templates[i] for i, slot in enumerate(weights.template_slots)},
                         tuple(float(s) for s in spacing), weights.source)  # type: ignore[arg-type]


def template_on_grid(
    template: np.ndarray,
    template_spacing: Sequence[float],
    image_shape: Sequence[int],
    image_spacing: Sequence[float],
    crop: Sequence[Sequence[int]] | None = None,
    output_shape: Sequence[int] | None = None,
) -> np.ndarray:
    """Sample a (Z, Y, X) template on an image grid, or on a resampled crop of it (linear interpolation).

    Args:
        template: the template volume on its grid.
        template_spacing: its spacing in mm, per axis.
        image_shape: the case's image shape (its full grid, centred on the template).
        image_spacing: the image spacing in mm, per axis (as read from the file).
        crop: ``[[lo, hi], ...]`` per axis in image voxels (nnU-Net's ``bbox_used_for_cropping``);
            default the whole image.
        output_shape: the shape the crop was resampled to (nnU-Net's preprocessed shape); default the
            crop's own shape (no resampling).

    Returns:
        float32 array of ``output_shape``: the template value at the centre of every output voxel.
    """
    crop = [(0, int(n)) for n in image_shape] if crop is None else [(int(lo), int(hi)) for lo, hi in crop]
    output_shape = tuple(hi - lo for lo, hi in crop) if output_shape is None else tuple(int(n) for n in output_shape)
    scale, offset = [], []
    for axis in range(3):
        lo, hi = crop[axis]
        f = (hi - lo) / output_shape[axis]  # image voxels per output voxel (nnU-Net's resampling factor)
        s = image_spacing[axis] / template_spacing[axis]  # template voxels per image voxel
        corner_offset = (template.shape[axis] - image_shape[axis] * s) / 2.0  # image centre on template centre
        # output voxel p has its centre at image corner coordinate lo + (p + 0.5) f
        scale.append(f * s)
        offset.append((lo + 0.5 * f) * s + corner_offset - 0.5)
    return ndimage.affine_transform(np.asarray(template, dtype=np.float32), np.asarray(scale), offset,
                                    output_shape=output_shape, order=1, mode="constant", cval=0.0)


def template_on_preprocessed_case(
    template: np.ndarray,
    template_spacing: Sequence[float],
    properties: Mapping[str, Any],
    preprocessed_shape: Sequence[int],
    transpose_forward: Sequence[int] = (0, 1, 2),
) -> np.ndarray:
    """A template aligned with one case as nnU-Net's preprocessor returned it (``run_case_npy``).

    ``properties`` are that case's: ``spacing`` (as read, not transposed), ``shape_before_cropping``
    and ``bbox_used_for_cropping`` (both after ``transpose_forward``). The template is transposed like
    the image, so plans that reorder the axes are handled too.
    """
    axes = [int(a) for a in transpose_forward]
    return template_on_grid(
        np.transpose(template, axes), [template_spacing[a] for a in axes], properties["shape_before_cropping"],
        [properties["spacing"][a] for a in axes], crop=properties["bbox_used_for_cropping"],
        output_shape=preprocessed_shape)
