"""``brainmvp pretrain``: BrainMVP pre-training of a planned dataset (fold ``all``)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``pretrain`` sub-command."""
    parser = subparsers.add_parser(
        "pretrain", help="BrainMVP pre-training of a planned dataset (writes brainmvp_pretrained.pt)",
        description="Pre-train the encoder of the plans' network with BrainMVP's proxy tasks (template and "
                    "cross-modal reconstruction, contrastive) through nnU-Net's training entry, fold 'all'. The same "
                    "run as the stock `nnUNetv2_train ID 3d_fullres all -tr TRAINER -p PLANS`. Under torchrun "
                    "(RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK set) every rank runs this command and "
                    "the process group is initialised from that environment (NCCL on CUDA, gloo on CPU).")
    parser.add_argument("-d", "--dataset", type=int, required=True, help="dataset id (converted and planned)")
    parser.add_argument("-p", "--plans", "--planner-plans", dest="plans", default="BrainMVPPlans",
                        help="plans: BrainMVPPlans (UniFormer) or BrainMVPResEncPlans (default: %(default)s)")
    parser.add_argument("-tr", "--trainer", default="nnUNetTrainerBrainMVPPretrain",
                        help="pre-training trainer, e.g. nnUNetTrainerBrainMVPPretrain_release, _linearHead (the "
                             "published reconstruction head), _100epochs, _Tiny (default: %(default)s)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="(default: %(default)s)")
    parser.add_argument("--continue", dest="continue_training", action="store_true",
                        help="resume from the latest checkpoint (network, templates, optimiser, schedule, epoch)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the pre-training and print where the artefact is."""
    from brainmvp_nnunet.workflows.pretrain import run_pretraining

    artefact = run_pretraining(args.dataset, args.plans, args.trainer, args.device, args.continue_training)
    print(f"pre-trained artefact: {artefact}")
    return 0
