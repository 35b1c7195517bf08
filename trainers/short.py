"""Short stock-nnU-Net trainers for the demo and the tests on CPU.

nnU-Net's own ``nnUNetTrainer_1epoch`` still runs 250 iterations (minutes per epoch on a CPU), so
these tiny named variants fix epochs and iterations and switch mirroring off (8x faster
validation); they change nothing else, so they behave like the stock trainer in miniature.
"""

from __future__ import annotations

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class NoMirroringMixin:
    """No mirroring in augmentation nor at inference (test-time augmentation costs 8x on CPU)."""

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        configured = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        self.inference_allowed_mirroring_axes = None
        return (*configured[:3], None)


class RunSettingsMixin:
    """Training length and optimiser settings as class attributes, so a variant is a one-line subclass.

    ``None`` keeps nnU-Net's value (1000 epochs, 250 + 50 iterations, its learning rate and decay).
    """

    epochs: int | None = None
    iterations_per_epoch: int | None = None
    val_iterations_per_epoch: int | None = None
    initial_lr_value: float | None = None
    weight_decay_value: float | None = None

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        for attribute, setting in (("num_epochs", self.epochs), ("num_iterations_per_epoch", self.iterations_per_epoch),
                                   ("num_val_iterations_per_epoch", self.val_iterations_per_epoch),
                                   ("initial_lr", self.initial_lr_value), ("weight_decay", self.weight_decay_value)):
            if setting is not None:
                setattr(self, attribute, setting)


class nnUNetTrainerBrainMVPDemo(NoMirroringMixin, RunSettingsMixin, nnUNetTrainer):
    """Stock nnU-Net training, 5 epochs of 25 iterations, no mirroring: the `make demo` run."""

    epochs, iterations_per_epoch, val_iterations_per_epoch = 5, 25, 2


class nnUNetTrainerBrainMVPTiny(NoMirroringMixin, RunSettingsMixin, nnUNetTrainer):
    """Stock nnU-Net training, 1 epoch of 2 iterations, no mirroring: for end-to-end tests."""

    epochs, iterations_per_epoch, val_iterations_per_epoch = 1, 2, 1
