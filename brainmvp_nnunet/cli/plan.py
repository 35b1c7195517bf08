"""``brainmvp plan``, ``install-plugins``, ``uninstall-plugins`` and ``doctor``."""

from __future__ import annotations

import argparse
import importlib


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the planning and nnU-Net integration sub-commands."""
    plan = subparsers.add_parser(
        "plan", help="fingerprint, plan and preprocess a dataset with a BrainMVP planner",
        description="Extract the dataset fingerprint (bounded sampling plus modality availability and per-modality "
                    "statistics), plan 3d_fullres with a planner that fixes spacing, patch and network so that "
                    "pre-trained weights fit every dataset, and preprocess. Prints the plans identifier to pass "
                    "to nnUNetv2_train -p.")
    plan.add_argument("-d", "--dataset", type=int, required=True, help="dataset id in nnUNet_raw")
    plan.add_argument("--planner", default="BrainMVPPlanner",
                      help="BrainMVPPlanner (UniFormer-S, 96^3), BrainMVPPlanner_128, BrainMVPResEncPlanner, "
                           "*_Tiny32 test variants, or a stock nnU-Net planner (default: %(default)s)")
    plan.add_argument("--gpu-memory", type=float, default=None,
                      help="GPU memory target in GB for the batch size (nnU-Net default: 8)")
    plan.add_argument("-np", "--num-processes", type=int, default=2, help="worker processes (default: %(default)s)")
    plan.add_argument("--no-verify", action="store_true", help="skip nnU-Net's dataset integrity check")
    plan.add_argument("--no-preprocess", action="store_true", help="write the plans only")
    plan.set_defaults(func=run_plan)

    install = subparsers.add_parser(
        "install-plugins", help="let stock nnUNetv2_plan_and_preprocess -pl / nnUNetv2_train -tr find our classes",
        description="Write guarded re-export shims (a zz_brainmvp_nnunet sub-package) into the installed nnunetv2 "
                    "so that stock `nnUNetv2_plan_and_preprocess -pl BrainMVPPlanner` and `nnUNetv2_train -tr "
                    "nnUNetTrainerBrainMVP...` work without environment variables. Idempotent.")
    install.set_defaults(func=run_install)
    uninstall = subparsers.add_parser(
        "uninstall-plugins", help="remove the shims written by install-plugins",
        description="Remove the zz_brainmvp_nnunet shims from the installed nnunetv2, leaving it as it was.")
    uninstall.set_defaults(func=run_uninstall)
    doctor = subparsers.add_parser(
        "doctor", help="print what nnU-Net will find and what is missing",
        description="Check nnU-Net's environment variables, the trainer search path, the plugin shims and whether "
                    "stock nnU-Net lookups find every BrainMVP planner and trainer. Exit code 1 if anything is "
                    "missing.")
    doctor.set_defaults(func=run_doctor)


def run_plan(args: argparse.Namespace) -> int:
    """Plan and preprocess, then print the plans identifier."""
    from brainmvp_nnunet.nnunet_env import require_nnunet_paths

    require_nnunet_paths()
    # nnU-Net's planner module imports nnunetv2.paths; the planners package is only loaded when needed.
    api = importlib.import_module("brainmvp_nnunet.planners.api")
    plans = api.plan_and_preprocess(args.dataset, args.planner, num_processes=args.num_processes,
                                    gpu_memory_target_in_gb=args.gpu_memory, verify_integrity=not args.no_verify,
                                    preprocess=not args.no_preprocess)
    print(f"plans: {plans} (train with: nnUNetv2_train {args.dataset} 3d_fullres FOLD -p {plans} -tr TRAINER)")
    return 0


def run_install(args: argparse.Namespace) -> int:
    """Install the shims and list what was written."""
    from brainmvp_nnunet.plugins import install_plugins

    return _report_plugin_change(install_plugins(), "wrote", "installed", "already installed")


def run_uninstall(args: argparse.Namespace) -> int:
    """Remove the shims and list what was removed."""
    from brainmvp_nnunet.plugins import uninstall_plugins

    return _report_plugin_change(uninstall_plugins(), "removed", "removed", "were not installed")


def _report_plugin_change(paths: list, verb: str, changed: str, unchanged: str) -> int:
    from brainmvp_nnunet.plugins import nnunet_package_dir

    for path in paths:
        print(f"{verb} {path}")
    print(f"plugins {changed if paths else unchanged} in {nnunet_package_dir()}")
    return 0


def run_doctor(args: argparse.Namespace) -> int:
    """Print the checks; exit 1 when one fails."""
    from brainmvp_nnunet.plugins import doctor

    checks = doctor()
    for check in checks:
        print(check)
    return 0 if all(c.ok for c in checks) else 1
