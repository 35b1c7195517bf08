"""Converters from public releases and plain folders to nnU-Net raw format (``brainmvp_nnunet.dataset_conversion``).

One module per source discovers the cases of its release; :mod:`.core` validates, writes and describes
them identically for all sources. Entry point: :func:`convert` (``brainmvp convert`` on the command line).
"""

from __future__ import annotations

import os
from pathlib import Path

from brainmvp_nnunet.errors import ConversionError, NnUNetEnvError
from brainmvp_nnunet.nnunet_env import setup_instructions

from .brainmvp16k import BRAINMVP16K
from .brats import BRATS2021, BRATS2023
from .core import Source, dataset_folder, run_conversion
from .generic import GENERIC
from .isles22 import ISLES22
from .ixi import IXI
from .mrbrains13 import MRBRAINS13
from .ucsf_pdgm import UCSF_PDGM
from .upenn_gbm import UPENN_GBM
from .vsseg import VSSEG

SOURCES: dict[str, Source] = {
    source.name: source
    for source in (BRATS2021, *BRATS2023.values(), UPENN_GBM, ISLES22, MRBRAINS13, VSSEG, IXI, UCSF_PDGM,
                   BRAINMVP16K, GENERIC)
}

__all__ = ["SOURCES", "Source", "convert"]


def convert(source: str, input_dir: Path, dataset_id: int, name: str | None = None, num_workers: int = 1,
            skip_bad_cases: bool = False, output_root: Path | None = None) -> Path:
    """Convert the release ``input_dir`` of ``source`` into a new nnU-Net raw dataset; return its folder.

    The folder is ``<nnUNet_raw>/DatasetXXX_<name>`` (``output_root`` replaces ``nnUNet_raw``); ``name``
    defaults to the source's name. Cases are checked and written by ``num_workers`` processes; with
    ``skip_bad_cases`` bad cases are left out and listed in ``conversion_report.json``, otherwise the
    first one raises :class:`ConversionError` and nothing is written.
    """
    if source not in SOURCES:
        raise ConversionError(f"unknown source {source!r}; known sources: {', '.join(SOURCES)}")
    if num_workers < 1:
        raise ConversionError(f"number of workers must be at least 1, got {num_workers}")
    converter = SOURCES[source]
    if output_root is None:
        if not os.environ.get("nnUNet_raw"):
            raise NnUNetEnvError(setup_instructions(["nnUNet_raw"]))
        output_root = Path(os.environ["nnUNet_raw"])
    output = dataset_folder(Path(output_root), dataset_id, name or converter.default_name)
    return run_conversion(converter, Path(input_dir), output, num_workers=num_workers, skip_bad_cases=skip_bad_cases)
