"""Pre-training through nnU-Net's own training entry, on one process or under ``torchrun``.

nnU-Net 2.8.1 starts its DDP ranks itself (``mp.spawn``, NCCL, one node). Under ``torchrun`` the ranks
already exist: the process group is initialised from torchrun's environment (``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT``, ``LOCAL_RANK``) before nnU-Net builds the trainer, which then sees a
process group and wraps its network in DDP (NCCL on CUDA, gloo on CPU). That also spans several nodes.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist

from brainmvp_nnunet.errors import PretrainingError
from brainmvp_nnunet.nnunet_env import activate_ext_trainers, require_nnunet_paths
from brainmvp_nnunet.planners.brainmvp_planners import CONFIGURATION
from brainmvp_nnunet.planners.variants import results_folder
from brainmvp_nnunet.transfer.artefact import ARTEFACT_NAME

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def init_distributed_from_env(device: str) -> bool:
    """Initialise the process group from torchrun's environment when ``WORLD_SIZE`` > 1; returns whether
    this function initialised one (the caller then destroys it).

    Raises:
        PretrainingError: when ``WORLD_SIZE`` > 1 but another torchrun variable is missing.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return False
    missing = [name for name in TORCHRUN_VARIABLES if not os.environ.get(name)]
    if missing:
        raise PretrainingError(f"WORLD_SIZE is {os.environ['WORLD_SIZE']} but {', '.join(missing)} are not set: "
                               "start distributed pre-training with torchrun")
    if device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if device == "cuda" else "gloo", init_method="env://")
    return True


def run_pretraining(dataset: int, plans: str = "BrainMVPPlans", trainer: str = "nnUNetTrainerBrainMVPPretrain",
                    device: str = "cpu", continue_training: bool = False) -> Path:
    """Pre-train fold ``all`` of ``dataset`` with nnU-Net's ``run_training``; returns the artefact's path.

    With torchrun's environment every rank calls this; rank 0 writes the checkpoints and the artefact.
    """
    from nnunetv2.run.run_training import run_training

    require_nnunet_paths()
    activate_ext_trainers()
    owns_group = init_distributed_from_env(device)
    try:
        run_training(str(dataset), CONFIGURATION, "all", trainer_class_name=trainer, plans_identifier=plans,
                     continue_training=continue_training, device=torch.device(device))
    finally:
        if owns_group:
            dist.destroy_process_group()
    return results_folder(dataset, trainer, plans, CONFIGURATION) / "fold_all" / ARTEFACT_NAME
