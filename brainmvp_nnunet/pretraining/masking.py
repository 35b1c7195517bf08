"""Block masks and mask filling.

A patch of shape (Z, Y, X) is split into blocks of ``block_size`` voxels per axis; a ratio ``r`` of
the blocks is masked, i.e. replaced by a fill (template or partner modality). The number of masked
blocks follows the release code's rule: ``keep = floor(N * (1 - r))`` blocks stay visible and the
other ``N - keep`` are masked, so the masked fraction is ``(N - floor(N * (1 - r))) / N``: exactly
``r`` when ``N * r`` is an integer (96^3 patches, 8^3 blocks, r = 0.875: 1512 of 1728 blocks) and
otherwise rounded up to the next block (r = 0.8: 1383 of 1728 = 0.80035).

Random draws (:func:`draw_block_masks`) are separate from the deterministic parts
(:func:`expand_block_mask`, :func:`apply_fill`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from brainmvp_nnunet.errors import PretrainingError
from brainmvp_nnunet.pretraining._random import RandomSource, uniform


def _triple(value: int | Sequence[int], what: str) -> tuple[int, int, int]:
    t = (value,) * 3 if isinstance(value, int) else tuple(int(v) for v in value)
    if len(t) != 3 or any(v < 1 for v in t):
        raise PretrainingError(f"{what} must be one positive int or three, got {value!r}")
    return t  # type: ignore[return-value]


def block_grid(patch_size: Sequence[int], block_size: int | Sequence[int] = 8) -> tuple[int, int, int]:
    """Number of blocks per axis of a (Z, Y, X) patch.

    Raises:
        PretrainingError: when a patch dimension is not a multiple of the block size.
    """
    patch, block = _triple(patch_size, "patch_size"), _triple(block_size, "block_size")
    if any(p % b for p, b in zip(patch, block, strict=True)):
        raise PretrainingError(f"patch size {list(patch)} is not divisible by the mask block size {list(block)}")
    return tuple(p // b for p, b in zip(patch, block, strict=True))  # type: ignore[return-value]


def masked_block_count(num_blocks: int, ratio: float) -> int:
    """Number of masked blocks out of ``num_blocks``: ``num_blocks - floor(num_blocks * (1 - ratio))``.

    Raises:
        PretrainingError: when ``ratio`` is outside [0, 1].
    """
    if not 0.0 <= ratio <= 1.0:
        raise PretrainingError(f"mask ratio must be in [0, 1], got {ratio}")
    # The epsilon keeps exact products (e.g. 10 * 0.3 = 2.9999999999999996) from losing a block.
    return num_blocks - math.floor(num_blocks * (1.0 - ratio) + 1e-9)


def draw_block_masks(
    batch_size: int,
    patch_size: Sequence[int],
    block_size: int | Sequence[int] = 8,
    ratio: float = 0.875,
    rng: RandomSource = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw a fresh block mask per sample: (B, 1, Z, Y, X) bool, True = masked (to be filled).

    Every sample gets exactly :func:`masked_block_count` masked blocks, chosen uniformly without
    replacement and independently of the other samples. Call once per view for independent views.
    """
    grid = block_grid(patch_size, block_size)
    n = math.prod(grid)
    n_masked = masked_block_count(n, ratio)
    # Ranking i.i.d. uniforms gives a uniformly random subset of exactly n_masked blocks per row.
    ranks = uniform((batch_size, n), rng).argsort(dim=1).argsort(dim=1)
    blocks = (ranks < n_masked).view(batch_size, 1, *grid).to(device or "cpu")
    return expand_block_mask(blocks, block_size)  # expanded on the target device: less to copy


def expand_block_mask(block_mask: torch.Tensor, block_size: int | Sequence[int] = 8) -> torch.Tensor:
    """Expand a (B, 1, nz, ny, nx) block mask to voxels: (B, 1, nz*bz, ny*by, nx*bx)."""
    bz, by, bx = _triple(block_size, "block_size")
    return block_mask.repeat_interleave(bz, 2).repeat_interleave(by, 3).repeat_interleave(bx, 4)


def apply_fill(image: torch.Tensor, mask: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """``fill`` where ``mask`` is True, ``image`` elsewhere (shapes broadcast).

    Differentiable in ``fill`` and ``image``: a template passed as ``fill`` gets gradients only through
    the masked voxels (``torch.where`` routes zero gradient to the unselected branch).
    """
    if mask.dtype != torch.bool:
        raise PretrainingError(f"mask must be a bool tensor, got {mask.dtype}")
    return torch.where(mask, fill, image)
