"""Per-case segmentation metrics on boolean masks: Dice, HD95 and normalised surface Dice (NSD).

nnU-Net computes Dice only; HD95 and NSD are ours. They need nothing beyond scipy, which nnU-Net
already installs: ``scipy.ndimage.binary_erosion`` finds the surfaces and
``scipy.ndimage.distance_transform_edt`` (exact Euclidean distance transform with per-axis
``sampling``) measures surface-to-surface distances in mm on anisotropic grids. A dedicated library
(MONAI, DeepMind's ``surface-distance``, medpy) would add a dependency for two short functions.

Definitions (all distances in mm, spacing given in the array's axis order):

* **surface**: the foreground voxels with at least one face-connected (6-neighbourhood in 3-D)
  background neighbour, i.e. ``mask & ~binary_erosion(mask)``; voxels on the image border count as
  surface (outside the image is background).
* **directed distances** from the reference surface to the prediction surface: for every reference
  surface voxel, the distance from its centre to the nearest prediction surface voxel centre (and the
  same the other way round). Voxels are counted, not weighted by surface-element area.
* **HD95**: ``max(P95(ref -> pred), P95(pred -> ref))``, the 95th percentiles of the two directed
  distance sets (numpy's linear interpolation), as in MONAI and DeepMind's ``surface-distance``.
* **NSD** at tolerance ``tau`` (Nikolov et al. 2021): the fraction of both surfaces lying within
  ``tau`` of the other, ``(|{d(ref->pred) <= tau}| + |{d(pred->ref) <= tau}|) / (|S_ref| + |S_pred|)``.
* **Dice**: ``2 |R & P| / (|R| + |P|)``.

Empty masks follow an explicit convention (``convention``):

* ``nnunet``: both empty -> Dice, NSD and HD95 NaN (left out of means, as nnU-Net's ``nanmean`` does);
  only one empty -> Dice 0, NSD 0, HD95 NaN.
* ``brats``: both empty -> Dice 1, NSD 1, HD95 0; only one empty -> Dice 0, NSD 0, HD95 = penalty.

The BraTS penalty defaults to the diagonal of the image extent, which is
:data:`BRATS_HD95_PENALTY_MM` (373.13 mm) for a 240 x 240 x 155 volume at 1 mm, the value BraTS uses.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from scipy import ndimage

from brainmvp_nnunet.errors import EvaluationError

Convention = Literal["nnunet", "brats"]
CONVENTIONS: tuple[str, ...] = ("nnunet", "brats")
RegionOrLabel = int | tuple[int, ...]

#: Diagonal of the 240 x 240 x 155 mm BraTS image extent, BraTS's HD95 when exactly one mask is empty.
BRATS_HD95_PENALTY_MM = math.sqrt(240.0**2 + 240.0**2 + 155.0**2)
DEFAULT_NSD_TOLERANCE_MM = 1.0


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise EvaluationError(f"unknown empty-mask convention {convention!r}; use one of {CONVENTIONS}")


def _check_pair(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float] | None = None) -> None:
    if reference.shape != prediction.shape:
        raise EvaluationError(f"reference shape {reference.shape} differs from prediction shape {prediction.shape}")
    if spacing is not None and len(spacing) != reference.ndim:
        raise EvaluationError(f"spacing {tuple(spacing)} has {len(spacing)} values for a {reference.ndim}-D mask")


def image_diagonal_mm(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """Length in mm of the diagonal of an image's extent.

    Args:
        shape: array shape.
        spacing: voxel size per axis (mm), same order as ``shape``.

    Returns:
        ``sqrt(sum((shape_i * spacing_i)^2))``.
    """
    return float(math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing, strict=True))))


def surface_mask(mask: np.ndarray) -> np.ndarray:
    """Surface voxels of a boolean mask: foreground with a face-connected background neighbour.

    Args:
        mask: boolean array of any dimension.

    Returns:
        Boolean array of the same shape; voxels on the image border count as surface.
    """
    mask = np.asarray(mask, dtype=bool)
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    # border_value=0: outside the image is background, so a mask touching the border has a surface there
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def _crop_to_union(reference: np.ndarray, prediction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop both masks to the bounding box of their union, padded by one background voxel.

    Distances between the two surfaces only involve voxels inside that box, so the cropped
    distance transform is exact and much cheaper than one over a whole 240 x 240 x 155 image; the
    one-voxel background pad keeps voxels on the original image border on the surface.
    """
    coords = np.nonzero(reference | prediction)
    box = tuple(slice(int(c.min()), int(c.max()) + 1) for c in coords)
    return np.pad(reference[box], 1), np.pad(prediction[box], 1)


def surface_distances(
    reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances between two non-empty masks.

    Args:
        reference: boolean mask, not empty.
        prediction: boolean mask of the same shape, not empty.
        spacing: voxel size per axis in mm.

    Returns:
        ``(ref_to_pred, pred_to_ref)``: for each surface voxel of one mask, the distance in mm to the
        nearest surface voxel of the other.
    """
    reference = np.asarray(reference, dtype=bool)
    prediction = np.asarray(prediction, dtype=bool)
    _check_pair(reference, prediction, spacing)
    if not reference.any() or not prediction.any():
        raise EvaluationError("surface distances need two non-empty masks; apply an empty-mask convention first")
    reference, prediction = _crop_to_union(reference, prediction)
    surf_ref, surf_pred = surface_mask(reference), surface_mask(prediction)
    sampling = tuple(float(s) for s in spacing)
    # the EDT gives each voxel its distance to the nearest zero, so invert the other surface
    to_pred = ndimage.distance_transform_edt(~surf_pred, sampling=sampling)
    to_ref = ndimage.distance_transform_edt(~surf_ref, sampling=sampling)
    return to_pred[surf_ref], to_ref[surf_pred]


def dice(reference: np.ndarray, prediction: np.ndarray, *, convention: Convention = "nnunet") -> float:
    """Dice coefficient of two boolean masks.

    Args:
        reference: boolean mask.
        prediction: boolean mask of the same shape.
        convention: ``"nnunet"`` (NaN when both are empty) or ``"brats"`` (1 when both are empty).

    Returns:
        ``2 |R & P| / (|R| + |P|)``.
    """
    _check_convention(convention)
    reference = np.asarray(reference, dtype=bool)
    prediction = np.asarray(prediction, dtype=bool)
    _check_pair(reference, prediction)
    total = int(reference.sum()) + int(prediction.sum())
    if total == 0:
        return math.nan if convention == "nnunet" else 1.0
    return 2.0 * int(np.count_nonzero(reference & prediction)) / total


def _hd95_from(distances: tuple[np.ndarray, np.ndarray]) -> float:
    return float(max(np.percentile(distances[0], 95), np.percentile(distances[1], 95)))


def _nsd_from(distances: tuple[np.ndarray, np.ndarray], tolerance_mm: float) -> float:
    within = int(np.count_nonzero(distances[0] <= tolerance_mm)) + int(np.count_nonzero(distances[1] <= tolerance_mm))
    return within / (distances[0].size + distances[1].size)


def _empty_case(
    n_ref: int, n_pred: int, shape: Sequence[int], spacing: Sequence[float], convention: str, penalty_mm: float | None
) -> dict[str, float]:
    """Dice, HD95 and NSD when at least one mask is empty (the table in the module docstring)."""
    if n_ref == 0 and n_pred == 0:
        if convention == "nnunet":
            return {"Dice": math.nan, "HD95": math.nan, "NSD": math.nan}
        return {"Dice": 1.0, "HD95": 0.0, "NSD": 1.0}
    if convention == "nnunet":
        return {"Dice": 0.0, "HD95": math.nan, "NSD": 0.0}
    penalty = image_diagonal_mm(shape, spacing) if penalty_mm is None else float(penalty_mm)
    return {"Dice": 0.0, "HD95": penalty, "NSD": 0.0}


def segmentation_metrics(
    reference: np.ndarray,
    prediction: np.ndarray,
    spacing: Sequence[float],
    *,
    tolerance_mm: float = DEFAULT_NSD_TOLERANCE_MM,
    convention: Convention = "nnunet",
    hd95_penalty_mm: float | None = None,
) -> dict[str, float]:
    """Dice, HD95 and NSD of one mask pair, computing the surface distances once.

    Args:
        reference: boolean reference mask.
        prediction: boolean predicted mask of the same shape.
        spacing: voxel size per axis in mm.
        tolerance_mm: NSD tolerance in mm.
        convention: empty-mask convention, ``"nnunet"`` or ``"brats"``.
        hd95_penalty_mm: BraTS HD95 when exactly one mask is empty; ``None`` = the image diagonal.

    Returns:
        ``{"Dice": ..., "HD95": ..., "NSD": ...}``.
    """
    _check_convention(convention)
    reference = np.asarray(reference, dtype=bool)
    prediction = np.asarray(prediction, dtype=bool)
    _check_pair(reference, prediction, spacing)
    n_ref, n_pred = int(reference.sum()), int(prediction.sum())
    if n_ref == 0 or n_pred == 0:
        return _empty_case(n_ref, n_pred, reference.shape, spacing, convention, hd95_penalty_mm)
    distances = surface_distances(reference, prediction, spacing)
    return {
        "Dice": dice(reference, prediction, convention=convention),
        "HD95": _hd95_from(distances),
        "NSD": _nsd_from(distances, tolerance_mm),
    }


def hd95(
    reference: np.ndarray,
    prediction: np.ndarray,
    spacing: Sequence[float],
    *,
    convention: Convention = "nnunet",
    penalty_mm: float | None = None,
) -> float:
    """Symmetric 95th-percentile Hausdorff distance in mm (definition in the module docstring).

    Args:
        reference: boolean mask.
        prediction: boolean mask of the same shape.
        spacing: voxel size per axis in mm.
        convention: ``"nnunet"`` (NaN if either is empty) or ``"brats"`` (0 if both, penalty if one).
        penalty_mm: BraTS value when exactly one mask is empty; ``None`` = the image diagonal in mm.

    Returns:
        HD95 in mm.
    """
    return segmentation_metrics(reference, prediction, spacing, convention=convention, hd95_penalty_mm=penalty_mm)[
        "HD95"
    ]


def normalized_surface_dice(
    reference: np.ndarray,
    prediction: np.ndarray,
    spacing: Sequence[float],
    tolerance_mm: float,
    *,
    convention: Convention = "nnunet",
) -> float:
    """Normalised surface Dice at ``tolerance_mm`` (Nikolov et al.), voxel-counted.

    Args:
        reference: boolean mask.
        prediction: boolean mask of the same shape.
        spacing: voxel size per axis in mm.
        tolerance_mm: distance in mm within which a surface voxel counts as matched.
        convention: ``"nnunet"`` (NaN if both are empty) or ``"brats"`` (1 if both are empty).

    Returns:
        NSD in [0, 1].
    """
    return segmentation_metrics(reference, prediction, spacing, tolerance_mm=tolerance_mm, convention=convention)[
        "NSD"
    ]


def region_names(labels: Mapping[str, int | Sequence[int]]) -> dict[str, str]:
    """nnU-Net's key of every label or region of a dataset.json ``labels`` table -> its name.

    Example: ``{"whole tumor": [1, 2, 3], "enhancing tumor": [3]}`` -> ``{"(1, 2, 3)": "whole tumor",
    "(3,)": "enhancing tumor"}``; plain labels keep their key (``"1"``).
    """
    return {region_key(tuple(v) if isinstance(v, list | tuple) else v): name for name, v in labels.items()}


def region_key(region_or_label: RegionOrLabel) -> str:
    """nnU-Net's key for a label or region (its ``label_or_region_to_key``).

    Args:
        region_or_label: an int label or a tuple of labels.

    Returns:
        ``1`` -> ``"1"``, ``(1, 2, 3)`` -> ``"(1, 2, 3)"``, ``(3,)`` -> ``"(3,)"``.
    """
    if isinstance(region_or_label, (tuple, list)):
        return str(tuple(int(i) for i in region_or_label))
    return str(int(region_or_label))


def region_mask(segmentation: np.ndarray, region_or_label: RegionOrLabel) -> np.ndarray:
    """Boolean mask of a label (``seg == label``) or a region (``seg`` in any of the region's labels).

    Args:
        segmentation: integer label map.
        region_or_label: an int label or a tuple of labels (an nnU-Net region).

    Returns:
        Boolean mask of the same shape.
    """
    if isinstance(region_or_label, (tuple, list)):
        return np.isin(segmentation, np.asarray(region_or_label))
    return np.asarray(segmentation) == region_or_label


def compute_case_metrics(
    reference: np.ndarray,
    prediction: np.ndarray,
    spacing: Sequence[float],
    regions_or_labels: Sequence[RegionOrLabel],
    *,
    tolerance_mm: float = DEFAULT_NSD_TOLERANCE_MM,
    convention: Convention = "nnunet",
    hd95_penalty_mm: float | None = None,
) -> dict[str, dict[str, float]]:
    """All metrics of one case for each label or region of a label-map pair.

    Args:
        reference: integer reference label map.
        prediction: integer predicted label map of the same shape.
        spacing: voxel size per axis in mm.
        regions_or_labels: labels (ints) and/or regions (tuples of labels), as in nnU-Net.
        tolerance_mm: NSD tolerance in mm.
        convention: empty-mask convention, ``"nnunet"`` or ``"brats"``.
        hd95_penalty_mm: BraTS HD95 when exactly one mask is empty; ``None`` = the image diagonal.

    Returns:
        ``{region_key: {"Dice": ..., "HD95": ..., "NSD": ...}}`` with nnU-Net's keys (:func:`region_key`).
    """
    reference = np.asarray(reference)
    prediction = np.asarray(prediction)
    _check_pair(reference, prediction, spacing)
    return {
        region_key(r): segmentation_metrics(
            region_mask(reference, r),
            region_mask(prediction, r),
            spacing,
            tolerance_mm=tolerance_mm,
            convention=convention,
            hd95_penalty_mm=hd95_penalty_mm,
        )
        for r in regions_or_labels
    }


def convention_line(
    convention: Convention, *, tolerance_mm: float | None = None, hd95_penalty_mm: float | None = None
) -> str:
    """The sentence every report prints above its tables to state the empty-mask convention.

    Args:
        convention: ``"nnunet"`` or ``"brats"``.
        tolerance_mm: the NSD tolerance, mentioned when given.
        hd95_penalty_mm: the BraTS penalty, ``None`` = the image diagonal.

    Returns:
        One line of markdown.
    """
    _check_convention(convention)
    if convention == "nnunet":
        text = (
            "Empty-reference convention: nnU-Net - Dice and NSD are NaN when reference and prediction are both "
            "empty (left out of means and tests), 0 when only one is empty; HD95 is NaN when either is empty."
        )
    else:
        penalty = "the image diagonal in mm" if hd95_penalty_mm is None else f"{hd95_penalty_mm:g} mm"
        text = (
            "Empty-reference convention: BraTS - Dice and NSD are 1 when reference and prediction are both empty, "
            f"0 when only one is empty; HD95 is 0 when both are empty and {penalty} when only one is empty."
        )
    if tolerance_mm is not None:
        text += f" NSD tolerance: {tolerance_mm:g} mm."
    return text
