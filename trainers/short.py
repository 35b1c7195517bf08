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


class nnUNetTrainerBrainMVPDemo(NoMirroringMixin, nnUNetTrainer):
    """Stock nnU-Net training, 5 epochs of 25 iterations, no mirroring: the `make demo` run."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = 5, 25, 2


class nnUNetTrainerBrainMVPTiny(NoMirroringMixin, nnUNetTrainer):
    """Stock nnU-Net training, 1 epoch of 2 iterations, no mirroring: for end-to-end tests."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = 1, 2, 1
