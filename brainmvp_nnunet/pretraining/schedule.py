"""Linear warm-up then cosine decay of the learning rate, stepped once per epoch.

nnU-Net calls ``lr_scheduler.step(current_epoch)`` at the start of every epoch (also after a resume,
without restoring the scheduler), so the rate is a closed form of the epoch, never an accumulated
state. Upstream has no working warm-up (spec section 8, item 5).
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from brainmvp_nnunet.errors import PretrainingError


def warmup_cosine_factor(epoch: int, num_epochs: int, warmup_epochs: int, min_factor: float = 0.0) -> float:
    """Multiplier of the base rate at ``epoch`` (0-based).

    Warm-up (``epoch < warmup_epochs``): ``(epoch + 1) / warmup_epochs``, so epoch 0 already trains and
    the last warm-up epoch reaches 1. Then cosine from 1 at ``warmup_epochs`` to ``min_factor`` at
    ``num_epochs`` (one past the last epoch, so the last epoch still trains, as nnU-Net's poly rule):
    ``min_factor + (1 - min_factor) * (1 + cos(pi * (epoch - warmup_epochs) / (num_epochs - warmup_epochs))) / 2``.
    """
    if epoch < warmup_epochs:
        return (epoch + 1) / warmup_epochs
    t = min((epoch - warmup_epochs) / (num_epochs - warmup_epochs), 1.0)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * t))


class WarmupCosineLR(LRScheduler):
    """Per-epoch warm-up + cosine schedule; ``step(epoch)`` sets the rate of ``epoch`` directly.

    Every parameter group keeps its own base rate (its ``initial_lr``), so groups with a different
    rate (e.g. the templates) keep their ratio.

    Args:
        optimizer: the optimizer.
        num_epochs: total number of epochs.
        warmup_epochs: epochs of linear warm-up (0 for none).
        min_factor: final rate as a fraction of the base rate.
        last_epoch: the epoch last stepped (-1 for a fresh start).
    """

    def __init__(self, optimizer: Optimizer, num_epochs: int, warmup_epochs: int = 0, min_factor: float = 0.0,
                 last_epoch: int = -1) -> None:
        if num_epochs < 1 or not 0 <= warmup_epochs < num_epochs or not 0.0 <= min_factor <= 1.0:
            raise PretrainingError(
                f"need 0 <= warmup_epochs < num_epochs and min_factor in [0, 1], got warmup_epochs={warmup_epochs}, "
                f"num_epochs={num_epochs}, min_factor={min_factor}"
            )
        self.num_epochs, self.warmup_epochs, self.min_factor = num_epochs, warmup_epochs, min_factor
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """Rates of the parameter groups at ``self.last_epoch``."""
        factor = warmup_cosine_factor(max(self.last_epoch, 0), self.num_epochs, self.warmup_epochs, self.min_factor)
        return [base * factor for base in self.base_lrs]

    def step(self, epoch: int | None = None) -> None:  # type: ignore[override]
        """Set the rates of ``epoch`` (default: the next epoch); nnU-Net passes its current epoch."""
        self.last_epoch = self.last_epoch + 1 if epoch is None else epoch
        self._step_count += 1
        self._last_lr = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, self._last_lr, strict=True):
            group["lr"] = lr
