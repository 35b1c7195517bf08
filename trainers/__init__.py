"""nnU-Net trainer subclasses of brainmvp-nnunet (installed as ``brainmvp_nnunet.trainers``).

Every class here is re-exported by ``brainmvp_nnunet/nnunet_ext/brainmvp_trainers.py`` so that the
stock ``nnUNetv2_train -tr NAME`` finds it once ``nnUNet_extTrainer`` is set (``brainmvp env``).
"""

from brainmvp_nnunet.trainers.finetune import (
                                               nnUNetTrainerBrainMVP,
                                               nnUNetTrainerBrainMVP_100epochs,
                                               nnUNetTrainerBrainMVP_300epochs,
                                               nnUNetTrainerBrainMVP_Demo,
                                               nnUNetTrainerBrainMVP_freeze50,
                                               nnUNetTrainerBrainMVP_slowEncoder,
                                               nnUNetTrainerBrainMVP_Tiny,
)
from brainmvp_nnunet.trainers.short import nnUNetTrainerBrainMVPDemo, nnUNetTrainerBrainMVPTiny

__all__ = [
    "nnUNetTrainerBrainMVPDemo", "nnUNetTrainerBrainMVPTiny",
    "nnUNetTrainerBrainMVP", "nnUNetTrainerBrainMVP_100epochs", "nnUNetTrainerBrainMVP_300epochs",
    "nnUNetTrainerBrainMVP_slowEncoder", "nnUNetTrainerBrainMVP_freeze50", "nnUNetTrainerBrainMVP_Tiny",
    "nnUNetTrainerBrainMVP_Demo",
]
