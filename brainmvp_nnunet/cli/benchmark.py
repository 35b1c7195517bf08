"""``brainmvp benchmark``: arms x label budgets x folds from a TOML file, then the report."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``benchmark`` sub-command."""
    parser = subparsers.add_parser(
        "benchmark", help="label-efficiency benchmark: arms x budgets x folds, then the report",
        description="Train every (arm, label budget, fold) of CONFIG (a TOML file; see brainmvp_nnunet/benchmark/"
                    "config.py for every key) that is not finished yet, then compute Dice, HD95 and NSD per case "
                    "and region and write per_case.csv, report.md and plots/ into the configured output folder. "
                    "Re-running skips finished runs (checkpoint_final.pth and validation summary present).")
    parser.add_argument("config", type=Path, help="benchmark TOML file")
    parser.add_argument("--gpus", nargs="+", default=[], metavar="ID",
                        help="GPU indices: one worker process per GPU pulls runs from a queue (default: in this "
                             "process, on the configured device)")
    parser.add_argument("--device", choices=("cpu", "cuda", "mps"), default=None,
                        help="overrides the configuration's device (without --gpus)")
    parser.add_argument("--dry-run", action="store_true", help="prepare the plans and list the runs; train nothing")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load the configuration, run, print where the report is."""
    from brainmvp_nnunet.benchmark.config import load_config
    from brainmvp_nnunet.workflows.benchmark import run_benchmark

    files = run_benchmark(load_config(args.config), gpus=args.gpus, device=args.device, dry_run=args.dry_run)
    if files is not None:
        print(f"table: {files.markdown}\nper-case CSV: {files.csv}\nplots: {files.csv.parent / 'plots'}")
    return 0
