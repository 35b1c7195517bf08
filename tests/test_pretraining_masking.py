"""Block masks: exact masked fraction, independence per sample and view, fill gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainmvp_nnunet.errors import PretrainingError
from brainmvp_nnunet.pretraining.masking import (
    apply_fill,
    block_grid,
    draw_block_masks,
    expand_block_mask,
    masked_block_count,
)


@pytest.mark.parametrize(
    ("num_blocks", "ratio", "masked"),
    [
        (1728, 0.875, 1512),  # 96^3 / 8^3, paper: exactly 0.875
        (1728, 0.8, 1383),  # release: keep floor(345.6) = 345 -> 0.80035
        (64, 0.875, 56),
        (10, 0.3, 3),  # 10 * 0.7 is 6.999...: the epsilon keeps 7 visible
        (10, 0.0, 0),
        (10, 1.0, 10),
        (7, 0.5, 4),  # keep floor(3.5) = 3: rounded up to whole blocks
    ],
)
def test_masked_block_count(num_blocks: int, ratio: float, masked: int) -> None:
    assert masked_block_count(num_blocks, ratio) == masked


@pytest.mark.parametrize("ratio", [-0.1, 1.5])
def test_masked_block_count_rejects_ratio(ratio: float) -> None:
    with pytest.raises(PretrainingError, match="mask ratio"):
        masked_block_count(10, ratio)


@pytest.mark.parametrize(
    ("patch", "block", "ratio", "fraction"),
    [
        ((32, 32, 32), 8, 0.875, 56 / 64),
        ((32, 32, 32), 8, 0.8, 52 / 64),  # keep floor(12.8) = 12
        ((16, 24, 32), (8, 8, 16), 0.5, 6 / 12),
        ((96, 96, 96), 8, 0.875, 0.875),
    ],
)
def test_exact_masked_fraction_per_sample(patch: tuple, block: object, ratio: float, fraction: float) -> None:
    masks = draw_block_masks(3, patch, block, ratio, torch.Generator().manual_seed(0))
    assert masks.shape == (3, 1, *patch) and masks.dtype == torch.bool
    per_sample = masks.float().mean(dim=(1, 2, 3, 4))
    assert per_sample.tolist() == [fraction] * 3


def test_masks_are_whole_blocks() -> None:
    masks = draw_block_masks(2, (16, 16, 16), 4, 0.5, torch.Generator().manual_seed(1))
    blocks = masks.view(2, 1, 4, 4, 4, 4, 4, 4).permute(0, 1, 2, 4, 6, 3, 5, 7).flatten(5)
    assert torch.all(blocks.all(-1) | ~blocks.any(-1))


def test_masks_differ_per_sample_and_per_view() -> None:
    rng = torch.Generator().manual_seed(0)
    view_a = draw_block_masks(4, (32, 32, 32), 8, 0.875, rng)
    view_b = draw_block_masks(4, (32, 32, 32), 8, 0.875, rng)
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.equal(view_a[i], view_a[j])
        assert not torch.equal(view_a[i], view_b[i])


def test_masks_reproducible_and_numpy_generator() -> None:
    a = draw_block_masks(2, (16, 16, 16), 8, 0.5, np.random.default_rng(3))
    b = draw_block_masks(2, (16, 16, 16), 8, 0.5, np.random.default_rng(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize(("patch", "block"), [((30, 32, 32), 8), ((32, 32, 32), (8, 8, 6)), ((32, 32), 8)])
def test_block_grid_errors(patch: tuple, block: object) -> None:
    with pytest.raises(PretrainingError):
        block_grid(patch, block)


def test_expand_block_mask() -> None:
    blocks = torch.tensor([True, False]).view(1, 1, 1, 1, 2)
    voxels = expand_block_mask(blocks, (1, 2, 3))
    assert voxels.shape == (1, 1, 1, 2, 6)
    assert voxels[0, 0, 0, 0].tolist() == [True] * 3 + [False] * 3


def test_apply_fill_values_and_gradient_only_through_masked_voxels() -> None:
    image = torch.arange(16.0).view(1, 1, 1, 4, 4)
    template = torch.full((1, 1, 1, 4, 4), -1.0, requires_grad=True)
    mask = draw_block_masks(1, (1, 4, 4), (1, 2, 2), 0.5, torch.Generator().manual_seed(0))
    out = apply_fill(image, mask, template)
    assert torch.equal(out[mask], torch.full((8,), -1.0))
    assert torch.equal(out[~mask], image[~mask])
    (out * torch.arange(1.0, 17.0).view_as(out)).sum().backward()
    assert torch.equal(template.grad[~mask], torch.zeros(8))
    assert torch.equal(template.grad[mask], torch.arange(1.0, 17.0).view_as(out)[mask])


def test_apply_fill_needs_bool_mask() -> None:
    with pytest.raises(PretrainingError, match="bool"):
        apply_fill(torch.zeros(2), torch.zeros(2), torch.ones(2))
