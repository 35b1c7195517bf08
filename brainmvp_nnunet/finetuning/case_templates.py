"""Templates aligned to nnU-Net's preprocessed cases, served lazily next to the image channels.

nnU-Net's loader crops every patch from the case array with ``crop_and_pad_nd`` (a slicing
operation). :class:`CaseWithTemplates` behaves like that array with C more channels: the template of
each channel's modality, aligned with the case (image centre on template centre, see
:func:`brainmvp_nnunet.pretraining.templates.patch_origin_to_template_origin`). Only the requested
window is materialised, and channels missing from the case (zero-filled by the converter) are
replaced by their template right away, so the network never sees an empty modality.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from brainmvp_nnunet.pretraining.templates import CANONICAL_SHAPE, CANONICAL_SPACING, patch_origin_to_template_origin

CANONICAL_FOV_MM = tuple(s * p for s, p in zip(CANONICAL_SHAPE, CANONICAL_SPACING, strict=True))


def templates_at_spacing(templates: np.ndarray, template_spacing: Sequence[float],
                         spacing: Sequence[float]) -> np.ndarray:
    """Resample (slots, Z, Y, X) templates to another grid spacing (linear), keeping the field of view."""
    if np.allclose(template_spacing, spacing):
        return templates
    fov = [n * s for n, s in zip(templates.shape[1:], template_spacing, strict=True)]
    shape = [max(1, round(f / s)) for f, s in zip(fov, spacing, strict=True)]
    zoom = [1.0] + [n / o for n, o in zip(shape, templates.shape[1:], strict=True)]
    return ndimage.zoom(templates, zoom, order=1, grid_mode=True, mode="nearest").astype(np.float32)


def channel_templates(templates: np.ndarray, template_slots: Sequence[str],
                      channel_slots: Sequence[str]) -> np.ndarray:
    """One template per input channel (zeros for a modality that has no template)."""
    out = np.zeros((len(channel_slots), *templates.shape[1:]), dtype=np.float32)
    for channel, slot in enumerate(channel_slots):
        if slot in template_slots:
            out[channel] = templates[list(template_slots).index(slot)]
    return out


def window(grid: np.ndarray, origin: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """``grid[:, origin : origin + size]`` per spatial axis, zeros outside the grid."""
    out = np.zeros((grid.shape[0], *size), dtype=grid.dtype)
    src, dst = [], []
    for o, n, g in zip(origin, size, grid.shape[1:], strict=True):
        lo, hi = max(o, 0), min(o + n, g)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - o, hi - o))
    out[(slice(None), *dst)] = grid[(slice(None), *src)]
    return out


class CaseWithTemplates:
    """A ``(2C, Z, Y, X)`` array-like: the case's channels, then their aligned templates.

    Args:
        data: the case array (C, Z, Y, X); nnU-Net's blosc2 array is read only where sliced.
        templates: (C, Zt, Yt, Xt) templates per channel at the preprocessed spacing.
        origin: template voxel under preprocessed voxel (0, 0, 0).
        missing: channels absent from this case, served from the templates.
    """

    def __init__(self, data, templates: np.ndarray, origin: Sequence[int], missing: Sequence[int] = ()):
        self.data, self.templates, self.origin, self.missing = data, templates, tuple(origin), tuple(missing)
        self.shape = (2 * data.shape[0], *data.shape[1:])
        self.ndim, self.dtype = 4, np.dtype(np.float32)

    def __getitem__(self, index: tuple) -> np.ndarray:
        """Only ``(slice(None), z, y, x)`` slices, as ``crop_and_pad_nd`` asks for."""
        spatial = [s.indices(n)[:2] for s, n in zip(index[1:], self.shape[1:], strict=True)]
        image = np.asarray(self.data[(slice(None), *(slice(a, b) for a, b in spatial))], dtype=np.float32)
        templ = window(self.templates, [o + a for o, (a, _) in zip(self.origin, spatial, strict=True)],
                       [b - a for a, b in spatial])
        for channel in self.missing:
            image[channel] = templ[channel]
        return np.concatenate([image, templ])


def case_template_origin(properties: dict, preprocessed_shape: Sequence[int], template_shape: Sequence[int],
                         template_spacing: Sequence[float]) -> tuple[int, int, int]:
    """Template voxel under the first voxel of nnU-Net's preprocessed case (from its ``.pkl`` properties)."""
    return patch_origin_to_template_origin(
        (0, 0, 0), properties["bbox_used_for_cropping"], properties["shape_after_cropping_and_before_resampling"],
        preprocessed_shape, properties["spacing"], properties["shape_before_cropping"],
        template_shape=template_shape, template_spacing=template_spacing)


class TemplateAugmentedDataset:
    """Wraps an nnU-Net dataset so that ``load_case`` returns :class:`CaseWithTemplates`.

    Args:
        dataset: nnU-Net dataset instance (``load_case``, ``identifiers``, ...).
        templates: (C, Z, Y, X) per-channel templates at the preprocessed spacing.
        template_spacing: their spacing (z, y, x).
        missing_channels: case id -> channels absent from that case.
    """

    def __init__(self, dataset, templates: np.ndarray, template_spacing: Sequence[float],
                 missing_channels: dict[str, list[int]]):
        self.dataset, self.templates = dataset, templates
        self.template_spacing, self.missing_channels = tuple(template_spacing), missing_channels

    def __getattr__(self, name: str):
        # identifiers, source_folder, ...: everything else is the wrapped dataset's (but never during
        # unpickling, when ``dataset`` itself is not set yet)
        if name == "dataset" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __len__(self) -> int:
        return len(self.dataset)

    def load_case(self, identifier: str):
        """The wrapped case with its templates stacked lazily behind the image channels."""
        data, seg, seg_prev, properties = self.dataset.load_case(identifier)
        origin = case_template_origin(properties, data.shape[1:], self.templates.shape[1:], self.template_spacing)
        stacked = CaseWithTemplates(data, self.templates, origin, self.missing_channels.get(identifier, []))
        return stacked, seg, seg_prev, properties
