"""Template channel substitution: whole input channels replaced by the aligned modality templates.

During fine-tuning a random subset of 0..C-1 channels (never all) is replaced by the learned
template of each channel's modality, so the network learns to segment with modalities missing, the
way it will be asked to at inference when a scan is absent and its channel is filled from the
template. Random and deterministic parts are split (as TorchIO does): :func:`draw_replaced_channels`
draws which channels, :func:`substitute_channels` applies a given choice.

The data carry their templates along: a sample is ``(2C, ...)``, the C image channels followed by
the C aligned template channels (see :mod:`.case_templates`), so spatial augmentation moves
templates and images together.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import ImageOnlyTransform


def draw_replaced_channels(num_channels: int, rng: np.random.Generator | None = None,
                           max_replaced: int | None = None) -> list[int]:
    """Channels to replace: ``n`` uniform in ``0..min(max_replaced, C-1)``, then ``n`` distinct channels."""
    rng = np.random.default_rng() if rng is None else rng
    upper = num_channels - 1 if max_replaced is None else min(max_replaced, num_channels - 1)
    n = int(rng.integers(0, upper + 1)) if upper > 0 else 0
    return sorted(int(c) for c in rng.choice(num_channels, size=n, replace=False)) if n else []


def substitute_channels(stacked: torch.Tensor, replaced: Sequence[int]) -> torch.Tensor:
    """``(2C, ...)`` image+template stack -> ``(C, ...)`` image with ``replaced`` channels from the templates."""
    num_channels = stacked.shape[0] // 2
    image = stacked[:num_channels].clone()
    for channel in replaced:
        image[channel] = stacked[num_channels + channel]
    return image


class TemplateChannelSubstitution(ImageOnlyTransform):
    """batchgeneratorsv2 transform: ``(2C, ...)`` stack in, ``(C, ...)`` image out.

    Args:
        max_replaced: at most this many channels are replaced (``0`` only drops the template channels,
            as validation needs); ``None`` allows up to C-1.
    """

    def __init__(self, max_replaced: int | None = None):
        super().__init__()
        self.max_replaced = max_replaced

    def get_parameters(self, **data_dict) -> dict:
        """Random part: which channels this sample gets from the templates."""
        num_channels = data_dict["image"].shape[0] // 2
        # nnU-Net seeds numpy's global state per augmentation worker; draw from it for reproducibility.
        rng = np.random.default_rng(np.random.randint(0, 2**31 - 1))
        return {"replaced": draw_replaced_channels(num_channels, rng, self.max_replaced)}

    def _apply_to_image(self, img: torch.Tensor, **params) -> torch.Tensor:
        return substitute_channels(img, params["replaced"])


def two_views(stacked_batch: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """``(B, 2C, ...)`` -> ``(2B, C, ...)``: two full copies of the batch with independent substitutions.

    View 1 of every sample comes first, then view 2 (concatenated, never interleaved channel-wise), so
    ``output[:B]`` and ``output[B:]`` are the two views of the same samples in the same order.
    """
    num_channels = stacked_batch.shape[1] // 2
    return torch.cat([torch.stack([substitute_channels(sample, draw_replaced_channels(num_channels, rng))
                                   for sample in stacked_batch]) for _ in range(2)])


def embedding_consistency_loss(embedding_a: torch.Tensor, embedding_b: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of two views' globally pooled bottleneck features (B, C, ...)."""
    pooled_a = embedding_a.flatten(2).mean(-1)
    pooled_b = embedding_b.flatten(2).mean(-1)
    return torch.mean((pooled_a - pooled_b) ** 2)
