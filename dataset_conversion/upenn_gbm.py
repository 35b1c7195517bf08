"""UPENN-GBM (TCIA), NIfTI release.

Release naming followed:
``NIfTI-files/images_structural/UPENN-GBM-00001_11/UPENN-GBM-00001_11_{T1,T1GD,T2,FLAIR}.nii.gz`` and the
expert segmentations ``NIfTI-files/images_segm/UPENN-GBM-00001_11_segm.nii.gz`` (labels 1 NCR, 2 ED, 4 ET,
remapped to the BraTS 2021 region convention). The suffix ``_11`` / ``_21`` is the scan (pre-operative /
follow-up) of patient ``UPENN-GBM-00001``, so ``splits_final.json`` keeps a patient's scans in one fold.

Only scans with an expert segmentation are converted (the automated ``automated_segm`` labels are not
ground truth); the DSC / DTI folders are ignored.
"""

from __future__ import annotations

import re
from pathlib import Path

from .core import (
    BRATS2021_LABELS,
    CaseSpec,
    Source,
    attach_labels,
    group_cases,
    match_files,
    require_cases,
)

_IMAGE = re.compile(r"(?P<case>UPENN-GBM-\d{5}_\d{2})_(?P<token>T1|T1GD|T2|FLAIR)\.nii\.gz")
_SEGM = re.compile(r"(?P<case>UPENN-GBM-\d{5}_\d{2})_segm\.nii\.gz")
_SLOTS = {"T1": "t1", "T1GD": "t1c", "T2": "t2", "FLAIR": "flair"}


def _patient(case: str) -> str:
    return case.rsplit("_", 1)[0]


def discover(root: Path) -> list[CaseSpec]:
    """Scans with an expert segmentation under ``root``."""
    labels = {match["case"]: path for match, path in match_files(root, _SEGM)}
    scans = group_cases(root, _IMAGE, _SLOTS, patient=_patient)
    found = [spec for spec in attach_labels(scans, labels) if spec.label is not None]
    return require_cases(found, root, "images_structural/UPENN-GBM-NNNNN_NN/..._T1.nii.gz with "
                                      "images_segm/UPENN-GBM-NNNNN_NN_segm.nii.gz")


UPENN_GBM = Source("upenn-gbm", "UPENN-GBM", "the UPENN-GBM NIfTI release (expert labels 1 NCR, 2 ED, 4 ET)",
                   discover, BRATS2021_LABELS)
