"""Networks: the UniFormer encoder, its nnU-Net segmentation network, the pre-training
reconstruction heads, and nnU-Net's residual encoder as a pre-trainable encoder.

nnU-Net plans name the segmentation network as
``brainmvp_nnunet.networks.segmentation.UniFormerSegNet`` with ``arch_kwargs`` from
:func:`uniformer_arch_kwargs`.
"""

from brainmvp_nnunet.networks.base import PretrainableEncoder, check_divisible
from brainmvp_nnunet.networks.reconstruction import (
    RECONSTRUCTION_HEADS,
    ReconstructionHead,
    ReconstructionNetwork,
    SkipReconstructionHead,
    build_reconstruction_head,
)
from brainmvp_nnunet.networks.resenc import ResidualEncoderAdapter, residual_encoder_from_arch_kwargs
from brainmvp_nnunet.networks.segmentation import SEG_STRIDES, UniFormerSegNet, uniformer_arch_kwargs
from brainmvp_nnunet.networks.uniformer import UNIFORMER_S_PARAMETERS, UniFormerEncoder

__all__ = [
    "RECONSTRUCTION_HEADS",
    "SEG_STRIDES",
    "UNIFORMER_S_PARAMETERS",
    "PretrainableEncoder",
    "ReconstructionHead",
    "ReconstructionNetwork",
    "ResidualEncoderAdapter",
    "SkipReconstructionHead",
    "UniFormerEncoder",
    "UniFormerSegNet",
    "build_reconstruction_head",
    "check_divisible",
    "residual_encoder_from_arch_kwargs",
    "uniformer_arch_kwargs",
]
