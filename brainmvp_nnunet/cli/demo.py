"""``brainmvp demo``: the full pipeline on embedded synthetic data."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` sub-command."""
    parser = subparsers.add_parser(
        "demo", help="run the whole pipeline end to end on synthetic data (CPU, a few minutes)",
        description="Synthesise BraTS-style data, convert it, plan and preprocess, train briefly with the stock "
                    "nnUNetv2_train, predict held-out subjects with the stock nnUNetv2_predict, and print Dice. "
                    "Everything (including nnU-Net's raw/preprocessed/results folders) goes under --output.")
    parser.add_argument("--output", type=Path, default=Path("demo_output"),
                        help="new or empty folder for every output (default: %(default)s)")
    parser.add_argument("--cases", type=int, default=10, help="training subjects (default: %(default)s)")
    parser.add_argument("--spacing", type=float, default=3.0, help="voxel size in mm (default: %(default)s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo."""
    from brainmvp_nnunet.workflows.demo import DemoConfig, run_demo

    run_demo(DemoConfig(output=args.output, train_cases=args.cases, spacing_mm=args.spacing))
    return 0
