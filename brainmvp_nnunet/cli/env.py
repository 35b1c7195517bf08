"""``brainmvp env``: nnU-Net's environment and the line that makes our trainers visible to it."""

from __future__ import annotations

import argparse
import os

from brainmvp_nnunet.nnunet_env import EXT_TRAINER_VARIABLE, PATH_VARIABLES, ext_trainer_value, require_nnunet_paths


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``env`` sub-command."""
    parser = subparsers.add_parser(
        "env", help="print nnU-Net's path variables and the nnUNet_extTrainer export line",
        description="Print nnU-Net's data roots and the `export nnUNet_extTrainer=...` line that lets stock "
                    "nnUNetv2_train / nnUNetv2_predict find the BrainMVP trainers. Fails, saying how to set "
                    "them, when nnUNet_raw, nnUNet_preprocessed or nnUNet_results is unset. "
                    "Use `eval \"$(brainmvp env --export)\"` in a shell.")
    parser.add_argument("--export", action="store_true", help="print only shell export lines")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the environment, or raise NnUNetEnvError with instructions."""
    paths = require_nnunet_paths()
    export = f"export {EXT_TRAINER_VARIABLE}={ext_trainer_value()}"
    if args.export:
        for name in PATH_VARIABLES:
            print(f"export {name}={paths[name]}")
        print(export)
        return 0
    for name in PATH_VARIABLES:
        state = "" if paths[name].is_dir() else "   (folder does not exist yet)"
        print(f"{name}={paths[name]}{state}")
    current = os.environ.get(EXT_TRAINER_VARIABLE)
    print(f"{EXT_TRAINER_VARIABLE}={current or '(unset)'}")
    print("\nFor stock nnUNetv2_* commands to find the BrainMVP trainers, run:")
    print(f"  {export}")
    return 0
