"""Vestibular-Schwannoma-SEG (TCIA), after the authors' DICOM-to-NIfTI script (KCL-BMEIS/VS_Seg).

Release naming followed: one folder per patient, ``vs_gk_1/vs_gk_t1_refT1.nii.gz`` (contrast-enhanced T1),
``vs_gk_1/vs_gk_t2_refT1.nii.gz`` (T2 registered to T1, written with ``--register T1``) or
``vs_gk_1/vs_gk_t2_refT2.nii.gz`` (T2 on its own grid), and ``vs_gk_1/vs_gk_seg_refT1.nii.gz`` (tumour, 1).

Slots: ceT1 -> t1c, T2 -> t2. The case grid is the ceT1 grid of the label; a T2 on its own grid is
resampled onto it through the header's world coordinates (same session, no registration).
"""

from __future__ import annotations

from pathlib import Path

from .core import CaseSpec, LabelScheme, Source, ordered, require_cases

LABELS = LabelScheme({"background": 0, "schwannoma": 1}, remap={0: 0, 1: 1})


def _first(folder: Path, *names: str) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def discover(root: Path) -> list[CaseSpec]:
    """Every folder under ``root`` holding ``vs_gk_t1_refT1.nii.gz`` is one patient."""
    found = []
    for t1 in sorted(root.rglob("vs_gk_t1_refT1.nii.gz")):
        folder = t1.parent
        t2 = _first(folder, "vs_gk_t2_refT1.nii.gz", "vs_gk_t2_refT2.nii.gz")
        images = {"t1c": t1, **({"t2": t2} if t2 else {})}
        found.append(CaseSpec(folder.name, ordered(images), _first(folder, "vs_gk_seg_refT1.nii.gz"), grid="t1c"))
    return require_cases(found, root, "vs_gk_N/vs_gk_t1_refT1.nii.gz, vs_gk_t2_refT1.nii.gz, vs_gk_seg_refT1.nii.gz")


VSSEG = Source("vsseg", "VSseg", "the Vestibular-Schwannoma-SEG NIfTI export (label 1 schwannoma)", discover, LABELS)
