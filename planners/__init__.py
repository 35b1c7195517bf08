"""nnU-Net experiment planners of brainmvp-nnunet (installed as ``brainmvp_nnunet.planners``)."""
