"""IXI (brain-development.org), unlabelled pre-training data.

Release naming followed: the tarballs ``IXI-T1.tar``, ``IXI-T2.tar``, ``IXI-PD.tar``, ``IXI-MRA.tar`` unpack to
``IXI002-Guys-0828-T1.nii.gz`` etc.; they may sit in one folder per modality (``IXI-T1/``), all in one
folder, or one folder per subject (``IXI002-Guys-0828/``, the BrainMVP-16k copy). Files are grouped by
subject id. DTI volumes are ignored.

The IXI modalities are on different grids (sagittal T1, axial T2/PD, high-resolution MRA): a subject's
images are resampled (trilinear, through world coordinates) onto the grid of its first available
modality of T1, T2, PD, MRA. Images that already share that grid are copied unchanged.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from .core import CaseSpec, Source, group_cases, require_cases

_PATTERN = re.compile(r"(?P<case>IXI\d{3}-[A-Za-z]+-\d{4})-(?P<token>T1|T2|PD|MRA)\.nii\.gz")
_SLOTS = {"T1": "t1", "T2": "t2", "PD": "pd", "MRA": "mra"}
_GRID_ORDER = ("t1", "t2", "pd", "mra")


def discover(root: Path) -> list[CaseSpec]:
    """IXI subjects under ``root``, each on the grid of its first modality in T1, T2, PD, MRA order."""
    found = group_cases(root, _PATTERN, _SLOTS, by_folder=False)
    found = [replace(spec, grid=next(s for s in _GRID_ORDER if s in spec.images)) for spec in found]
    return require_cases(found, root, "IXI002-Guys-0828-T1.nii.gz (and -T2, -PD, -MRA)")


IXI = Source("ixi", "IXI", "the IXI release (T1, T2, PD, MRA; no labels)", discover, None)
