"""MRBrainS13 training data (MICCAI 2013 grand challenge, NIfTI download).

Release naming followed: ``TrainingData/1/{T1,T1_IR,T2_FLAIR,LabelsForTesting}.nii`` (folders 1-5; ``.nii``
or ``.nii.gz``). ``T1_1mm`` is on another grid and ignored; ``LabelsForTesting`` holds the three evaluated
tissues (1 CSF, 2 GM, 3 WM), ``LabelsForTraining`` (8 structures) is not used.

Slots: T1 -> t1, T2_FLAIR -> flair, and T1-IR -> t1c, as the BrainMVP paper reports the dataset
("T1, T1CE, FLAIR"), so that T1 and T1-IR stay separate channels.
"""

from __future__ import annotations

from pathlib import Path

from .core import CaseSpec, LabelScheme, Source, ordered, require_cases, strip_nifti

_SLOTS = {"T1": "t1", "T1_IR": "t1c", "T2_FLAIR": "flair"}
_LABEL = "LabelsForTesting"
LABELS = LabelScheme({"background": 0, "CSF": 1, "GM": 2, "WM": 3}, remap={0: 0, 1: 1, 2: 2, 3: 3})


def discover(root: Path) -> list[CaseSpec]:
    """Every folder under ``root`` holding a ``T2_FLAIR`` image is one subject."""
    found = []
    for flair in sorted([*root.rglob("T2_FLAIR.nii"), *root.rglob("T2_FLAIR.nii.gz")]):
        files = {strip_nifti(p.name): p for p in sorted(flair.parent.iterdir()) if p.is_file()}
        images = {slot: files[name] for name, slot in _SLOTS.items() if name in files}
        found.append(CaseSpec(f"MRBrainS13_{flair.parent.name}", ordered(images), files.get(_LABEL)))
    return require_cases(found, root, "<subject>/T1.nii, T1_IR.nii, T2_FLAIR.nii, LabelsForTesting.nii")


MRBRAINS13 = Source("mrbrains13", "MRBrainS13", "the MRBrainS13 training data (labels 1 CSF, 2 GM, 3 WM)",
                    discover, LABELS)
