"""``brainmvp synth``: synthetic multi-parametric brain MRI in a public release's layout."""

from __future__ import annotations

import argparse
from pathlib import Path

from brainmvp_nnunet.data.releases import LAYOUTS, MANIFEST_NAME, PREVIEW_NAME, write_synthetic_release


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``synth`` sub-command."""
    layouts = "\n".join(f"  {name:<14} {layout.description}" for name, layout in LAYOUTS.items())
    parser = subparsers.add_parser(
        "synth", help="generate synthetic brain MRI (real MNI anatomy, tissue physics, tumours)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Generate synthetic multi-parametric brain MRI from the MNI ICBM152 anatomy and BrainWeb "
                    "tissue relaxation values, written in the file layout of a public release.\n\n"
                    f"layouts:\n{layouts}")
    parser.add_argument("output", type=Path, help="new folder to create (must not exist or be empty)")
    parser.add_argument("--layout", default="brats2023-gli", help="release layout (default: %(default)s)")
    parser.add_argument("-n", "--num-cases", type=int, default=10, help="number of subjects (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default: %(default)s)")
    parser.add_argument("--start-index", type=int, default=0,
                        help="number of the first case id, to make disjoint sets (default: %(default)s)")
    parser.add_argument("--spacing", type=float, default=1.0,
                        help="voxel size in mm; 2 or 3 makes small, fast data (default: %(default)s)")
    parser.add_argument("--missing-rate", type=float, default=0.0,
                        help="probability that each modality of a subject is absent (default: %(default)s)")
    parser.add_argument("--preview", action="store_true", help=f"also write {PREVIEW_NAME}, a montage of case 1")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate the release and print where it is."""
    out = write_synthetic_release(args.output, args.layout, args.num_cases, seed=args.seed,
                                  start_index=args.start_index, spacing=args.spacing,
                                  missing_rate=args.missing_rate, preview=args.preview, progress=not args.quiet)
    print(f"wrote {args.num_cases} {args.layout} case(s) to {out} (manifest: {out / MANIFEST_NAME})")
    if args.preview:
        print(f"preview: {out / PREVIEW_NAME}")
    return 0
