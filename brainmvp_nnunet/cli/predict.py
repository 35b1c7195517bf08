"""``brainmvp predict`` and ``brainmvp evaluate-subsets``: inference with missing modalities."""

from __future__ import annotations

import argparse
from pathlib import Path

from brainmvp_nnunet.evaluation.metrics import CONVENTIONS

FILL_HELP = ("how missing channels are filled: the modality templates of the checkpoint the model was fine-tuned "
             "from (or --templates; zeros with a warning when there are none), or zeros (default: %(default)s)")


def _fold(value: str) -> int | str:
    return value if value == "all" else int(value)


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that pick a trained model and the fill, shared by both commands."""
    parser.add_argument("-d", "--dataset", required=True, help="dataset id or name the model was trained on")
    parser.add_argument("-p", "--plans", default="BrainMVPPlans", help="plans identifier (default: %(default)s)")
    parser.add_argument("-tr", "--trainer", default="nnUNetTrainerBrainMVP",
                        help="trainer class (default: %(default)s)")
    parser.add_argument("--fill", choices=("templates", "zeros"), default="templates", help=FILL_HELP)
    parser.add_argument("--templates", type=Path, default=None,
                        help="checkpoint with modality templates (brainmvp_pretrained.pt, a pre-training checkpoint "
                             "or the official release) instead of the one recorded in the plans")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps"), help="(default: %(default)s)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` and ``evaluate-subsets`` sub-commands."""
    parser = subparsers.add_parser(
        "predict", help="nnUNetv2_predict that accepts cases with missing modalities",
        description="Predict every case of INPUT (nnU-Net naming, CASE_XXXX<file_ending>, channel numbers as in the "
                    "model's dataset.json) with a trained model. A channel whose file is absent, or whose modality "
                    "is not in --available, is filled with its modality template or zeros; otherwise this is stock "
                    "nnUNetv2_predict (3d_fullres), and the outputs have the input's geometry.")
    parser.add_argument("-i", "--input", type=Path, required=True, help="input folder")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    parser.add_argument("-f", "--folds", nargs="+", type=_fold, default=None,
                        help="folds to ensemble (default: every fold with checkpoint_final.pth)")
    parser.add_argument("--available", default=None,
                        help="comma-separated modalities to use, e.g. t1,flair (aliases allowed; default: all files)")
    _model_arguments(parser)
    parser.set_defaults(func=run_predict)

    parser = subparsers.add_parser(
        "evaluate-subsets", help="Dice of a fold's validation cases under every non-empty subset of modalities",
        description="Predict the validation cases of a fold (splits_final.json) from nnUNet_raw imagesTr with only "
                    "the modalities of each non-empty subset (2^C - 1 runs, 15 for BraTS) and score them against "
                    "nnUNet_preprocessed gt_segmentations: one table (subsets.csv, subsets.md) with the mean Dice per "
                    "region and overall, predictions of each subset in OUTPUT/<subset>/.")
    parser.add_argument("-f", "--fold", type=int, required=True, help="fold whose validation cases are scored")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="output folder (default: <model>/fold_<fold>/subsets)")
    parser.add_argument("--convention", choices=CONVENTIONS, default="nnunet",
                        help="empty-mask convention of the Dice (default: %(default)s)")
    _model_arguments(parser)
    parser.set_defaults(func=run_evaluate_subsets)


def run_predict(args: argparse.Namespace) -> int:
    """Predict the input folder."""
    from brainmvp_nnunet.workflows.predict import predict_folder

    available = None if args.available is None else [n for n in args.available.split(",") if n.strip()]
    records = predict_folder(args.input, args.output, args.dataset, args.plans, args.trainer, args.folds, available,
                             args.fill, args.templates, args.device)
    print(f"{len(records)} cases predicted into {args.output}")
    return 0


def run_evaluate_subsets(args: argparse.Namespace) -> int:
    """Score every modality subset and print where the table is."""
    from brainmvp_nnunet.workflows.subsets import evaluate_subsets

    table = evaluate_subsets(args.dataset, args.fold, args.plans, args.trainer, args.fill, args.templates,
                             args.output, args.convention, args.device)
    print(table.markdown.read_text())
    print(f"table: {table.csv} and {table.markdown}")
    return 0
