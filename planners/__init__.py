"""nnU-Net experiment planners of brainmvp-nnunet (installed as ``brainmvp_nnunet.planners``).

``PLANNERS`` names every planner ``brainmvp plan --planner`` accepts: ours, which fix the
architecture so pre-trained weights fit every dataset, and nnU-Net's stock ones for baselines.
"""

from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
from nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners import (
    nnUNetPlannerResEncL,
    nnUNetPlannerResEncM,
)

from brainmvp_nnunet.planners.brainmvp_planners import (
    BrainMVPPlanner,
    BrainMVPPlanner_128,
    BrainMVPPlanner_Tiny32,
    BrainMVPResEncPlanner,
    BrainMVPResEncPlanner_Tiny32,
)
from brainmvp_nnunet.planners.fingerprint import BrainMVPFingerprintExtractor

OUR_PLANNERS = (BrainMVPPlanner, BrainMVPPlanner_128, BrainMVPPlanner_Tiny32, BrainMVPResEncPlanner,
                BrainMVPResEncPlanner_Tiny32)
PLANNERS = {cls.__name__: cls for cls in (*OUR_PLANNERS, ExperimentPlanner, nnUNetPlannerResEncM,
                                          nnUNetPlannerResEncL)}

# What the plugin shim re-exports into nnunetv2 (the abstract FixedTopologyPlanner is not a -pl choice).
__all__ = ["PLANNERS", "OUR_PLANNERS", "BrainMVPFingerprintExtractor", *(cls.__name__ for cls in OUR_PLANNERS)]
