"""One source of uniform random numbers for every draw of pre-training.

The draws accept either a ``torch.Generator`` (the trainer's, seeded per rank) or a
``numpy.random.Generator`` (nnU-Net's data loader world), so that the same function can be used on
both sides; ``None`` means torch's global generator.
"""

from __future__ import annotations

import numpy as np
import torch

RandomSource = torch.Generator | np.random.Generator | None


def uniform(shape: tuple[int, ...], rng: RandomSource) -> torch.Tensor:
    """``shape`` samples from U[0, 1) as a float64 CPU tensor, drawn from ``rng``."""
    if isinstance(rng, np.random.Generator):
        return torch.from_numpy(rng.random(shape))
    if rng is not None and rng.device.type != "cpu":
        return torch.rand(shape, generator=rng, device=rng.device, dtype=torch.float64).cpu()
    return torch.rand(shape, generator=rng, dtype=torch.float64)


def randint(high: int, rng: RandomSource) -> int:
    """One integer drawn uniformly from ``range(high)``."""
    # Via uniform() so that both generator kinds share one code path; min() guards u -> 1.0 rounding.
    return min(int(float(uniform((1,), rng)[0]) * high), high - 1)
