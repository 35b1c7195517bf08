"""UCSF-PDGM (TCIA, versions 3-5), used unlabelled for pre-training as in BrainMVP.

Release naming followed: ``UCSF-PDGM-v5/UCSF-PDGM-0004_nifti/UCSF-PDGM-0004_{T1,T1c,T2,FLAIR,DWI,ADC}.nii.gz``;
follow-up exams (since v3) are ``UCSF-PDGM-0433_FU007d_nifti/UCSF-PDGM-0433_FU007d_T1.nii.gz`` and belong to
patient ``UCSF-PDGM-0433``, so ``splits_final.json`` keeps a patient's exams in one fold. Bias-corrected
copies (``_bias``), SWI, ASL, DTI and the segmentations are not used. All volumes share the 240 x 240 x 155
SRI24 grid, so the grids are checked strictly.
"""

from __future__ import annotations

import re
from pathlib import Path

from .core import CaseSpec, Source, group_cases, require_cases

_PATTERN = re.compile(r"(?P<case>UCSF-PDGM-\d{3,4}(?:_FU[0-9A-Za-z]+)?)_(?P<token>T1|T1c|T2|FLAIR|DWI|ADC)\.nii\.gz")
_SLOTS = {"T1": "t1", "T1c": "t1c", "T2": "t2", "FLAIR": "flair", "DWI": "dwi", "ADC": "adc"}


def _patient(case: str) -> str:
    return case.split("_", 1)[0]


def discover(root: Path) -> list[CaseSpec]:
    """Exams under ``root``; the patient is the id without the follow-up suffix."""
    found = group_cases(root, _PATTERN, _SLOTS, patient=_patient)
    return require_cases(found, root, "UCSF-PDGM-NNNN_nifti/UCSF-PDGM-NNNN_T1.nii.gz etc.")


UCSF_PDGM = Source("ucsf-pdgm", "UCSF-PDGM", "the UCSF-PDGM NIfTI release (T1, T1c, T2, FLAIR, DWI, ADC)",
                   discover, None)
