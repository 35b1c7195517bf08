"""ISLES 2022 training release (BIDS, Zenodo 7960856).

Release naming followed::

    sub-strokecase0001/ses-0001/dwi/sub-strokecase0001_ses-0001_dwi.nii.gz
    sub-strokecase0001/ses-0001/dwi/sub-strokecase0001_ses-0001_adc.nii.gz
    sub-strokecase0001/ses-0001/anat/sub-strokecase0001_ses-0001_FLAIR.nii.gz
    derivatives/sub-strokecase0001/ses-0001/sub-strokecase0001_ses-0001_msk.nii.gz

(image folders directly under the root or under ``rawdata/``). Label: 1 = infarct.

FLAIR policy: DWI, ADC and the lesion mask share the DWI grid; FLAIR is acquired on its own grid in
the same scanner space, so it is resampled (trilinear, through the world coordinates of both headers)
onto the DWI grid. No registration is done: the headers are trusted, as the release provides them.
"""

from __future__ import annotations

import re
from pathlib import Path

from .core import (
    CaseSpec,
    LabelScheme,
    Source,
    attach_labels,
    match_files,
    ordered,
    require_cases,
)

_IMAGE = re.compile(r"(?P<case>sub-[A-Za-z0-9]+_ses-[A-Za-z0-9]+)_(?P<token>dwi|adc|FLAIR)\.nii\.gz")
_MASK = re.compile(r"(?P<case>sub-[A-Za-z0-9]+_ses-[A-Za-z0-9]+)_msk\.nii\.gz")
_SLOTS = {"dwi": "dwi", "adc": "adc", "FLAIR": "flair"}
LABELS = LabelScheme({"background": 0, "infarct": 1}, remap={0: 0, 1: 1})


def _patient(case: str) -> str:
    return case.split("_", 1)[0]


def discover(root: Path) -> list[CaseSpec]:
    """Sessions of the ISLES22 release; image files are grouped by folder per (subject, session)."""
    masks = {match["case"]: path for match, path in match_files(root, _MASK)}
    # dwi/ and anat/ are sibling folders: group on the session id alone, then collect both.
    sessions: dict[str, dict[str, Path]] = {}
    for match, path in match_files(root, _IMAGE):
        if "derivatives" not in path.relative_to(root).parts:
            sessions.setdefault(match["case"], {})[_SLOTS[match["token"]]] = path
    found = [CaseSpec(case, ordered(files), patient=_patient(case), grid="dwi")
             for case, files in sorted(sessions.items())]
    return require_cases(attach_labels(found, masks), root,
                         "sub-strokecaseNNNN/ses-NNNN/dwi/sub-strokecaseNNNN_ses-NNNN_dwi.nii.gz etc.")


ISLES22 = Source("isles22", "ISLES22", "the ISLES 2022 BIDS release (DWI, ADC, FLAIR; label 1 infarct)",
                 discover, LABELS)
