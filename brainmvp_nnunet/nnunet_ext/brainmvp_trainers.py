"""Re-exports only: nnU-Net scans this folder (``nnUNet_extTrainer``) and drops the modules it
imported afterwards, so the classes must live in the installed package to stay picklable."""

from brainmvp_nnunet.trainers import nnUNetTrainerBrainMVPDemo, nnUNetTrainerBrainMVPTiny  # noqa: F401
