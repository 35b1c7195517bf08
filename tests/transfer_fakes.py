"""Tiny networks and synthetic checkpoint files in every layout the transfer readers accept.

Nothing is downloaded: the official release layout is rebuilt from its description (spec 6.3, 10.9)
around a tiny UniFormer's state dict.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from dynamic_network_architectures.architectures.unet import ResidualEncoderUNet
from torch import nn

from brainmvp_nnunet.networks import (
    ReconstructionNetwork,
    UniFormerEncoder,
    UniFormerSegNet,
    residual_encoder_from_arch_kwargs,
    uniformer_arch_kwargs,
)
from brainmvp_nnunet.pretraining.templates import ModalityTemplates
from brainmvp_nnunet.transfer import PretrainedArtefact, save_artefact

TINY = {"widths": [8, 16, 40, 64], "depths": [1, 1, 1, 1], "head_dim": 8}
WIDER = {"widths": [16, 32, 80, 128], "depths": [1, 1, 1, 1], "head_dim": 8}
DEEPER = {"widths": [8, 16, 40, 64], "depths": [1, 2, 2, 1], "head_dim": 8}
TEMPLATE_GRID = (6, 5, 4)  # (z, y, x) of the fake templates: distinct sizes catch axis mix-ups
RESENC_KWARGS = {
    "n_stages": 3, "features_per_stage": [4, 8, 16], "conv_op": nn.Conv3d, "kernel_sizes": [[3, 3, 3]] * 3,
    "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]], "n_blocks_per_stage": [1, 1, 1], "conv_bias": True,
    # BatchNorm (not nnU-Net's default InstanceNorm) so that running statistics are transferred too
    "norm_op": nn.BatchNorm3d, "norm_op_kwargs": {"eps": 1e-5, "affine": True}, "dropout_op": None,
    "dropout_op_kwargs": None, "nonlin": nn.LeakyReLU, "nonlin_kwargs": {"inplace": True},
}


def randomise_norms(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random affine parameters and running statistics in every norm layer, then eval mode.

    Fresh norms are identities (weight 1, bias 0, mean 0, var 1); random ones make sure a transfer
    that forgot them would show in the features.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, (nn.BatchNorm3d, nn.LayerNorm, nn.InstanceNorm3d)) and sub.weight is not None:
                sub.weight.copy_(1 + 0.2 * torch.randn(sub.weight.shape, generator=gen))
                sub.bias.copy_(0.2 * torch.randn(sub.bias.shape, generator=gen))
            if isinstance(sub, nn.BatchNorm3d):
                sub.running_mean.copy_(0.1 * torch.randn(sub.running_mean.shape, generator=gen))
                sub.running_var.copy_(0.5 + torch.rand(sub.running_var.shape, generator=gen))
    return module.eval()


def tiny_uniformer(in_channels: int = 1, seed: int = 0, arch: dict | None = None) -> UniFormerEncoder:
    """A tiny UniFormer encoder with random norms, in eval mode."""
    torch.manual_seed(seed)
    return randomise_norms(UniFormerEncoder(in_channels, **(arch or TINY)), seed)


def tiny_segnet(in_channels: int = 4, arch: dict | None = None, seed: int = 1) -> UniFormerSegNet:
    """A tiny UniFormer segmentation network (3 classes) as a fine-tuning target."""
    torch.manual_seed(seed)
    return UniFormerSegNet(in_channels, 3, False, **uniformer_arch_kwargs(**(arch or TINY))).eval()


def tiny_resenc_encoder(in_channels: int = 1, seed: int = 0) -> nn.Module:
    """A tiny pre-trainable residual encoder (keys as ``ResidualEncoderUNet.encoder``), random norms."""
    torch.manual_seed(seed)
    return randomise_norms(residual_encoder_from_arch_kwargs(in_channels, RESENC_KWARGS), seed)


def tiny_resenc_unet(in_channels: int = 4, seed: int = 1) -> ResidualEncoderUNet:
    """A tiny ``ResidualEncoderUNet`` with the encoder of :func:`tiny_resenc_encoder`, as a target."""
    torch.manual_seed(seed)
    return ResidualEncoderUNet(in_channels, num_classes=2, n_conv_per_stage_decoder=[1, 1],
                               deep_supervision=False, **RESENC_KWARGS).eval()


def coordinate_templates_xyz(slots: int = 8, grid_zyx: tuple[int, int, int] = TEMPLATE_GRID) -> torch.Tensor:
    """(slots, X, Y, Z) templates whose value encodes its own index: 1000 s + 100 x + 10 y + z."""
    z, y, x = grid_zyx
    s_i, x_i, y_i, z_i = torch.meshgrid(torch.arange(slots), torch.arange(x), torch.arange(y), torch.arange(z),
                                        indexing="ij")
    return (1000 * s_i + 100 * x_i + 10 * y_i + z_i).float()


def official_checkpoint(encoder_state: dict[str, torch.Tensor], rep_template: torch.Tensor | None = None) -> dict:
    """The official release layout: DDP-prefixed keys, the encoder under ``encoder.uniformer.``."""
    state = {f"module.encoder.uniformer.{k}": v for k, v in encoder_state.items()}
    state["module.decoder.decoder5.transp_conv.conv.weight"] = torch.randn(64, 40, 2, 2, 2)
    state["module.decoder.decoder5.conv_block.conv1.conv.weight"] = torch.randn(40, 80, 3, 3, 3)
    state["module.decoder.out_1.weight"] = torch.randn(1, 8, 1, 1, 1)
    state["module.rep_template"] = coordinate_templates_xyz() if rep_template is None else rep_template
    return {"state_dict": state, "epoch": 1500}


def nnunet_checkpoint(network_state: dict[str, torch.Tensor], **extra) -> dict:
    """An nnU-Net ``save_checkpoint`` dict, numpy scalars in the log and a device in init_args as nnU-Net writes."""
    return {"network_weights": network_state, "optimizer_state": {"state": {}, "param_groups": []},
            "grad_scaler_state": None,
            "logging": {"mean_fg_dice": [np.float64(0.5)], "ema_fg_dice": [np.float64(0.5)],
                        "dice_per_class_or_region": [[np.float64(0.4), np.float64(0.6)]], "train_losses": [0.1]},
            "_best_ema": np.float64(0.5), "current_epoch": 3,
            "init_args": {"plans": {"plans_name": "p"}, "configuration": "3d_fullres", "fold": 0,
                          "dataset_json": {"name": "x"}, "device": torch.device("cpu")},
            "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": (0, 1, 2), **extra}


def pretrain_network(encoder: nn.Module) -> nn.Module:
    """The module a pre-training trainer saves: ``encoder.*``, ``head.*``, ``templates.templates``."""
    net = nn.Module()
    net.encoder = encoder
    net.head = ReconstructionNetwork(encoder).head
    net.templates = ModalityTemplates(shape=TEMPLATE_GRID)
    return net


def write_artefact(path: Path, encoder: nn.Module) -> Path:
    """A ``brainmvp_pretrained.pt`` around ``encoder``."""
    head = ReconstructionNetwork(encoder).head
    artefact = PretrainedArtefact(
        network_class="brainmvp_nnunet.networks.segmentation.UniFormerSegNet",
        arch_kwargs=uniformer_arch_kwargs(**TINY),
        encoder_state_dict=encoder.state_dict(), reconstruction_head_state_dict=head.state_dict(),
        templates=torch.zeros(2, *TEMPLATE_GRID), template_slots=["flair", "t1"], template_spacing=[1.0, 1.0, 1.0],
        normalization=["ZScoreNormalization"], spacing=[1.0, 1.0, 1.0], patch_size=[32, 32, 32])
    return save_artefact(artefact, path)


def save(obj: object, path: Path) -> Path:
    """``torch.save`` returning the path."""
    torch.save(obj, path)
    return path
