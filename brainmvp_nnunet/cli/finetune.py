"""``brainmvp finetune``: fine-tune nnU-Net folds from a pre-trained encoder (or from scratch)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _fold(value: str) -> int | str:
    return value if value == "all" else int(value)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``finetune`` sub-command."""
    parser = subparsers.add_parser(
        "finetune", help="fine-tune folds with a pre-trained encoder (or the scratch baseline)",
        description="With --pretrained, check that the checkpoint's encoder fits the network of the plans, write a "
                    "plans variant <plans>_<name> that records it (so the run gets its own results folder), then "
                    "train the folds with nnU-Net's training entry. Without --pretrained it trains the scratch "
                    "baseline with identical settings. Accepted checkpoints: brainmvp_pretrained.pt, a pre-training "
                    "trainer checkpoint, the official BrainMVP release, or an nnU-Net checkpoint of the same "
                    "network. Stock `nnUNetv2_train ... -p <variant> -tr nnUNetTrainerBrainMVP` trains the same run.")
    parser.add_argument("-d", "--dataset", type=int, required=True, help="dataset id")
    parser.add_argument("--pretrained", type=Path, default=None, help="checkpoint to start from")
    parser.add_argument("-p", "--plans", default="BrainMVPPlans", help="base plans identifier (default: %(default)s)")
    parser.add_argument("--name", default=None, help="suffix of the plans variant (default: pretrained)")
    parser.add_argument("-tr", "--trainer", default="nnUNetTrainerBrainMVP",
                        help="trainer class, e.g. nnUNetTrainerBrainMVP_300epochs (default: %(default)s)")
    parser.add_argument("-f", "--folds", nargs="+", type=_fold, default=[0], help="folds to train (default: 0)")
    parser.add_argument("--stem", choices=("repeat", "reinit"), default="repeat",
                        help="input-conv adaptation from 1 to C channels (default: %(default)s)")
    parser.add_argument("--budget", type=float, default=None,
                        help="fraction of each training fold to use (nested, seeded label budget)")
    parser.add_argument("--budget-seed", type=int, default=0, help="seed of the label budget (default: %(default)s)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps"), help="(default: %(default)s)")
    parser.add_argument("--continue", dest="continue_training", action="store_true", help="resume the folds")
    parser.add_argument("--plans-only", action="store_true", help="write the plans variant and stop")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Prepare the plans, then train."""
    from brainmvp_nnunet.nnunet_env import require_nnunet_paths
    from brainmvp_nnunet.workflows.finetune import prepare_finetune_plans, run_finetune

    require_nnunet_paths()
    plans = prepare_finetune_plans(args.dataset, args.plans, args.pretrained, args.name, args.stem, args.budget,
                                   args.budget_seed)
    print(f"plans: {plans}")
    if args.plans_only:
        print(f"train with: nnUNetv2_train {args.dataset} 3d_fullres FOLD -tr {args.trainer} -p {plans}")
        return 0
    for folder in run_finetune(args.dataset, plans, args.trainer, args.folds, args.device, args.continue_training):
        print(f"fold output: {folder}")
    return 0
