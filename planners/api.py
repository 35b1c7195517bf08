"""Fingerprint, plan and preprocess a dataset with our planners, through nnU-Net's API.

Stock ``-pl NAME`` only finds planners inside the installed nnunetv2 (unless ``brainmvp
install-plugins`` was run), so this passes the class objects directly.
"""

from __future__ import annotations

from nnunetv2.experiment_planning.plan_and_preprocess_api import (
    extract_fingerprint_dataset,
    plan_experiment_dataset,
    preprocess_dataset,
)
from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

from brainmvp_nnunet.errors import PlanningError
from brainmvp_nnunet.planners import PLANNERS
from brainmvp_nnunet.planners.brainmvp_planners import CONFIGURATION
from brainmvp_nnunet.planners.fingerprint import BrainMVPFingerprintExtractor


def plan_and_preprocess(dataset_id: int, planner: str = "BrainMVPPlanner", num_processes: int = 2,
                        gpu_memory_target_in_gb: float | None = None, verify_integrity: bool = True,
                        preprocess: bool = True) -> str:
    """Fingerprint (bounded sampling), plan with ``planner`` and preprocess ``3d_fullres``.

    Returns the plans identifier (``-p`` of ``nnUNetv2_train``). The stock nnU-Net planners are
    accepted too (``ExperimentPlanner``, ``nnUNetPlannerResEncM``, ...), e.g. for a baseline.
    """
    if planner not in PLANNERS:
        raise PlanningError(f"unknown planner {planner!r}; known planners: {', '.join(PLANNERS)}")
    try:
        dataset_name = maybe_convert_to_dataset_name(dataset_id)
    except RuntimeError as exc:
        raise PlanningError(f"dataset {dataset_id}: {exc}") from exc
    print(f"[plan] fingerprint of {dataset_name}", flush=True)
    extract_fingerprint_dataset(dataset_id, BrainMVPFingerprintExtractor, num_processes=num_processes,
                                check_dataset_integrity=verify_integrity, clean=True, verbose=False)
    print(f"[plan] planning with {planner}", flush=True)
    _, plans_identifier = plan_experiment_dataset(dataset_id, PLANNERS[planner],
                                                  gpu_memory_target_in_gb=gpu_memory_target_in_gb)
    if preprocess:
        print(f"[plan] preprocessing {CONFIGURATION} ({plans_identifier})", flush=True)
        preprocess_dataset(dataset_id, plans_identifier, configurations=(CONFIGURATION,),
                           num_processes=(num_processes,), show_progress_bar=False)
    return plans_identifier
