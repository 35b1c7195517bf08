"""nnU-Net trainer subclasses of brainmvp-nnunet (installed as ``brainmvp_nnunet.trainers``).

Every class in ``__all__`` is re-exported by ``brainmvp_nnunet/nnunet_ext/brainmvp_trainers.py`` so that
the stock ``nnUNetv2_train -tr NAME`` finds it once ``nnUNet_extTrainer`` is set (``brainmvp env``).
"""

from brainmvp_nnunet.trainers.classification import (
    nnUNetTrainerBrainMVPClassifier,
    nnUNetTrainerBrainMVPClassifier_Tiny,
)
from brainmvp_nnunet.trainers.finetune import (
    nnUNetTrainerBrainMVP,
    nnUNetTrainerBrainMVP_100epochs,
    nnUNetTrainerBrainMVP_300epochs,
    nnUNetTrainerBrainMVP_Demo,
    nnUNetTrainerBrainMVP_freeze50,
    nnUNetTrainerBrainMVP_slowEncoder,
    nnUNetTrainerBrainMVP_templateConsistency,
    nnUNetTrainerBrainMVP_templateConsistency_Tiny,
    nnUNetTrainerBrainMVP_templateSub,
    nnUNetTrainerBrainMVP_templateSub_Tiny,
    nnUNetTrainerBrainMVP_Tiny,
)
from brainmvp_nnunet.trainers.pretrain import (
    nnUNetTrainerBrainMVPPretrain,
    nnUNetTrainerBrainMVPPretrain_100epochs,
    nnUNetTrainerBrainMVPPretrain_300epochs,
    nnUNetTrainerBrainMVPPretrain_Demo,
    nnUNetTrainerBrainMVPPretrain_linearHead,
    nnUNetTrainerBrainMVPPretrain_release,
    nnUNetTrainerBrainMVPPretrain_Tiny,
)
from brainmvp_nnunet.trainers.short import nnUNetTrainerBrainMVPDemo, nnUNetTrainerBrainMVPTiny

# One name per line: the re-export list of the stock trainer lookup.
__all__ = [
    "nnUNetTrainerBrainMVPDemo",
    "nnUNetTrainerBrainMVPTiny",
    "nnUNetTrainerBrainMVP",
    "nnUNetTrainerBrainMVP_100epochs",
    "nnUNetTrainerBrainMVP_300epochs",
    "nnUNetTrainerBrainMVP_slowEncoder",
    "nnUNetTrainerBrainMVP_freeze50",
    "nnUNetTrainerBrainMVP_templateSub",
    "nnUNetTrainerBrainMVP_templateConsistency",
    "nnUNetTrainerBrainMVP_Tiny",
    "nnUNetTrainerBrainMVP_templateSub_Tiny",
    "nnUNetTrainerBrainMVP_templateConsistency_Tiny",
    "nnUNetTrainerBrainMVP_Demo",
    "nnUNetTrainerBrainMVPPretrain",
    "nnUNetTrainerBrainMVPPretrain_100epochs",
    "nnUNetTrainerBrainMVPPretrain_300epochs",
    "nnUNetTrainerBrainMVPPretrain_release",
    "nnUNetTrainerBrainMVPPretrain_linearHead",
    "nnUNetTrainerBrainMVPPretrain_Tiny",
    "nnUNetTrainerBrainMVPPretrain_Demo",
    "nnUNetTrainerBrainMVPClassifier",
    "nnUNetTrainerBrainMVPClassifier_Tiny",
]
