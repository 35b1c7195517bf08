"""BraTS 2021 and BraTS 2023 (GLI, PED, MET, SSA, MEN) training releases.

Release naming followed (Synapse downloads, any parent folders):

* BraTS 2023: ``BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t1n,t1c,t2w,t2f,seg}.nii.gz`` (likewise PED, MET,
  SSA, MEN), labels 1 NCR, 2 ED (SNFH), 3 ET;
* BraTS 2021: ``BraTS2021_00000/BraTS2021_00000_{t1,t1ce,t2,flair,seg}.nii.gz``, labels 1 NCR, 2 ED, 4 ET.

Both are remapped to the 2021 region convention (ED 1, NCR 2, ET 3; regions WT, TC, ET). A release
without any ``seg`` file (a validation set) becomes a pre-training dataset with the brain mask as label.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

from .core import (
    BRATS2021_LABELS,
    BRATS2023_LABELS,
    CaseSpec,
    Source,
    group_cases,
    require_cases,
)

_SLOTS_2023 = {"t1n": "t1", "t1c": "t1c", "t2w": "t2", "t2f": "flair"}
_SLOTS_2021 = {"t1": "t1", "t1ce": "t1c", "t2": "t2", "flair": "flair"}


def discover_brats2023(challenge: str, root: Path) -> list[CaseSpec]:
    """Cases of a BraTS 2023 ``challenge`` (GLI, PED, MET, SSA, MEN) release under ``root``."""
    pattern = re.compile(rf"(?P<case>BraTS-{challenge}-\d{{5}}-\d{{3}})-(?P<token>t1n|t1c|t2w|t2f|seg)\.nii\.gz")
    found = group_cases(root, pattern, _SLOTS_2023, label_token="seg")
    return require_cases(found, root, f"BraTS-{challenge}-NNNNN-NNN/BraTS-{challenge}-NNNNN-NNN-t1n.nii.gz etc.")


def discover_brats2021(root: Path) -> list[CaseSpec]:
    """Cases of the BraTS 2021 release under ``root``."""
    pattern = re.compile(r"(?P<case>BraTS2021_\d{5})_(?P<token>t1|t1ce|t2|flair|seg)\.nii\.gz")
    found = group_cases(root, pattern, _SLOTS_2021, label_token="seg")
    return require_cases(found, root, "BraTS2021_NNNNN/BraTS2021_NNNNN_t1.nii.gz etc.")


BRATS2021 = Source("brats2021", "BraTS2021", "the BraTS 2021 training release (labels 1 NCR, 2 ED, 4 ET)",
                   discover_brats2021, BRATS2021_LABELS)

BRATS2023 = {
    f"brats2023-{c.lower()}": Source(f"brats2023-{c.lower()}", f"BraTS2023-{c}",
                                     f"the BraTS 2023 {c} training release (labels 1 NCR, 2 ED, 3 ET)",
                                     partial(discover_brats2023, c), BRATS2023_LABELS)
    for c in ("GLI", "PED", "MET", "SSA", "MEN")
}
