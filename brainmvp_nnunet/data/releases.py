"""Synthetic data sets written in the file layouts of real public releases.

Each :class:`ReleaseLayout` reproduces one release's naming, so that the dataset converters are
tested against the layout they will meet on real data:

* BraTS 2023 (GLI, PED, MET, SSA, MEN): ``BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t1n,t1c,t2w,t2f,seg}.nii.gz``,
  labels 1 NCR, 2 ED, 3 ET;
* BraTS 2021: ``BraTS2021_00000/BraTS2021_00000_{t1,t1ce,t2,flair,seg}.nii.gz``, labels 1 NCR, 2 ED, 4 ET;
* IXI: one folder per modality, ``IXI-T1/IXI002-Guys-0828-T1.nii.gz`` (also T2, PD), no labels;
* generic-grade: the generic converter's layout, ``case_000/{t1,t1c,t2,flair,seg}.nii.gz`` plus
  ``class_labels.json`` with each subject's tumour grade (``high``/``low``): a classification task.

A missing modality is simply an absent file, as in the real collections.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brainmvp_nnunet.atomic import atomic_directory
from brainmvp_nnunet.data.anatomy import load_mni152
from brainmvp_nnunet.data.nifti import write_nifti
from brainmvp_nnunet.data.synth import (
    LABEL_ED,
    LABEL_ET,
    LABEL_NCR,
    Subject,
    SynthConfig,
    draw_subject,
    render_subject,
    to_int16,
)
from brainmvp_nnunet.errors import SynthError

MANIFEST_NAME = "synth_manifest.json"
CLASS_LABELS_NAME = "class_labels.json"  # the generic converter's per-case class file
PREVIEW_NAME = "preview.png"


@dataclass(frozen=True)
class ReleaseLayout:
    """File naming of one public release."""

    name: str
    description: str
    suffixes: dict[str, str]  # canonical slot -> file-name token of the release
    label_values: dict[int, int] | None  # our BraTS-2023 label -> the release's value; None: no labels
    case_id: Callable[[int], str]
    image_relpath: Callable[[str, str], str]  # (case id, token) -> path relative to the release root
    label_relpath: Callable[[str], str] | None = None
    graded: bool = False  # draw tumour grades and write them to class_labels.json

    @property
    def modalities(self) -> tuple[str, ...]:
        """Canonical slots this release provides."""
        return tuple(self.suffixes)


def _brats2023(challenge: str) -> ReleaseLayout:
    def case_id(i: int) -> str:
        return f"BraTS-{challenge}-{i:05d}-000"

    return ReleaseLayout(
        name=f"brats2023-{challenge.lower()}",
        description=f"BraTS 2023 {challenge} training release (labels 1 NCR, 2 ED, 3 ET)",
        suffixes={"t1": "t1n", "t1c": "t1c", "t2": "t2w", "flair": "t2f"},
        label_values={LABEL_NCR: 1, LABEL_ED: 2, LABEL_ET: 3},
        case_id=case_id,
        image_relpath=lambda case, token: f"{case}/{case}-{token}.nii.gz",
        label_relpath=lambda case: f"{case}/{case}-seg.nii.gz",
    )


def _brats2021() -> ReleaseLayout:
    return ReleaseLayout(
        name="brats2021",
        description="BraTS 2021 training release (labels 1 NCR, 2 ED, 4 ET)",
        suffixes={"t1": "t1", "t1c": "t1ce", "t2": "t2", "flair": "flair"},
        label_values={LABEL_NCR: 1, LABEL_ED: 2, LABEL_ET: 4},
        case_id=lambda i: f"BraTS2021_{i:05d}",
        image_relpath=lambda case, token: f"{case}/{case}_{token}.nii.gz",
        label_relpath=lambda case: f"{case}/{case}_seg.nii.gz",
    )


_IXI_SITES = ("Guys", "HH", "IOP")


def _ixi() -> ReleaseLayout:
    return ReleaseLayout(
        name="ixi",
        description="IXI (one folder per modality: IXI-T1, IXI-T2, IXI-PD; no labels)",
        suffixes={"t1": "T1", "t2": "T2", "pd": "PD"},
        label_values=None,
        case_id=lambda i: f"IXI{i + 2:03d}-{_IXI_SITES[i % 3]}-{(828 + 7 * i) % 10000:04d}",
        image_relpath=lambda case, token: f"IXI-{token}/{case}-{token}.nii.gz",
    )


def _generic_grade() -> ReleaseLayout:
    return ReleaseLayout(
        name="generic-grade",
        description="generic folders (labels 1 NCR, 2 ED, 3 ET) with class_labels.json: tumour grade high/low",
        suffixes={"t1": "t1", "t1c": "t1c", "t2": "t2", "flair": "flair"},
        label_values={LABEL_NCR: 1, LABEL_ED: 2, LABEL_ET: 3},
        case_id=lambda i: f"case_{i:03d}",
        image_relpath=lambda case, token: f"{case}/{token}.nii.gz",
        label_relpath=lambda case: f"{case}/seg.nii.gz",
        graded=True,
    )


LAYOUTS: dict[str, ReleaseLayout] = {
    layout.name: layout
    for layout in [*(_brats2023(c) for c in ("GLI", "PED", "MET", "SSA", "MEN")), _brats2021(), _ixi(),
                   _generic_grade()]
}


def get_layout(name: str) -> ReleaseLayout:
    """Look up a layout by name; :class:`SynthError` lists the known names otherwise."""
    if name not in LAYOUTS:
        raise SynthError(f"unknown layout {name!r}; known layouts: {', '.join(LAYOUTS)}")
    return LAYOUTS[name]


def subject_rng(seed: int, index: int) -> np.random.Generator:
    """Independent random stream per subject: subject i is the same whatever the number of subjects."""
    return np.random.default_rng([seed, index])


def _write_case(root: Path, layout: ReleaseLayout, case: str, subject: Subject) -> dict:
    for slot, image in subject.images.items():
        path = root / layout.image_relpath(case, layout.suffixes[slot])
        path.parent.mkdir(parents=True, exist_ok=True)
        write_nifti(path, to_int16(image), subject.affine)
    if layout.label_relpath is not None and subject.label is not None:
        label = np.zeros_like(subject.label)
        for ours, theirs in layout.label_values.items():
            label[subject.label == ours] = theirs
        write_nifti(root / layout.label_relpath(case), label, subject.affine)
    tumour = subject.params.tumour
    entry = {
        "case": case,
        "available": sorted(subject.images, key=layout.modalities.index),
        "tumour_radii_mm": None if tumour is None else [round(tumour.r_ncr, 2), round(tumour.r_et, 2),
                                                         round(tumour.r_ed, 2)],
    }
    if subject.params.grade is not None:  # only graded layouts: other manifests keep their bytes
        entry["grade"] = subject.params.grade
    return entry


def write_synthetic_release(output: Path, layout_name: str, num_cases: int, seed: int = 0,
                            start_index: int = 0, spacing: float = 1.0, missing_rate: float = 0.0,
                            preview: bool = False, progress: bool = True) -> Path:
    """Generate ``num_cases`` synthetic subjects into ``output`` in the layout ``layout_name``.

    Case ids are numbered from ``start_index`` (disjoint training and test sets); subject ``i`` is drawn
    from its own stream seeded by ``(seed, i)``.

    Nothing is left behind on failure: the release is written into a temporary sibling folder and
    renamed at the end. Returns the output folder.
    """
    layout = get_layout(layout_name)
    if num_cases < 1:
        raise SynthError(f"number of cases must be at least 1, got {num_cases}")
    if start_index < 0:
        raise SynthError(f"start index must not be negative, got {start_index}")
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise SynthError(f"output {output} already exists and is not an empty folder; choose a new path")
    config = SynthConfig(spacing=spacing, modalities=layout.modalities,
                         with_tumour=layout.label_values is not None, missing_rate=missing_rate, grades=layout.graded)
    config.validate()
    anatomy = load_mni152()
    try:
        if output.exists():
            output.rmdir()  # empty: replaced by the finished release
        with atomic_directory(output) as tmp:
            cases = []
            for number, index in enumerate(range(start_index, start_index + num_cases), start=1):
                case = layout.case_id(index)
                if progress:
                    print(f"[synth {number}/{num_cases}] {case}", file=sys.stderr, flush=True)
                params = draw_subject(subject_rng(seed, index), anatomy, config)
                subject = render_subject(anatomy, params, config)
                cases.append(_write_case(tmp, layout, case, subject))
                if preview and number == 1:
                    from brainmvp_nnunet.data.preview import save_preview

                    save_preview(tmp / PREVIEW_NAME, subject, f"{layout.name} {case}")
            manifest = {"generator": "brainmvp synth", "layout": layout.name, "description": layout.description,
                        "seed": seed, "start_index": start_index, "spacing_mm": spacing, "missing_rate": missing_rate,
                        "cases": cases}
            (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1) + "\n")
            if layout.graded:
                grades = {c["case"]: c["grade"] for c in cases}
                (tmp / CLASS_LABELS_NAME).write_text(json.dumps(grades, indent=1) + "\n")
    except OSError as exc:
        raise SynthError(f"cannot write to {output}: {exc.strerror or exc}") from exc
    return output
