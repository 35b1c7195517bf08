"""``brainmvp report``: the benchmark report for existing nnU-Net results folders."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` sub-command."""
    parser = subparsers.add_parser(
        "report", help="benchmark report (CSV, table, plots) for existing nnU-Net results folders",
        description="Each RESULTS folder (nnUNet_results/<Dataset>/<Trainer>__<Plans>__<configuration>, e.g. made "
                    "with stock nnUNetv2_train) is one arm named after the folder; its finished folds "
                    "(fold_k/validation/summary.json or classification_summary.json) are read. Dice comes from "
                    "nnU-Net's summary.json; --recompute-surface (implied by --convention brats) recomputes Dice, "
                    "HD95 and NSD from the validation predictions against gt_segmentations.")
    parser.add_argument("results", nargs="+", type=Path, metavar="RESULTS_FOLDER")
    parser.add_argument("-o", "--output", type=Path, default=Path("brainmvp_report"),
                        help="report folder (default: %(default)s)")
    parser.add_argument("--convention", choices=("nnunet", "brats"), default="nnunet",
                        help="empty-reference convention (default: %(default)s)")
    parser.add_argument("--recompute-surface", action="store_true", help="also compute HD95 and NSD")
    parser.add_argument("--tolerance-mm", type=float, default=1.0, help="NSD tolerance (default: %(default)s)")
    parser.add_argument("--reference", default=None, help="arm (folder name) for p-values (default: the first)")
    parser.add_argument("--gt", type=Path, default=None,
                        help="reference segmentations (default: nnUNet_preprocessed/<Dataset>/gt_segmentations)")
    parser.add_argument("-np", "--num-processes", type=int, default=1, help="metric workers (default: 1)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Collect the rows and write the report."""
    from brainmvp_nnunet.workflows.benchmark import report_results

    files = report_results([p.resolve() for p in args.results], args.output, convention=args.convention,
                           recompute=args.recompute_surface, tolerance_mm=args.tolerance_mm,
                           reference_arm=args.reference, gt_folder=args.gt, num_processes=args.num_processes)
    print(f"table: {files.markdown}\nper-case CSV: {files.csv}\nplots: {files.csv.parent / 'plots'}")
    return 0
