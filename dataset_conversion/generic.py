"""Generic folders: one folder per case, one file per modality, optional label and class label.

Layout::

    root/<case>/<modality>.nii.gz      e.g. t1.nii.gz, T1GD.nii.gz, case7_flair.nii.gz
    root/<case>/seg.nii.gz             optional label (also label / mask / segmentation)
    root/class_labels.json             optional {"<case>": "<class name>"} for classification

The modality is taken from the file name through the alias table (whole name, else its last token
after ``-``, ``_`` or ``|``). Label values are kept as they are (non-negative integers, consecutive over
the dataset). Without any label file the dataset is a pre-training one (brain mask as label).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from brainmvp_nnunet.errors import ConversionError, UnknownModalityError

from .core import (
    CaseSpec,
    LabelScheme,
    Source,
    modality_token,
    ordered,
    require_cases,
    slot_from_name,
    strip_nifti,
)

CLASS_LABELS_NAME = "class_labels.json"
LABEL_NAMES = ("seg", "label", "labels", "mask", "segmentation")
LABELS = LabelScheme({"background": 0}, remap=None)


def _is_label(file_name: str) -> bool:
    return strip_nifti(file_name).lower() in LABEL_NAMES or modality_token(file_name).lower() in LABEL_NAMES


def _class_labels(root: Path, cases: set[str]) -> dict[str, str]:
    path = root / CLASS_LABELS_NAME
    if not path.is_file():
        return {}
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConversionError(f"cannot read the class labels ({exc})", file=str(path)) from exc
    if not isinstance(content, dict) or not all(isinstance(v, str | int) for v in content.values()):
        raise ConversionError('expected an object {"<case>": "<class name>"}', file=str(path))
    unknown = sorted(set(content) - cases)
    if unknown:
        raise ConversionError(f"class labels for cases that have no folder: {unknown[:5]}", file=str(path))
    return {case: str(value) for case, value in content.items()}


def _case(folder: Path, class_label: str | None) -> CaseSpec:
    case = folder.name
    images: dict[str, Path] = {}
    label = None
    for path in sorted(p for p in folder.iterdir() if p.is_file() and re.search(r"\.nii(\.gz)?$", p.name)):
        if _is_label(path.name):
            label = path
            continue
        try:
            slot = slot_from_name(path.name)
        except UnknownModalityError as exc:
            return CaseSpec(case, {}, problem=ConversionError(str(exc), case=case, file=str(path)))
        if slot in images:
            return CaseSpec(case, {}, problem=ConversionError(f"a second {slot} image (first: {images[slot]})",
                                                              case=case, file=str(path)))
        images[slot] = path
    return CaseSpec(case, ordered(images), label, class_label=class_label)


def discover(root: Path) -> list[CaseSpec]:
    """One case per visible sub-folder of ``root``."""
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    classes = _class_labels(root, {f.name for f in folders})
    found = [_case(folder, classes.get(folder.name)) for folder in folders]
    return require_cases(found, root, "one folder per case with <modality>.nii.gz files")


GENERIC = Source("generic", "Generic", "a folder per case with one file per modality", discover, LABELS)
