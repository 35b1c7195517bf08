"""BrainMVP pre-training as an nnU-Net trainer (fold ``all``, plans of ``BrainMVPPlanner``/``BrainMVPResEncPlanner``).

Run with the stock ``nnUNetv2_train ID 3d_fullres all -tr nnUNetTrainerBrainMVPPretrain -p BrainMVPPlans``
(``nnUNet_extTrainer`` set by ``brainmvp env``) or ``brainmvp pretrain -d ID``. The method lives in
``brainmvp_nnunet.pretraining`` (draws, masks, templates, losses, schedule, the network as one module,
the nnU-Net loader and logger adapters, the exports); this class wires it into nnU-Net's training loop:

* data: the stock loader without any transform, reporting patch origins so that the templates can be
  aligned; availability per case from the dataset.json ``brainmvp`` block;
* checkpoints: nnU-Net's, plus scheduler and random states (exact resume with ``nnUNet_n_proc_DA=0``;
  with data-augmentation workers their random streams are not restored), written atomically and read
  with ``weights_only=True``;
* DDP: nnU-Net's own DDP is CUDA-only; here a process group on CPU (gloo) is honoured too, with plain
  BatchNorm (SyncBatchNorm needs CUDA);
* outputs on completion: ``brainmvp_pretrained.pt``, ``templates/<slot>.nii.gz``, and pictures of the
  views every ``png_every`` epochs in ``reconstructions/``. No segmentation validation.
"""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from batchgenerators.dataloading.nondet_multi_threaded_augmenter import NonDetMultiThreadedAugmenter
from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.helpers import dummy_context
from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
from torch import autocast
from torch.nn.parallel import DistributedDataParallel as DDP

from brainmvp_nnunet import __version__
from brainmvp_nnunet.atomic import atomic_write_with
from brainmvp_nnunet.errors import CheckpointError, PretrainingError
from brainmvp_nnunet.pretraining import (
    ModalityTemplates,
    PretrainConfig,
    WarmupCosineLR,
    apply_modality_choices,
    cross_modal_active,
    draw_block_masks,
    draw_modality_choices,
    parse_brainmvp_block,
)
from brainmvp_nnunet.pretraining.export import export_artefact, save_templates_nifti, save_views_png
from brainmvp_nnunet.pretraining.model import PretrainingModel, build_pretraining_encoder, template_grid_shape
from brainmvp_nnunet.pretraining.nnunet import (
    PatchOriginDataLoader,
    PretrainLocalLogger,
    capture_rng_state,
    centre_patch_batch,
    restore_rng_state,
    template_origins,
)
from brainmvp_nnunet.trainers.short import RunSettingsMixin
from brainmvp_nnunet.transfer import EncoderWeights, load_encoder_into, safe_torch_load, unwrap_network
from brainmvp_nnunet.transfer.keys import strip_state_dict_prefixes

_LOSS_KEYS = ("loss", "template_rec", "cross_modal_rec", "contrastive", "template_only")


class nnUNetTrainerBrainMVPPretrain(RunSettingsMixin, nnUNetTrainer):
    """BrainMVP pre-training (paper settings) with nnU-Net's loop, data, logging and checkpoints.

    Class attributes are the options; variants are tiny subclasses that change one of them.
    """

    pretrain_config: PretrainConfig = PretrainConfig.paper()
    epochs = 1000
    iterations_per_epoch = 250
    val_iterations_per_epoch = 10  # validation only monitors the losses
    initial_lr_value = 3e-4  # upstream AdamW rate and weight decay
    weight_decay_value = 1e-5
    warmup_fraction = 0.02
    grad_clip = 12.0  # nnU-Net's clipping norm
    png_every = 50
    checkpoint_every = 50
    seed = 12345  # + rank; nnU-Net itself does not seed, BrainMVP resume equality needs it
    activation_checkpointing = True  # UniFormer MLPs recomputed in backward: same numbers, less memory

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        if self.is_ddp and device.type != "cuda":
            # nnU-Net forces cuda:<rank> whenever a process group exists; a gloo group on CPU keeps the CPU.
            self.device, self.grad_scaler = device, None
        elif self.is_ddp:
            # torchrun's LOCAL_RANK, not the global rank, names this node's GPU (multi-node runs).
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", self.local_rank)))
            torch.cuda.set_device(self.device)
        self.save_every = self.checkpoint_every
        self.enable_deep_supervision = False
        self.block = parse_brainmvp_block(dataset_json)
        if len(self.block.channel_slots) != len(dataset_json["channel_names"]):
            raise PretrainingError(f"dataset.json has {len(dataset_json['channel_names'])} channels but its brainmvp "
                                   f"block names {len(self.block.channel_slots)}")
        self.logger.local_logger = PretrainLocalLogger()
        self._restored_rng: dict | None = None

    # ------------------------------------------------------------------ network, optimiser, DDP
    def build_pretraining_model(self) -> PretrainingModel:
        """Encoder (1 channel) from the plans' network, its reconstruction head, templates on the canonical
        field of view at the plans' spacing (one per dataset channel), projection head if configured."""
        cm = self.configuration_manager
        encoder, axis_order = build_pretraining_encoder(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                                        cm.network_arch_init_kwargs_req_import)
        templates = ModalityTemplates(self.block.channel_slots, template_grid_shape(cm.spacing), cm.spacing)
        return PretrainingModel(encoder, templates, self.pretrain_config, axis_order, self.activation_checkpointing)

    def check_fine_tuning_compatibility(self, model: PretrainingModel) -> None:
        """Build the fine-tuning network of the same plans and load the encoder into it (stem repeated to
        the dataset's channels), so that an incompatible set-up fails now, not after the pre-training."""
        cm = self.configuration_manager
        network = get_network_from_plans(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                         cm.network_arch_init_kwargs_req_import, self.num_input_channels,
                                         self.label_manager.num_segmentation_heads, allow_init=True,
                                         deep_supervision=False)
        weights = EncoderWeights(model.encoder.state_dict(), 1, "pretrain", "the pre-training encoder")
        try:
            report = load_encoder_into(network, weights, "repeat", min_fraction=1.0)
        except CheckpointError as exc:
            raise PretrainingError(f"the fine-tuning network {cm.network_arch_class_name} of these plans cannot load "
                                   f"the pre-training encoder: {exc}") from exc
        self.print_to_log_file("fine-tuning check: " + report.summary().splitlines()[0])

    def initialize(self) -> None:
        """Seed, build the pre-training network (one module), check it against the fine-tuning network,
        optimiser and schedule, then wrap for DDP (CUDA with SyncBatchNorm, or CPU/gloo)."""
        if self.was_initialized:
            raise RuntimeError("initialize() called twice")
        seed_everything(self.seed + self.local_rank)
        self._set_batch_size_and_oversample()
        self.num_input_channels = determine_num_input_channels(self.plans_manager, self.configuration_manager,
                                                               self.dataset_json)
        model = self.build_pretraining_model()
        self.check_fine_tuning_compatibility(model)
        self.network = model.to(self.device)
        self.optimizer, self.lr_scheduler = self.configure_optimizers()
        if self.is_ddp:
            cuda = self.device.type == "cuda"
            if cuda:
                self.network = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.network)
            # The projection head is unused until the contrastive phase starts.
            self.network = DDP(self.network, device_ids=[self.device.index] if cuda else None,
                               find_unused_parameters=True)
        self.dataset_class = infer_dataset_class(self.preprocessed_dataset_folder)
        self.was_initialized = True
        self.print_to_log_file(f"BrainMVP pre-training: {self.pretrain_config}")
        self.logger.update_config({"hparas": {"initial_lr": self.initial_lr, "weight_decay": self.weight_decay,
                                              "num_epochs": self.num_epochs, "batch_size": self.batch_size,
                                              "pretrain_config": dataclasses.asdict(self.pretrain_config)}})

    @property
    def model(self) -> PretrainingModel:
        """The pre-training network without its DDP wrapper."""
        return unwrap_network(self.network)

    def configure_optimizers(self) -> tuple[torch.optim.Optimizer, WarmupCosineLR]:
        """AdamW (templates without weight decay: it would pull them towards zero where no patch reaches)
        and warm-up + cosine, stepped per epoch."""
        model = self.model
        others = [p for name, p in model.named_parameters() if not name.startswith("templates.")]
        optimizer = torch.optim.AdamW([{"params": others},
                                       {"params": list(model.templates.parameters()), "weight_decay": 0.0}],
                                      lr=self.initial_lr, weight_decay=self.weight_decay)
        warmup = min(int(self.warmup_fraction * self.num_epochs), self.num_epochs - 1)
        return optimizer, WarmupCosineLR(optimizer, self.num_epochs, warmup)

    def set_deep_supervision_enabled(self, enabled: bool) -> None:
        """No deep supervision in pre-training."""

    def _do_i_compile(self) -> bool:
        # The loss-computing forward (python lists, collectives) is not a torch.compile target.
        return False

    # ------------------------------------------------------------------ data
    def get_dataloaders(self) -> tuple[SingleThreadedAugmenter | NonDetMultiThreadedAugmenter, ...]:
        """Stock loaders without transforms (initial = final patch) that report patch origins."""
        patch = self.configuration_manager.patch_size
        loaders = [PatchOriginDataLoader(ds, self.batch_size, patch, patch, self.label_manager,
                                         oversample_foreground_percent=self.oversample_foreground_percent,
                                         transforms=None)
                   for ds in self.get_tr_and_val_datasets()]
        processes = get_allowed_n_proc_DA()
        if processes == 0:
            return tuple(SingleThreadedAugmenter(dl, None) for dl in loaders)
        return tuple(NonDetMultiThreadedAugmenter(dl, None, n, max(2, n // 2), None,
                                                  pin_memory=self.device.type == "cuda", wait_time=0.002)
                     for dl, n in zip(loaders, (processes, max(1, processes // 2)), strict=True))

    def batch_inputs(self, batch: dict, rng: torch.Generator | None = None) -> dict:
        """The forward arguments of :class:`PretrainingModel` for a loader batch: per-sample modality choice
        among the case's available channels, template origins, two independent masks per sample.

        ``rng``: the generator of the draws (default torch's global one, whose state checkpoints keep).
        """
        data = batch["data"]
        choices = draw_modality_choices([self.block.channels(k) for k in batch["keys"]], rng)
        selected = apply_modality_choices(data, choices, range(data.shape[1]))  # template index = channel
        templates = self.model.templates
        origins = template_origins(batch["bbox_lbs"], batch["geometry"], templates.shape, templates.spacing,
                                   self.plans_manager.transpose_forward)
        config, device = self.pretrain_config, self.device
        masks = [draw_block_masks(data.shape[0], data.shape[2:], config.block_size, config.mask_ratio, rng, device)
                 for _ in range(2)]
        return {"target": selected.target.to(device, non_blocking=True),
                "partner": selected.partner.to(device, non_blocking=True),
                "has_partner": selected.has_partner.to(device), "slots": selected.target_slots.tolist(),
                "origins": origins, "mask_a": masks[0], "mask_b": masks[1],
                "epoch": self.current_epoch, "num_epochs": self.num_epochs}

    # ------------------------------------------------------------------ steps and logging
    def train_step(self, batch: dict) -> dict:
        """One optimisation step on the BrainMVP losses (AMP and gradient scaling on CUDA only)."""
        inputs = self.batch_inputs(batch)
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context():
            losses = self.network(**inputs)
        if self.grad_scaler is not None:
            self.grad_scaler.scale(losses["loss"]).backward()
            self.grad_scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.grad_clip)
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.grad_clip)
            self.optimizer.step()
        return {k: float(v.detach()) for k, v in losses.items()}

    def validation_step(self, batch: dict) -> dict:
        """The same losses without gradients."""
        with autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context():
            losses = self.network(**self.batch_inputs(batch))
        return {k: float(v) for k, v in losses.items()}

    def _epoch_means(self, outputs: list[dict]) -> dict[str, float]:
        """Per-key means over this epoch's steps and over all ranks."""
        means = {k: float(np.mean([o[k] for o in outputs])) for k in _LOSS_KEYS}
        if self.is_ddp:
            gathered: list = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, means)
            means = {k: float(np.mean([g[k] for g in gathered])) for k in _LOSS_KEYS}
        return means

    def on_train_epoch_end(self, train_outputs: list[dict]) -> None:
        """Log the training loss (mandatory key) and the template-view reconstruction loss."""
        means = self._epoch_means(train_outputs)
        self.logger.log("train_losses", means["loss"], self.current_epoch)
        self.logger.log("train_template_rec", means["template_rec"], self.current_epoch)

    def on_validation_epoch_end(self, val_outputs: list[dict]) -> None:
        """Log every mandatory key (pseudo Dice := -validation loss, so "best" = lowest loss) and the losses."""
        means = self._epoch_means(val_outputs)
        epoch = self.current_epoch
        self.logger.log("val_losses", means["loss"], epoch)
        self.logger.log("mean_fg_dice", -means["loss"], epoch)
        self.logger.log("dice_per_class_or_region", [-means["loss"]], epoch)
        for key in ("template_rec", "cross_modal_rec", "template_only", "contrastive"):
            self.logger.log(f"val_{key}", means[key], epoch)
        self.print_to_log_file("val reconstruction: template view {template_rec:.4f}, cross-modal view "
                               "{cross_modal_rec:.4f}, template alone {template_only:.4f}; InfoNCE "
                               "{contrastive:.4f}".format(**means))

    def on_epoch_end(self) -> None:
        """nnU-Net's bookkeeping (checkpoints, progress.png), then the periodic picture."""
        super().on_epoch_end()
        if self.current_epoch % self.png_every == 0 and self.current_epoch < self.num_epochs:
            self.save_views_png()

    # ------------------------------------------------------------------ outputs
    def save_views_png(self) -> None:
        """Input, masked views and reconstructions of a fixed case (first identifier, central patch, fixed
        draws: the global random streams are not touched) into ``reconstructions/``."""
        if self.local_rank != 0:
            return
        key = sorted(self.dataset_class.get_identifiers(self.preprocessed_dataset_folder))[0]
        dataset = self.dataset_class(self.preprocessed_dataset_folder, [key])
        inputs = self.batch_inputs(centre_patch_batch(dataset, key, self.configuration_manager.patch_size),
                                   torch.Generator().manual_seed(0))
        epoch, num_epochs = inputs.pop("epoch"), inputs.pop("num_epochs")
        was_training = self.model.training
        self.model.eval()
        pictures = self.model.reconstruct(**inputs, use_partner=cross_modal_active(epoch, num_epochs,
                                                                                   self.pretrain_config))
        self.model.train(was_training)
        pictures["target"] = inputs["target"]
        slot = self.block.channel_slots[inputs["slots"][0]]
        save_views_png(pictures, Path(self.output_folder) / "reconstructions" / f"epoch_{epoch:04d}.png",
                       f"{key}, {slot}, after epoch {epoch}")

    def on_train_end(self) -> None:
        """Final checkpoint (nnU-Net), then the artefact, the template NIfTIs and a last picture (rank 0)."""
        super().on_train_end()
        if self.local_rank != 0:
            return
        cm = self.configuration_manager
        path = export_artefact(
            self.model, Path(self.output_folder), cm.network_arch_class_name, cm.network_arch_init_kwargs,
            cm.normalization_schemes, cm.spacing, cm.patch_size,
            {"dataset": self.plans_manager.dataset_name, "plans": self.plans_manager.plans_name,
             "configuration": self.configuration_name, "trainer": type(self).__name__, "epochs": self.current_epoch,
             "pretrain_config": dataclasses.asdict(self.pretrain_config), "brainmvp_nnunet": __version__})
        save_templates_nifti(self.model, Path(self.output_folder) / "templates")
        self.save_views_png()
        self.print_to_log_file(f"pre-trained artefact: {path}")

    def perform_actual_validation(self, save_probabilities: bool = False) -> None:
        """No segmentation validation: a pre-training network does not segment."""
        self.print_to_log_file("pre-training: no segmentation validation (see the logged reconstruction losses)")

    # ------------------------------------------------------------------ checkpoints
    def on_train_start(self) -> None:
        """nnU-Net's start (loaders, copies of plans and dataset.json), then the random states of a resumed run.

        Restored after the loaders exist, so that the resumed run continues the random streams exactly where
        the checkpoint left them.
        """
        super().on_train_start()
        if self._restored_rng is not None:
            restore_rng_state(self._restored_rng)
            self._restored_rng = None

    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's checkpoint plus scheduler, every rank's random states and the template metadata,
        written atomically (a killed run keeps the previous file)."""
        rng = capture_rng_state()
        states = [rng]
        if self.is_ddp:
            states = [None] * dist.get_world_size()
            dist.all_gather_object(states, rng)
        if self.local_rank != 0:
            return
        if self.disable_checkpointing:
            self.print_to_log_file("No checkpoint written, checkpointing is disabled")
            return
        checkpoint = {
            "network_weights": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "grad_scaler_state": self.grad_scaler.state_dict() if self.grad_scaler is not None else None,
            "lr_scheduler_state": self.lr_scheduler.state_dict(),
            "logging": self.logger.get_checkpoint(),
            "_best_ema": self._best_ema,
            "current_epoch": self.current_epoch + 1,
            "init_args": self.my_init_kwargs,
            "trainer_name": type(self).__name__,
            "inference_allowed_mirroring_axes": self.inference_allowed_mirroring_axes,
            "rng_states": states,
            "template_slots": list(self.model.templates.slots),
            "template_spacing": list(self.model.templates.spacing),
        }
        atomic_write_with(Path(filename), lambda fh: torch.save(checkpoint, fh))

    def load_checkpoint(self, filename_or_checkpoint: dict | str) -> None:
        """Restore network (templates included), optimiser, scheduler, scaler, epoch, log and random states.

        Files are read with ``weights_only=True``: this trainer logs plain floats and stores its random states
        as tensors and tuples, so nothing needs unpickling (``safe_torch_load`` also admits numpy scalars, which
        nnU-Net's stock loop logs).
        """
        if not self.was_initialized:
            self.initialize()
        checkpoint = filename_or_checkpoint if isinstance(filename_or_checkpoint, dict) else \
            safe_torch_load(filename_or_checkpoint, map_location="cpu")
        self.model.load_state_dict(strip_state_dict_prefixes(checkpoint["network_weights"]))
        self.optimizer.load_state_dict(checkpoint["optimizer_state"])
        self.lr_scheduler.load_state_dict(checkpoint["lr_scheduler_state"])
        if self.grad_scaler is not None and checkpoint["grad_scaler_state"] is not None:
            self.grad_scaler.load_state_dict(checkpoint["grad_scaler_state"])
        self.my_init_kwargs = checkpoint["init_args"]
        self.current_epoch = checkpoint["current_epoch"]
        self.logger.load_checkpoint(checkpoint["logging"])
        self._best_ema = checkpoint["_best_ema"]
        self.inference_allowed_mirroring_axes = checkpoint["inference_allowed_mirroring_axes"]
        states = checkpoint.get("rng_states") or []
        world = dist.get_world_size() if self.is_ddp else 1
        if len(states) == world:
            self._restored_rng = states[self.local_rank]
        else:
            self.print_to_log_file(f"checkpoint holds random states of {len(states)} ranks, this run has {world}: "
                                   "random streams restart from the seed")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class nnUNetTrainerBrainMVPPretrain_release(nnUNetTrainerBrainMVPPretrain):
    """The release code's settings: loss weights 10/1/1, mask ratio 0.8, flattened bottleneck, tau 1, linear head."""

    pretrain_config = PretrainConfig.release_code()


class nnUNetTrainerBrainMVPPretrain_linearHead(nnUNetTrainerBrainMVPPretrain):
    """The paper's settings with the published reconstruction head (linear, from the bottleneck alone)."""

    pretrain_config = dataclasses.replace(PretrainConfig.paper(), reconstruction_head="linear")


class nnUNetTrainerBrainMVPPretrain_100epochs(nnUNetTrainerBrainMVPPretrain):
    """100 epochs of 250 iterations."""

    epochs = 100
    png_every = 10
    checkpoint_every = 10


class nnUNetTrainerBrainMVPPretrain_300epochs(nnUNetTrainerBrainMVPPretrain):
    """300 epochs of 250 iterations."""

    epochs = 300
    png_every = 25
    checkpoint_every = 25


class nnUNetTrainerBrainMVPPretrain_Tiny(nnUNetTrainerBrainMVPPretrain):
    """For tests and CPU demos: 2 epochs of 4 iterations, 1 validation step, checkpoint and picture every epoch.

    A higher rate suits the tiny networks of the ``*_Tiny32`` planners.
    """

    epochs = 2
    iterations_per_epoch = 4
    val_iterations_per_epoch = 1
    initial_lr_value = 5e-3
    png_every = 1
    checkpoint_every = 1


class nnUNetTrainerBrainMVPPretrain_Demo(nnUNetTrainerBrainMVPPretrain_Tiny):
    """The `make demo` pre-training: 12 epochs of 25 iterations with the tiny networks (a minute on 2 cores)."""

    epochs = 12
    iterations_per_epoch = 25
    val_iterations_per_epoch = 2
    png_every = 4
    checkpoint_every = 4
