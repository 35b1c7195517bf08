"""Warm-up + cosine learning-rate schedule, stepped per epoch the way nnU-Net does."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from brainmvp_nnunet.errors import PretrainingError
from brainmvp_nnunet.pretraining.schedule import WarmupCosineLR, warmup_cosine_factor


def _optimizer(lr: float = 1e-3) -> torch.optim.Optimizer:
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    return torch.optim.SGD([{"params": params[:1]}, {"params": params[1:], "lr": lr / 10}], lr=lr)


@pytest.mark.parametrize(
    ("epoch", "factor"),
    [
        (0, 1 / 10),  # epoch 0 already trains
        (4, 5 / 10),
        (9, 1.0),  # last warm-up epoch
        (10, 1.0),  # cosine starts at 1
        (55, 0.5),  # half-way through the cosine
        (99, 0.5 * (1 + math.cos(math.pi * 89 / 90))),  # last epoch, still > 0
        (100, 0.0),  # the end
    ],
)
def test_factor_values(epoch: int, factor: float) -> None:
    assert warmup_cosine_factor(epoch, 100, 10) == pytest.approx(factor, abs=1e-12)


def test_factor_without_warmup_and_with_floor() -> None:
    assert warmup_cosine_factor(0, 10, 0) == 1.0
    assert warmup_cosine_factor(10, 10, 0, min_factor=0.1) == pytest.approx(0.1)
    assert warmup_cosine_factor(5, 10, 0, min_factor=0.1) == pytest.approx(0.55)


def test_scheduler_step_epoch_like_nnunet() -> None:
    optimizer = _optimizer()
    scheduler = WarmupCosineLR(optimizer, num_epochs=100, warmup_epochs=10)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([1e-4, 1e-5])  # epoch 0 after init
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation warning for step(epoch)
        for epoch in (9, 55, 99, 3):  # any order: closed form, as after an nnU-Net resume
            scheduler.step(epoch)
            expected = warmup_cosine_factor(epoch, 100, 10)
            assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([1e-3 * expected, 1e-4 * expected])
            assert scheduler.get_last_lr() == pytest.approx([1e-3 * expected, 1e-4 * expected])
    scheduler.step()  # no argument: next epoch
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * warmup_cosine_factor(4, 100, 10))


def test_scheduler_state_dict_roundtrip() -> None:
    scheduler = WarmupCosineLR(_optimizer(), num_epochs=20, warmup_epochs=2)
    scheduler.step(7)
    other = WarmupCosineLR(_optimizer(), num_epochs=20, warmup_epochs=2)
    other.load_state_dict(scheduler.state_dict())
    assert other.last_epoch == 7 and other.base_lrs == scheduler.base_lrs


@pytest.mark.parametrize(("num_epochs", "warmup", "floor"), [(0, 0, 0.0), (10, 10, 0.0), (10, -1, 0.0), (10, 2, 2.0)])
def test_scheduler_validation(num_epochs: int, warmup: int, floor: float) -> None:
    with pytest.raises(PretrainingError):
        WarmupCosineLR(_optimizer(), num_epochs, warmup, floor)
