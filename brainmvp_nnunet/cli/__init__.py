"""The ``brainmvp`` command.

Each sub-command lives in its own module of this package and exposes ``register(subparsers)``;
the modules only parse arguments and call the library's API (as nnU-Net separates its
``*_entrypoints`` from its API).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from brainmvp_nnunet import __version__
from brainmvp_nnunet.errors import BrainMVPError

# Order is the order shown by `brainmvp --help`.
COMMAND_MODULES = ("synth", "env", "convert", "plan", "finetune", "pretrain", "predict", "benchmark", "report",
                   "demo", "bench")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="brainmvp",
        description="BrainMVP multi-modal pre-training for nnU-Net v2: synthesise, convert, plan, pre-train, "
                    "fine-tune, predict and benchmark.")
    parser.add_argument("--version", action="version", version=f"brainmvp-nnunet {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"brainmvp_nnunet.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``brainmvp`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrainMVPError as exc:
        print(f"brainmvp {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"brainmvp {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
