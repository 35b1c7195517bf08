"""``brainmvp bench``: time and memory of our code next to a baseline (``network``; more to come)."""

from __future__ import annotations

import argparse

from brainmvp_nnunet.bench.network import benchmark_networks, format_report
from brainmvp_nnunet.errors import NetworkConfigError
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
    network.add_argument("--repeats", type=int, default=3, help="timed steps per network (default: %(default)s)")
    network.add_argument("--warmup", type=int, default=1, help="untimed steps first (default: %(default)s)")
    network.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: %(default)s)")
    network.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    network.add_argument("--widths", type=int, nargs=4, default=list(UNIFORMER_S_WIDTHS), metavar="C",
                         help="UniFormer stage widths, for quick runs (default: UniFormer-S %(default)s)")
    network.add_argument("--depths", type=int, nargs=4, default=list(UNIFORMER_S_DEPTHS), metavar="D",
                         help="UniFormer blocks per stage (default: %(default)s)")
    network.add_argument("--head-dim", type=int, default=64, help="attention head width (default: %(default)s)")
    network.set_defaults(func=run_network)


def _resolve_device(name: str) -> str:
    """``auto`` -> cuda when available, else cpu."""
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


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
