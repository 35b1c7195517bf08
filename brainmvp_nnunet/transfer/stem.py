"""Adapting the input convolution (stem) of a pre-trained encoder to another number of input channels.

Pre-training sees one modality at a time (1 input channel); fine-tuning stacks C modalities. Two
choices (shared design, section 6):

* ``repeat``: the kernel summed over its source channels, copied to every target channel and divided
  by the target count. C identical input channels then give exactly the pre-trained response to one,
  so the pre-trained features are reproduced at the start of fine-tuning.
* ``reinit``: keep the target network's fresh initialisation (what upstream BrainMVP does).
"""

from __future__ import annotations

from typing import Literal

import torch

from brainmvp_nnunet.errors import CheckpointError

StemMode = Literal["repeat", "reinit"]
STEM_MODES: tuple[str, ...] = ("repeat", "reinit")


def check_stem_mode(mode: str) -> StemMode:
    """Validate a ``stem_mode`` option."""
    if mode not in STEM_MODES:
        raise CheckpointError(f"stem_mode must be one of {STEM_MODES}, got {mode!r}")
    return mode  # type: ignore[return-value]


def adapt_stem(weight: torch.Tensor, in_channels: int, mode: str = "repeat") -> torch.Tensor | None:
    """A stem kernel for ``in_channels`` inputs from a kernel (out, C_src, *spatial) trained on C_src.

    ``repeat``: ``sum over C_src`` copied to ``in_channels`` channels and divided by ``in_channels``.
    For C_src = 1 that is the 1-channel kernel / C; in general C_dst identical inputs give the output
    that C_src identical inputs gave (a per-channel mean instead of the sum would scale that output
    by 1 / C_src). ``reinit`` returns None: the caller keeps its fresh initialisation.

    The input is never modified; the result is a new tensor with the input's dtype and device
    (half-precision kernels are summed in float32 so that they are rounded once, at the end).

    Raises:
        CheckpointError: for an unknown mode, ``in_channels < 1`` or a weight that is not a conv kernel.
    """
    mode = check_stem_mode(mode)
    if in_channels < 1:
        raise CheckpointError(f"a stem needs at least one input channel, got in_channels={in_channels}")
    if weight.ndim < 3:
        raise CheckpointError(f"a stem kernel has shape (out, in, *spatial), got shape {tuple(weight.shape)}")
    if mode == "reinit":
        return None
    summed = weight.detach().to(torch.promote_types(weight.dtype, torch.float32)).sum(dim=1, keepdim=True)
    repeats = [1, in_channels] + [1] * (weight.ndim - 2)
    return (summed.repeat(*repeats) / in_channels).to(weight.dtype)
