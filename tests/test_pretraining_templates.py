"""Template windows and the preprocessed-patch -> canonical-grid mapping.

The alignment tests use a template that encodes its own coordinates (value z*10000 + y*100 + x)
and an "original image" that holds, in every voxel, the code of the template voxel it lies in.
The image goes through nnU-Net's steps (crop to a bounding box, resample, pad a patch), and the
window cut from the template must equal the patch wherever the patch lies inside the image.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainmvp_nnunet.errors import PretrainingError
from brainmvp_nnunet.pretraining.masking import apply_fill, draw_block_masks
from brainmvp_nnunet.pretraining.templates import (
    CANONICAL_SHAPE,
    ModalityTemplates,
    patch_origin_to_template_origin,
    template_window,
)

GRID = (6, 10, 12)


def _code(z: np.ndarray, y: np.ndarray, x: np.ndarray, slot: int = 0) -> np.ndarray:
    return slot * 1_000_000 + z * 10_000 + y * 100 + x


def _coordinate_templates(slots: int = 2) -> torch.Tensor:
    z, y, x = np.meshgrid(*(np.arange(n) for n in GRID), indexing="ij")
    return torch.from_numpy(np.stack([_code(z, y, x, s) for s in range(slots)]).astype(np.float64))


def _padded_patch(array: np.ndarray, origin: tuple[int, ...], size: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The patch at ``origin`` (zeros outside, as nnU-Net pads) and a mask of its voxels inside ``array``."""
    patch, inside = np.zeros(size), np.zeros(size, dtype=bool)
    src = tuple(slice(max(o, 0), min(o + s, n)) for o, s, n in zip(origin, size, array.shape, strict=True))
    dst = tuple(slice(sl.start - o, sl.stop - o) for sl, o in zip(src, origin, strict=True))
    patch[dst], inside[dst] = array[src], True
    return patch, inside


@pytest.mark.parametrize(
    ("spacing", "factor", "shape_before", "bbox", "bbox_lbs", "patch_size", "slot"),
    [
        # 1 mm, offset (1, 1, 2), crop box, negative origin (padding), slot 1
        ((1.0, 1.0, 1.0), 1, (4, 8, 8), ((1, 4), (2, 7), (0, 8)), (-1, 2, -3), (4, 4, 4), 1),
        # 0.5 mm original resampled by 2 to the 1 mm template spacing, patch past both ends
        ((0.5, 0.5, 0.5), 2, (8, 16, 16), ((2, 8), (2, 14), (0, 16)), (-2, 1, 3), (4, 4, 8), 0),
        # image the size of the grid on one axis (offset 0), anisotropic factor
        ((1.0, 0.5, 1.0), (1, 2, 1), (6, 12, 10), ((0, 6), (4, 12), (1, 9)), (0, -1, -2), (6, 6, 6), 1),
    ],
)
def test_window_puts_template_voxel_under_its_patch_voxel(
    spacing: tuple, factor: object, shape_before: tuple, bbox: tuple, bbox_lbs: tuple, patch_size: tuple, slot: int
) -> None:
    factors = (factor,) * 3 if isinstance(factor, int) else factor
    offset = [int((g - n * s) / 2) for g, n, s in zip(GRID, shape_before, spacing, strict=True)]
    # Original voxel o lies in template voxel floor(o * spacing) + offset (spacings here divide 1 mm).
    idx = np.meshgrid(*(np.floor(np.arange(n) * s).astype(int) + off
                        for n, s, off in zip(shape_before, spacing, offset, strict=True)), indexing="ij")
    original = _code(*idx, slot=slot)
    cropped = original[tuple(slice(lo, hi) for lo, hi in bbox)]
    preprocessed = cropped[tuple(slice(None, None, f) for f in factors)]  # nearest-neighbour resampling
    patch, inside = _padded_patch(preprocessed, bbox_lbs, patch_size)

    origin = patch_origin_to_template_origin(
        bbox_lbs, bbox, cropped.shape, preprocessed.shape, spacing, shape_before, GRID, (1.0, 1.0, 1.0)
    )
    window = template_window(_coordinate_templates(), [slot], [origin], patch_size)[0, 0].numpy()

    assert inside.any() and not inside.all()
    np.testing.assert_array_equal(window[inside], patch[inside])
    # Outside the image the window keeps template values where the grid exists and is 0 beyond it.
    lo = np.array(origin).reshape(3, 1, 1, 1) + np.indices(patch_size)
    in_grid = np.all((lo >= 0) & (lo < np.array(GRID).reshape(3, 1, 1, 1)), axis=0)
    np.testing.assert_array_equal(window[in_grid], _code(*lo[:, in_grid], slot=slot))
    assert (window[~in_grid] == 0).all()


def test_mapping_formula_by_hand() -> None:
    # z: (-1 * 1 + 1) * 1 + (6 - 4) / 2 = 1;  y: (2 + 2) + 1 = 5;  x: (-3 + 0) + 2 = -1
    assert patch_origin_to_template_origin(
        (-1, 2, -3), ((1, 4), (2, 7), (0, 8)), (3, 5, 8), (3, 5, 8), (1, 1, 1), (4, 8, 8), GRID
    ) == (1, 5, -1)
    # BraTS geometry: 240x240x155 images are the canonical grid, so origin = crop lower bound + patch origin.
    assert patch_origin_to_template_origin(
        (10, 20, 30), ((5, 150), (30, 210), (40, 200)), (145, 180, 160), (145, 180, 160), (1, 1, 1), CANONICAL_SHAPE
    ) == (15, 50, 70)
    # An odd size difference puts the centre half a voxel off: rounded half up.
    assert patch_origin_to_template_origin((0, 0, 0), ((0, 5),) * 3, (5, 5, 5), (5, 5, 5), (1, 1, 1), (5, 5, 5),
                                           (8, 8, 8)) == (2, 2, 2)


def test_mapping_rejects_other_spacing() -> None:
    with pytest.raises(PretrainingError, match="template spacing"):
        # 1 mm original resampled to 2 mm: one preprocessed voxel spans two template voxels.
        patch_origin_to_template_origin((0, 0, 0), ((0, 8),) * 3, (8, 8, 8), (4, 4, 4), (1, 1, 1), (8, 8, 8), GRID)


def test_mapping_rejects_transposed_plans() -> None:
    with pytest.raises(PretrainingError, match="transpose_forward"):
        patch_origin_to_template_origin((0, 0, 0), ((0, 8),) * 3, (8,) * 3, (8,) * 3, (1, 1, 1), (8,) * 3, GRID,
                                        transpose_forward=(2, 0, 1))


def test_window_slot_selection_and_full_outside() -> None:
    templates = _coordinate_templates()
    windows = template_window(templates, torch.tensor([1, 0, 0]), [(0, 0, 0), (100, 0, 0), (0, -10, 0)], (2, 2, 2))
    assert windows.shape == (3, 1, 2, 2, 2)
    assert windows[0, 0, 1, 1, 1] == _code(1, 1, 1, slot=1)
    assert (windows[1:] == 0).all()


def test_templates_module_zero_init_and_gradients_only_through_masked_voxels() -> None:
    module = ModalityTemplates(slots=("flair", "t1"), shape=GRID)
    assert module.templates.shape == (2, *GRID) and not module.templates.detach().any()
    assert module.spacing == (1.0, 1.0, 1.0)
    patch_size, origin = (2, 4, 4), (1, 3, 5)
    mask = draw_block_masks(1, patch_size, 2, 0.5, torch.Generator().manual_seed(0))
    image = torch.randn(1, 1, *patch_size)
    view = apply_fill(image, mask, module(torch.tensor([1]), [origin], patch_size))
    (view - 1.0).pow(2).sum().backward()

    expected = torch.zeros(2, *GRID)
    region = expected[1, 1:3, 3:7, 5:9]
    region[mask[0, 0]] = 2.0 * (0.0 - 1.0)  # d/dT of (T - 1)^2 at T = 0, only where masked
    assert torch.equal(module.templates.grad, expected)
    assert (module.templates.grad != 0).sum() == mask.sum() == 16


def test_window_argument_mismatch() -> None:
    with pytest.raises(PretrainingError, match="2 slot indices"):
        template_window(_coordinate_templates(), [0, 1], [(0, 0, 0)], (2, 2, 2))
