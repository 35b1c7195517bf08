"""Downstream classification with a BrainMVP pre-trained encoder (HGG vs LGG and the like).

Run with the stock ``nnUNetv2_train ID 3d_fullres FOLD -tr nnUNetTrainerBrainMVPClassifier -p PLANS``
on a dataset converted with per-case class labels (``dataset.json`` ``brainmvp.class_labels``). It is
:class:`nnUNetTrainerBrainMVP` (same folds, label budgets, data loader, augmentation, optimiser and
pre-trained encoder loading) with a different network and loss: the plans' encoder, global average
pooling and an MLP head (:mod:`brainmvp_nnunet.networks.classification`), cross-entropy on the class
of each patch's case. nnU-Net's segmentation target is still loaded (its foreground sampling picks
lesion-centred patches a third of the time) but not used as a target.

During training nnU-Net's "pseudo Dice" log entry carries the validation patch accuracy (the best
checkpoint follows it). Final validation averages the class probabilities over sliding-window
tiles of each validation case and writes ``validation/classification_summary.json`` (per-case
probabilities, accuracy, balanced accuracy, AUC, F1); there is no segmentation export, and
``nnUNetv2_predict`` does not apply. DDP is not supported.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import torch
from acvl_utils.cropping_and_padding.padding import pad_nd_image
from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.collate_outputs import collate_outputs
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn

from brainmvp_nnunet.atomic import atomic_write_bytes
from brainmvp_nnunet.evaluation.classification import (
    CLASSIFICATION_SUMMARY_NAME,
    class_indices,
    classification_summary,
)
from brainmvp_nnunet.networks.classification import classifier_from_segmentation_network
from brainmvp_nnunet.trainers.finetune import nnUNetTrainerBrainMVP
from brainmvp_nnunet.trainers.short import NoMirroringMixin


class nnUNetTrainerBrainMVPClassifier(nnUNetTrainerBrainMVP):
    """Classification of whole cases from the pre-trained encoder; options are class attributes."""

    head_hidden = 256
    head_dropout = 0.2
    tile_step_size = 0.5  # overlap of the validation tiles, as nnU-Net's sliding window
    task_name = "classification"  # the region of the report rows

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.enable_deep_supervision = False  # one output, and targets are not downsampled
        self.class_names, self.case_classes = class_indices(dataset_json)

    def build_network_architecture(self, plans_manager: PlansManager, configuration_manager: ConfigurationManager,
                                   num_input_channels: int, num_output_channels: int,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        """The plans' segmentation network's encoder with a classification head.

        An instance method, unlike nnU-Net's static one: the number of classes comes from this
        trainer's dataset.json class labels, not from the segmentation label manager.
        """
        segmentation = nnUNetTrainer.build_network_architecture(plans_manager, configuration_manager,
                                                                num_input_channels, num_output_channels, False)
        return classifier_from_segmentation_network(segmentation, len(self.class_names), self.head_hidden,
                                                    self.head_dropout)

    def set_deep_supervision_enabled(self, enabled: bool) -> None:
        """Nothing to switch: the classifier has no decoder."""

    def _build_loss(self) -> nn.Module:
        return nn.CrossEntropyLoss()

    def _class_targets(self, keys) -> torch.Tensor:
        return torch.as_tensor([self.case_classes[k] for k in keys], dtype=torch.long)

    def train_step(self, batch: dict) -> dict:
        """nnU-Net's step (autocast, gradient clipping) with the cases' classes as target."""
        return super().train_step({**batch, "target": self._class_targets(batch["keys"])})

    def validation_step(self, batch: dict) -> dict:
        """Loss and correct predictions of a validation batch (nnU-Net runs this under no_grad)."""
        target = self._class_targets(batch["keys"]).to(self.device)
        logits = self.network(batch["data"].to(self.device, non_blocking=True))
        return {"loss": self.loss(logits, target).detach().cpu().numpy(),
                "correct": int((logits.argmax(1) == target).sum()), "n": len(target)}

    def on_validation_epoch_end(self, val_outputs: list[dict]) -> None:
        """Log patch accuracy where nnU-Net expects the pseudo Dice (plots and best checkpoint use it)."""
        outputs = collate_outputs(val_outputs)
        accuracy = float(np.sum(outputs["correct"]) / max(1, np.sum(outputs["n"])))
        self.logger.log("mean_fg_dice", accuracy, self.current_epoch)
        self.logger.log("dice_per_class_or_region", [accuracy], self.current_epoch)
        self.logger.log("val_losses", float(np.mean(outputs["loss"])), self.current_epoch)

    @torch.no_grad()
    def predict_case(self, data: np.ndarray) -> np.ndarray:
        """Class probabilities of a preprocessed case (C, Z, Y, X): the mean softmax over its tiles."""
        patch = tuple(int(p) for p in self.configuration_manager.patch_size)
        padded, _ = pad_nd_image(data, patch, "constant", {"value": 0}, True, None)
        steps = compute_steps_for_sliding_window(padded.shape[1:], patch, self.tile_step_size)
        total = torch.zeros(len(self.class_names), device=self.device)
        starts = list(itertools.product(*steps))
        for start in starts:
            tile = padded[(slice(None), *(slice(s, s + p) for s, p in zip(start, patch, strict=True)))]
            logits = self.network(torch.from_numpy(np.ascontiguousarray(tile, dtype=np.float32))[None].to(self.device))
            total += torch.softmax(logits.float(), dim=1)[0]
        return (total / len(starts)).cpu().numpy()

    def perform_actual_validation(self, save_probabilities: bool = False) -> None:
        """Per-case class probabilities of the validation fold and ``classification_summary.json``."""
        self.network.eval()
        _, val_keys = self.do_split()
        dataset_val = self.dataset_class(self.preprocessed_dataset_folder, val_keys,
                                         folder_with_segs_from_previous_stage=self.folder_with_segs_from_previous_stage)
        cases = list(dataset_val.identifiers)
        probabilities = []
        for case in cases:
            data = dataset_val.load_case(case)[0]
            probabilities.append(self.predict_case(np.asarray(data[:])))  # [:] reads blosc2 into numpy
        summary = classification_summary(cases, [self.case_classes[c] for c in cases], np.stack(probabilities),
                                         self.class_names, task=self.task_name)
        path = Path(self.output_folder) / "validation" / CLASSIFICATION_SUMMARY_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, (json.dumps(summary, indent=1) + "\n").encode())
        self.print_to_log_file(f"validation ({len(cases)} cases): {summary['metrics']}")


class nnUNetTrainerBrainMVPClassifier_Tiny(NoMirroringMixin, nnUNetTrainerBrainMVPClassifier):
    """2 epochs of 3 iterations, no mirroring: for end-to-end tests on CPU."""

    epochs, iterations_per_epoch, val_iterations_per_epoch = 2, 3, 1
    initial_lr_value = 1e-3
