"""Fine-tuning with a BrainMVP pre-trained encoder, and the scratch baseline with identical settings.

Run with the stock ``nnUNetv2_train ID 3d_fullres FOLD -tr nnUNetTrainerBrainMVP -p PLANS``. The
checkpoint comes from ``$BRAINMVP_PRETRAINED`` or from the plans key written by
``brainmvp finetune --pretrained FILE``; without one this is the scratch baseline. Everything
else (optimiser, schedule, augmentation, epochs) is the same for both, so the only difference
between the arms of a benchmark is the initialisation.

The method stays in the library: reading checkpoints, key mapping and stem adaptation in
``brainmvp_nnunet.transfer``, the schedule in ``brainmvp_nnunet.pretraining.schedule``, label budgets
in ``brainmvp_nnunet.benchmark.budgets``.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from brainmvp_nnunet.benchmark.budgets import budget_subset
from brainmvp_nnunet.errors import CheckpointError
from brainmvp_nnunet.finetuning import (
    TemplateAugmentedDataset,
    TemplateChannelSubstitution,
    channel_templates,
    embedding_consistency_loss,
    templates_at_spacing,
    two_views,
)
from brainmvp_nnunet.planners.variants import BUDGET_KEY, FINETUNE_KEY, PRETRAINED_ENV
from brainmvp_nnunet.pretraining.availability import parse_brainmvp_block
from brainmvp_nnunet.pretraining.schedule import WarmupCosineLR
from brainmvp_nnunet.trainers.short import NoMirroringMixin, RunSettingsMixin
from brainmvp_nnunet.transfer import encoder_of, load_encoder_into, read_encoder_weights, unwrap_network


def pretrained_source(plans: dict, environ: dict[str, str] | None = None) -> tuple[str | None, str]:
    """The checkpoint to start from and where that choice came from (environment wins over plans)."""
    environ = os.environ if environ is None else environ
    if environ.get(PRETRAINED_ENV):
        return environ[PRETRAINED_ENV], f"${PRETRAINED_ENV}"
    path = plans.get(FINETUNE_KEY, {}).get("pretrained")
    return (path, f"plans key {FINETUNE_KEY}") if path else (None, "none (training from scratch)")


class nnUNetTrainerBrainMVP(RunSettingsMixin, nnUNetTrainer):
    """nnU-Net training with AdamW, warm-up + cosine and an optional pre-trained encoder.

    Class attributes are the options; variants are tiny subclasses that change one of them.
    """

    initial_lr_value = 3e-4  # BrainMVP's downstream rate; the same for scratch and pre-trained runs
    weight_decay_value = 1e-4
    warmup_fraction = 0.1
    encoder_lr_factor = 1.0  # < 1: a lower rate for the pre-trained encoder
    freeze_encoder_epochs = 0  # train only the decoder during the first epochs
    min_loaded_fraction = 0.95
    epochs = 1000

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.pretrained_path, self.pretrained_origin = pretrained_source(plans)
        self.stem_mode = plans.get(FINETUNE_KEY, {}).get("stem_mode", "repeat")
        self.transfer_report = None
        self.pretrained_weights = None

    def _load_pretrained_encoder(self) -> None:
        self.print_to_log_file(f"pre-trained encoder: {self.pretrained_path or 'none'} (from {self.pretrained_origin})")
        if self.pretrained_path is None:
            return
        self.pretrained_weights = read_encoder_weights(self.pretrained_path, map_location="cpu")
        self.transfer_report = load_encoder_into(self.network, self.pretrained_weights, stem_mode=self.stem_mode,
                                                 min_fraction=self.min_loaded_fraction)
        self.print_to_log_file(self.transfer_report.summary())

    def configure_optimizers(self):
        """Load the pre-trained encoder (nnU-Net calls this after building the network, before DDP),
        then AdamW with the encoder in its own parameter group and warm-up + cosine."""
        self._load_pretrained_encoder()
        encoder_params = list(encoder_of(unwrap_network(self.network)).parameters())
        encoder_ids = {id(p) for p in encoder_params}
        other = [p for p in self.network.parameters() if id(p) not in encoder_ids]
        # the first group is the one nnU-Net logs as the learning rate
        groups = [{"params": other, "lr": self.initial_lr},
                  {"params": encoder_params, "lr": self.initial_lr * self.encoder_lr_factor}]
        optimizer = torch.optim.AdamW(groups, lr=self.initial_lr, weight_decay=self.weight_decay)
        warmup = min(max(1, round(self.warmup_fraction * self.num_epochs)), self.num_epochs - 1)
        return optimizer, WarmupCosineLR(optimizer, self.num_epochs, warmup_epochs=warmup)

    def on_train_epoch_start(self):
        """Freeze or unfreeze the encoder for this epoch, then nnU-Net's usual epoch start."""
        frozen = self.current_epoch < self.freeze_encoder_epochs
        for parameter in encoder_of(unwrap_network(self.network)).parameters():
            parameter.requires_grad_(not frozen)
        if frozen:
            self.print_to_log_file(f"encoder frozen (epoch {self.current_epoch} < {self.freeze_encoder_epochs})")
        super().on_train_epoch_start()

    def do_split(self):
        """nnU-Net's folds; with a label budget in the plans, a nested seeded subset of the training fold."""
        tr_keys, val_keys = super().do_split()
        budget = self.plans_manager.plans.get(BUDGET_KEY)
        if budget and self.fold != "all":
            kept = budget_subset(tr_keys, float(budget["fraction"]), int(budget.get("seed", 0)))
            self.print_to_log_file(f"label budget {budget['fraction']}: {len(kept)} of {len(tr_keys)} training cases")
            tr_keys = kept
        return tr_keys, val_keys


class nnUNetTrainerBrainMVP_templateSub(nnUNetTrainerBrainMVP):
    """Modality robustness: every training sample gets 0..C-1 whole channels from the aligned templates
    of the pre-trained checkpoint, and a case's missing channels always come from the templates."""

    def _channel_templates(self) -> np.ndarray:
        weights = self.pretrained_weights
        if weights is None or weights.templates is None:
            raise CheckpointError(f"{type(self).__name__} needs a pre-trained checkpoint with modality templates "
                                  f"(got {self.pretrained_path or 'none'})")
        spacing = self.configuration_manager.spacing
        templates = templates_at_spacing(weights.templates.float().numpy(), weights.template_spacing or spacing,
                                         spacing)
        return channel_templates(templates, weights.template_slots or [], parse_brainmvp_block(
            self.dataset_json).channel_slots)

    def get_tr_and_val_datasets(self):
        """nnU-Net's datasets, each case served with its templates stacked behind the image channels."""
        dataset_tr, dataset_val = super().get_tr_and_val_datasets()
        block = parse_brainmvp_block(self.dataset_json)
        templates = self._channel_templates()
        missing = {case: [c for c in range(len(block.channel_slots)) if c not in block.channels(case)]
                   for case in block.available_slots}
        spacing = self.configuration_manager.spacing
        return (TemplateAugmentedDataset(dataset_tr, templates, spacing, missing),
                TemplateAugmentedDataset(dataset_val, templates, spacing, missing))

    def get_training_transforms(self, *args, **kwargs):
        """Substitution first (on the larger initial patch), then nnU-Net's own augmentation."""
        stock = nnUNetTrainer.get_training_transforms(*args, **kwargs)
        return ComposeTransforms([TemplateChannelSubstitution(), *stock.transforms])

    def get_validation_transforms(self, *args, **kwargs):
        """The real channels only (missing ones already come from the templates)."""
        stock = nnUNetTrainer.get_validation_transforms(*args, **kwargs)
        return ComposeTransforms([TemplateChannelSubstitution(max_replaced=0), *stock.transforms])


class nnUNetTrainerBrainMVP_templateConsistency(nnUNetTrainerBrainMVP_templateSub):
    """Template substitution on two full copies of each sample (independent channel choices), both
    supervised, plus an L2 consistency between their pooled bottleneck features (weight 0.1)."""

    consistency_weight = 0.1

    def get_training_transforms(self, *args, **kwargs):
        """nnU-Net's augmentation on the image + template stack; the two views are made in train_step."""
        return nnUNetTrainer.get_training_transforms(*args, **kwargs)

    def _build_loss(self):
        segmentation_loss = super()._build_loss()
        captured: dict[str, torch.Tensor] = {}

        def keep_bottleneck(_module, _inputs, features):
            captured["bottleneck"] = features[-1]

        encoder_of(unwrap_network(self.network)).register_forward_hook(keep_bottleneck)

        def loss(output, target):
            value = segmentation_loss(output, target)
            if self.network.training:
                first, second = captured["bottleneck"].chunk(2)
                value = value + self.consistency_weight * embedding_consistency_loss(first, second)
            return value

        return loss

    def train_step(self, batch: dict) -> dict:
        """Two views per sample, concatenated (never interleaved), targets repeated for both."""
        rng = np.random.default_rng(np.random.randint(0, 2**31 - 1))
        target = batch["target"]
        target = [torch.cat([t, t]) for t in target] if isinstance(target, list) else torch.cat([target, target])
        return super().train_step({**batch, "data": two_views(batch["data"], rng), "target": target})


class nnUNetTrainerBrainMVP_100epochs(nnUNetTrainerBrainMVP):
    """100 epochs."""

    epochs = 100


class nnUNetTrainerBrainMVP_300epochs(nnUNetTrainerBrainMVP):
    """300 epochs (BrainMVP's downstream setting)."""

    epochs = 300


class nnUNetTrainerBrainMVP_slowEncoder(nnUNetTrainerBrainMVP):
    """The pre-trained encoder learns at a tenth of the decoder's rate."""

    encoder_lr_factor = 0.1


class nnUNetTrainerBrainMVP_freeze50(nnUNetTrainerBrainMVP):
    """Encoder frozen for the first 50 epochs (decoder warm-up on fixed features)."""

    freeze_encoder_epochs = 50


class nnUNetTrainerBrainMVP_Tiny(NoMirroringMixin, nnUNetTrainerBrainMVP):
    """2 epochs of 3 iterations, no mirroring: for end-to-end tests on CPU."""

    epochs, iterations_per_epoch, val_iterations_per_epoch = 2, 3, 1
    initial_lr_value = 1e-3


class nnUNetTrainerBrainMVP_templateSub_Tiny(NoMirroringMixin, nnUNetTrainerBrainMVP_templateSub):
    """Tiny run of template substitution, for tests."""

    epochs, iterations_per_epoch, val_iterations_per_epoch = 2, 3, 1


class nnUNetTrainerBrainMVP_templateConsistency_Tiny(NoMirroringMixin, nnUNetTrainerBrainMVP_templateConsistency):
    """Tiny run of the two-view consistency variant, for tests."""

    epochs, iterations_per_epoch, val_iterations_per_epoch = 2, 3, 1


class nnUNetTrainerBrainMVP_Demo(NoMirroringMixin, nnUNetTrainerBrainMVP):
    """6 epochs of 20 iterations, no mirroring: the `make demo` fine-tuning runs."""

    epochs, iterations_per_epoch, val_iterations_per_epoch = 6, 20, 2
    initial_lr_value = 1e-3
