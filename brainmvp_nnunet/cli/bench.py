"""``brainmvp bench``: time and memory of our code next to a baseline (``network``, ``pretrain``)."""

from __future__ import annotations

import argparse

from brainmvp_nnunet.bench.network import benchmark_networks, format_report
from brainmvp_nnunet.errors import NetworkConfigError
from brainmvp_nnunet.networks.reconstruction import RECONSTRUCTION_HEADS
from brainmvp_nnunet.networks.uniformer import UNIFORMER_S_DEPTHS, UNIFORMER_S_WIDTHS


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` command and its ``network`` sub-command."""
    parser = subparsers.add_parser("bench", help="benchmark our networks and training steps against baselines",
                                   description="Measure time and peak memory of BrainMVP components next to "
                                               "nnU-Net's defaults. Timings belong here, never in tests.")
    benches = parser.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    network = benches.add_parser(
        "network", help="forward+backward of the UniFormer-S segmentation network vs nnU-Net's PlainConvUNet",
        description="Forward+backward seconds and peak memory of the UniFormer segmentation network and of the "
                    "PlainConvUNet nnU-Net's default planner builds for the same patch (1 mm isotropic), same "
                    "batch, channels and classes, deep supervision on; each in a fresh process. Prints a table "
                    "and the ratio.")
    network.add_argument("--patch", type=int, nargs="+", default=[96], metavar="N",
                         help="patch size: one value (cube) or three (Z Y X), each divisible by 16 "
                              "(default: %(default)s)")
    network.add_argument("--batch", type=int, default=2, help="batch size (default: %(default)s)")
    network.add_argument("--channels", type=int, default=4, help="input channels (default: %(default)s)")
    network.add_argument("--classes", type=int, default=3, help="output channels (default: %(default)s)")
    _add_run_options(network, repeats=3)
    network.set_defaults(func=run_network)

    pretrain = benches.add_parser(
        "pretrain", help="seconds per BrainMVP pre-training step and peak memory vs the published implementation",
        description="One pre-training step (modality choice, masks, template windows, both views, the three losses, "
                    "backward, AdamW including the templates) of the UniFormer encoder, in a fresh process; prints "
                    "seconds per step and peak memory next to the published implementation's figures (UniFormer-S, "
                    "96^3, 8 templates at 1 mm on the canonical 155x240x240 grid).")
    pretrain.add_argument("--patch", type=int, nargs="+", default=[96], metavar="N",
                          help="patch: one value (cube) or three (Z Y X), each divisible by 16 (default: %(default)s)")
    pretrain.add_argument("--batch", type=int, default=2, help="cases per step (default: %(default)s)")
    pretrain.add_argument("--slots", type=int, default=8, help="templates (modality slots) (default: %(default)s)")
    pretrain.add_argument("--template-spacing", type=float, default=1.0,
                          help="template grid spacing in mm; the grid covers 155x240x240 mm (default: %(default)s)")
    pretrain.add_argument("--release", action="store_true",
                          help="the release code's settings (flattened features, linear head)")
    pretrain.add_argument("--head", choices=RECONSTRUCTION_HEADS, default=None,
                          help="reconstruction head (default: the settings' own: skip, or linear with --release; "
                               "the published code's is linear)")
    pretrain.add_argument("--no-recompute", dest="recompute", action="store_false",
                          help="keep every activation for backward (the trainer recomputes the UniFormer's MLPs)")
    _add_run_options(pretrain, repeats=2)
    pretrain.set_defaults(func=run_pretrain)


def _resolve_device(name: str) -> str:
    """``auto`` -> cuda when available, else cpu."""
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _add_run_options(parser: argparse.ArgumentParser, repeats: int) -> None:
    """Options shared by every bench: steps, device, threads and the UniFormer's size."""
    parser.add_argument("--repeats", type=int, default=repeats, help="timed steps (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--widths", type=int, nargs=4, default=list(UNIFORMER_S_WIDTHS), metavar="C",
                        help="UniFormer stage widths, for quick runs (default: UniFormer-S %(default)s)")
    parser.add_argument("--depths", type=int, nargs=4, default=list(UNIFORMER_S_DEPTHS), metavar="D",
                        help="UniFormer blocks per stage (default: %(default)s)")
    parser.add_argument("--head-dim", type=int, default=64, help="attention head width (default: %(default)s)")


def run_network(args: argparse.Namespace) -> int:
    """Run the network benchmark and print its report."""
    if len(args.patch) not in (1, 3):
        raise NetworkConfigError(f"--patch takes one or three sizes, got {args.patch}")
    if min(args.batch, args.channels, args.classes, args.repeats) < 1 or args.warmup < 0:
        raise NetworkConfigError("--batch, --channels, --classes and --repeats must be >= 1, --warmup >= 0")
    patch = args.patch * 3 if len(args.patch) == 1 else args.patch
    measurements = benchmark_networks(patch, args.batch, args.channels, args.classes, args.repeats, args.warmup,
                                      _resolve_device(args.device), args.threads, args.widths, args.depths,
                                      args.head_dim)
    print(format_report(measurements, patch, args.batch, args.channels))
    return 0


def run_pretrain(args: argparse.Namespace) -> int:
    """Run the pre-training step benchmark and print its report."""
    from brainmvp_nnunet.bench.pretrain import format_report as format_pretrain_report
    from brainmvp_nnunet.bench.pretrain import measure_pretrain_step

    if len(args.patch) not in (1, 3):
        raise NetworkConfigError(f"--patch takes one or three sizes, got {args.patch}")
    if min(args.batch, args.slots, args.repeats) < 1 or args.warmup < 0 or args.template_spacing <= 0:
        raise NetworkConfigError("--batch, --slots and --repeats must be >= 1, --warmup >= 0, --template-spacing > 0")
    patch = args.patch * 3 if len(args.patch) == 1 else args.patch
    measurement = measure_pretrain_step(patch, args.batch, args.slots, args.widths, args.depths, args.head_dim,
                                        args.template_spacing, args.release, args.repeats, args.warmup,
                                        _resolve_device(args.device), args.threads, args.head, args.recompute)
    print(format_pretrain_report(measurement, patch, args.batch, args.slots))
    return 0
