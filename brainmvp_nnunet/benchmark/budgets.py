"""Label budgets: nested, seeded subsets of a training fold.

Every arm of a benchmark must see the same training cases at a given budget, and a smaller budget
must be a subset of a larger one (so a curve over budgets measures the amount of labels, not which
cases were drawn). One seeded permutation of the sorted fold, cut at ``ceil(fraction * n)``, gives
both properties; the validation fold never changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from brainmvp_nnunet.errors import BrainMVPError


class BudgetError(BrainMVPError, ValueError):
    """A label budget that cannot be applied (fraction outside (0, 1], empty fold)."""


def budget_size(num_cases: int, fraction: float) -> int:
    """Number of training cases kept at ``fraction`` (at least one)."""
    if not 0.0 < fraction <= 1.0:
        raise BudgetError(f"label budget {fraction} must be in (0, 1]")
    if num_cases < 1:
        raise BudgetError("the training fold is empty")
    return max(1, math.ceil(round(fraction * num_cases, 9)))


def budget_subset(train_keys: Sequence[str], fraction: float, seed: int = 0) -> list[str]:
    """The first ``ceil(fraction * n)`` cases of a seeded permutation of the sorted keys (sorted output)."""
    keys = sorted(train_keys)
    order = np.random.default_rng(seed).permutation(len(keys))
    return sorted(keys[i] for i in order[:budget_size(len(keys), fraction)])
