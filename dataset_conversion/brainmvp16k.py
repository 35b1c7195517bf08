"""BrainMVP-16k pre-training collection (Hugging Face ``shaohao011/BrainMVP-16k``) through its JSON lists.

Layout followed (the upstream ``main.py --base_dir ... --dataset BraTS2021 ...``): the lists
``dataset_<NAME>.json`` sit in the root or in ``root/jsons/``; each is ``{"training": [{"image": [...]}, ...],
"validation": [...]}`` with image paths relative to ``root/<NAME>/``, e.g.
``BraTS2021_Training_Data/BraTS2021_00000/BraTS2021_00000_flair.nii.gz`` or
``IXI002-Guys-0828/IXI002-Guys-0828-MRA.nii.gz``. Both lists are converted (upstream pre-trains on both).

The modality of a file is the last token of its name split on ``-``, ``_`` or ``|`` (upstream's rule),
mapped through the alias table. The case id is ``<NAME>_<folder of the first image>``. Every path must
stay inside the root (an entry with ``../`` that leaves it is a bad case).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from brainmvp_nnunet.errors import ConversionError, UnknownModalityError

from .core import CaseSpec, Source, ordered, require_cases, slot_from_name

_LIST = re.compile(r"dataset_(?P<name>.+)\.json")


def _lists(root: Path) -> list[tuple[str, Path]]:
    files = [*root.glob("dataset_*.json"), *(root / "jsons").glob("dataset_*.json")]
    return sorted((m["name"], p) for p in files if (m := _LIST.fullmatch(p.name)))


def _entries(path: Path) -> list[list[str]]:
    """The image lists of a JSON file, checked for shape."""
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConversionError(f"cannot read the JSON list ({exc})", file=str(path)) from exc
    if not isinstance(content, dict) or not any(k in content for k in ("training", "validation")):
        raise ConversionError('expected an object with "training" and/or "validation" lists', file=str(path))
    out = []
    for key in ("training", "validation"):
        for number, entry in enumerate(content.get(key, [])):
            images = entry.get("image") if isinstance(entry, dict) else None
            if not isinstance(images, list) or not images or not all(isinstance(i, str) for i in images):
                raise ConversionError(f'entry {number} of "{key}" has no "image" list of paths', file=str(path))
            out.append(images)
    return out


def _case(name: str, data_root: Path, relpaths: list[str]) -> CaseSpec:
    paths = [data_root / rel for rel in relpaths]
    case_id = re.sub(r"_nifti$", "", f"{name}_{paths[0].parent.name}")
    images: dict[str, Path] = {}
    for path in paths:
        try:
            slot = slot_from_name(path.name)
        except UnknownModalityError as exc:
            return CaseSpec(case_id, {}, problem=ConversionError(str(exc), case=case_id, file=str(path)))
        if slot in images:
            return CaseSpec(case_id, {}, problem=ConversionError(f"a second {slot} image (first: {images[slot]})",
                                                                 case=case_id, file=str(path)))
        images[slot] = path
    return CaseSpec(case_id, ordered(images))


def discover(root: Path) -> list[CaseSpec]:
    """One case per JSON entry of every ``dataset_<NAME>.json`` list."""
    found = [_case(name, root / name, images) for name, path in _lists(root) for images in _entries(path)]
    return require_cases(found, root, "dataset_<NAME>.json lists (in the root or jsons/) with image paths "
                                      "relative to <NAME>/")


BRAINMVP16K = Source("brainmvp16k", "BrainMVP16k", "the BrainMVP-16k JSON lists (pre-training, no labels)",
                     discover, None)
