"""Re-exports only: nnU-Net scans this folder (``nnUNet_extTrainer``) and drops the modules it
imported afterwards, so the classes must live in the installed package to stay picklable.

``brainmvp_nnunet.trainers.__all__`` lists only our trainer classes (never nnU-Net's own bases, which
would otherwise be returned for stock lookups), so the star import re-exports exactly those.
"""

from brainmvp_nnunet.trainers import *  # noqa: F403
