"""Learnable modality templates on a canonical grid, and their alignment to nnU-Net patches.

The templates are one parameter of shape (slots, Z, Y, X) on the canonical grid (default the
BraTS/SRI24 grid, 155 x 240 x 240 voxels of 1 mm, axis order z, y, x like nnU-Net arrays).

Intensity space: the templates are used as they are, in the z-scored space of the inputs. nnU-Net
z-scores every MRI channel (over the brain, background kept at 0), so a template value is directly
comparable to an input value; upstream min-max normalised the templates at use because its inputs
were p5/p95-scaled to [0, 1]. Min-max at use would here put the templates on a different scale
from the voxels around them, and at zero init its gradient is ~1e9 (division by max - min + 1e-9).
Zero init equals the background and the brain mean of a z-scored image.

Updates: only the windows under the patches receive gradients; the parameter's gradient is still a
dense tensor of the template's size (8 slots: 71 M values, 285 MB in fp32), like any parameter, so
DDP all-reduces and AdamW updates it as a whole. Sparse updates would need a custom optimizer and are
left out for simplicity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from brainmvp_nnunet.data.modalities import SLOTS
from brainmvp_nnunet.errors import PretrainingError

CANONICAL_SHAPE: tuple[int, int, int] = (155, 240, 240)
CANONICAL_SPACING: tuple[float, float, float] = (1.0, 1.0, 1.0)


class ModalityTemplates(nn.Module):
    """One learnable template per modality slot: ``self.templates`` of shape (slots, Z, Y, X), zero-init.

    Args:
        slots: slot names, in template order (default all canonical :data:`SLOTS`).
        shape: canonical grid shape (z, y, x).
        spacing: canonical grid spacing in mm (z, y, x).
    """

    def __init__(
        self,
        slots: Sequence[str] = SLOTS,
        shape: Sequence[int] = CANONICAL_SHAPE,
        spacing: Sequence[float] = CANONICAL_SPACING,
    ) -> None:
        super().__init__()
        if len(shape) != 3 or len(spacing) != 3 or not slots:
            raise PretrainingError(f"templates need slots and a 3-D shape and spacing, got {shape}, {spacing}")
        self.slots = tuple(slots)
        self.shape = tuple(int(s) for s in shape)
        self.spacing = tuple(float(s) for s in spacing)
        self.templates = nn.Parameter(torch.zeros(len(self.slots), *self.shape))

    def forward(self, slot_indices: torch.Tensor | Sequence[int], origins: Sequence[Sequence[int]],
                patch_size: Sequence[int]) -> torch.Tensor:
        """The (B, 1, *patch_size) windows under the patches (see :func:`template_window`)."""
        return template_window(self.templates, slot_indices, origins, patch_size)


def template_window(
    templates: torch.Tensor,
    slot_indices: torch.Tensor | Sequence[int],
    origins: Sequence[Sequence[int]],
    patch_size: Sequence[int],
) -> torch.Tensor:
    """Crop, per sample, the template window under a patch; zeros where the window leaves the grid.

    Args:
        templates: (slots, Z, Y, X) template tensor (the parameter; gradients flow into the window).
        slot_indices: (B,) template slot of every sample.
        origins: (B, 3) integer origin (z, y, x) of each patch in the canonical grid; may be negative
            or run past the grid (from :func:`patch_origin_to_template_origin`).
        patch_size: (Z, Y, X) patch size in canonical voxels.

    Returns:
        (B, 1, *patch_size) tensor: window[b, 0, i] = templates[slot_b, origin_b + i] inside the grid.
    """
    slots = [int(s) for s in slot_indices]
    if len(slots) != len(origins):
        raise PretrainingError(f"{len(slots)} slot indices but {len(origins)} patch origins")
    grid = templates.shape[1:]
    windows = []
    for slot, origin in zip(slots, origins, strict=True):
        lo = [int(o) for o in origin]
        hi = [o + p for o, p in zip(lo, patch_size, strict=True)]
        src_lo = [min(max(o, 0), g) for o, g in zip(lo, grid, strict=True)]
        src_hi = [min(max(h, 0), g) for h, g in zip(hi, grid, strict=True)]
        crop = templates[slot, src_lo[0]:src_hi[0], src_lo[1]:src_hi[1], src_lo[2]:src_hi[2]]
        # F.pad takes (x_before, x_after, y_before, y_after, z_before, z_after).
        pad: list[int] = []
        for axis in (2, 1, 0):
            size = int(patch_size[axis])
            before = min(max(-lo[axis], 0), size)  # window voxels in front of the grid
            pad += [before, size - before - (src_hi[axis] - src_lo[axis])]
        windows.append(F.pad(crop, pad))
    return torch.stack(windows).unsqueeze(1)


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def patch_origin_to_template_origin(
    bbox_lbs: Sequence[int],
    bbox_used_for_cropping: Sequence[Sequence[int]],
    shape_after_cropping_and_before_resampling: Sequence[int],
    preprocessed_shape: Sequence[int],
    original_spacing: Sequence[float],
    shape_before_cropping: Sequence[int],
    template_shape: Sequence[int] = CANONICAL_SHAPE,
    template_spacing: Sequence[float] = CANONICAL_SPACING,
    max_scale_error: float = 0.05,
    transpose_forward: Sequence[int] = (0, 1, 2),
) -> tuple[int, int, int]:
    """Map a patch origin in nnU-Net's preprocessed array to the canonical template grid (per axis).

    With ``lo`` the crop lower bound (``bbox_used_for_cropping[axis][0]``, original voxel grid),
    ``f = shape_after_cropping_and_before_resampling / preprocessed_shape`` (original voxels per
    preprocessed voxel) and ``s = original_spacing / template_spacing`` (template voxels per
    original voxel), voxel corners map as::

        original = bbox_lbs * f + lo
        offset   = (template_shape - shape_before_cropping * s) / 2     # image centre on template centre
        origin   = round_half_up(original * s + offset)

    ``bbox_lbs`` may be negative (nnU-Net pads patches at the border). The result is integral, so a
    sub-voxel offset (odd size differences) is rounded; the template is not interpolated, hence
    one preprocessed voxel must cover one template voxel: ``f * s`` must be 1 within
    ``max_scale_error`` (nnU-Net rounds resampled shapes, so it is rarely exactly 1).

    With nnU-Net 2.8.1 case properties ``p`` (in array axis order z, y, x) and the loader's patch::

        patch_origin_to_template_origin(bbox_lbs, p["bbox_used_for_cropping"],
                                        p["shape_after_cropping_and_before_resampling"], data.shape[1:],
                                        p["spacing"], p["shape_before_cropping"],
                                        transpose_forward=plans_manager.transpose_forward)

    nnU-Net transposes arrays by the plans' ``transpose_forward`` before cropping (shapes and boxes
    are then in transposed order, ``p["spacing"]`` is not); only the identity is supported, which is
    what nnU-Net plans for isotropic spacings such as the 1 mm template grid.

    Raises:
        PretrainingError: when the preprocessed spacing does not match the template spacing, or the
            plans transpose the axes.
    """
    if tuple(transpose_forward) != (0, 1, 2):
        raise PretrainingError(
            f"plans transpose the axes (transpose_forward {list(transpose_forward)}); template alignment needs "
            "the identity: plan pre-training at an isotropic spacing"
        )
    origin = []
    for axis in range(3):
        lo = bbox_used_for_cropping[axis][0]
        f = shape_after_cropping_and_before_resampling[axis] / preprocessed_shape[axis]
        s = original_spacing[axis] / template_spacing[axis]
        if abs(f * s - 1.0) > max_scale_error:
            raise PretrainingError(
                f"axis {axis}: a preprocessed voxel spans {f * s:.3f} template voxels; pre-train at the template "
                f"spacing {list(template_spacing)} mm (original spacing {list(original_spacing)}, "
                f"resampling factor {f:.3f})"
            )
        offset = (template_shape[axis] - shape_before_cropping[axis] * s) / 2.0
        origin.append(_round_half_up((bbox_lbs[axis] * f + lo) * s + offset))
    return tuple(origin)  # type: ignore[return-value]
