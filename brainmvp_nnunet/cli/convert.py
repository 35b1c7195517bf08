"""``brainmvp convert``: a public release or a plain folder to an nnU-Net raw dataset."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``convert`` sub-command."""
    from brainmvp_nnunet.dataset_conversion import SOURCES

    sources = "\n".join(f"  {name:<14} {source.description}" for name, source in SOURCES.items())
    parser = subparsers.add_parser(
        "convert", help="convert a dataset release to nnU-Net raw format (missing modalities included)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.fill(
            "Convert a public release (in its original file layout) or a folder per case into "
            "$nnUNet_raw/DatasetXXX_NAME. Channels are the union of the modalities found, in the order "
            "flair, t1, t1c, t2, mra, pd, dwi, adc; a missing modality is a zero image and dataset.json records "
            "per case which modalities were present. Every case is checked (readable, finite, one grid for all "
            "its files, allowed label values) and nothing is left behind on failure. Unlabelled sources get "
            "the brain mask as label 1.", width=100) + f"\n\nsources:\n{sources}")
    parser.add_argument("source", choices=list(SOURCES), metavar="SOURCE", help="source release (see below)")
    parser.add_argument("input_dir", type=Path, metavar="INPUT_DIR", help="root folder of the release")
    parser.add_argument("--id", dest="dataset_id", type=int, required=True,
                        help="nnU-Net dataset id (1-999) that must not exist yet")
    parser.add_argument("--name", default=None, help="dataset name after DatasetXXX_ (default: the source's name)")
    parser.add_argument("-j", "--num-workers", type=int, default=1,
                        help="worker processes reading and writing cases (default: %(default)s)")
    parser.add_argument("--skip-bad-cases", action="store_true",
                        help="leave bad cases out instead of failing; they are listed in conversion_report.json")
    parser.add_argument("--output-root", type=Path, default=None,
                        help="write under this folder instead of $nnUNet_raw")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Convert and print where the dataset is."""
    from brainmvp_nnunet.dataset_conversion import convert

    folder = convert(args.source, args.input_dir, args.dataset_id, name=args.name, num_workers=args.num_workers,
                     skip_bad_cases=args.skip_bad_cases, output_root=args.output_root)
    print(f"wrote {folder}")
    return 0
