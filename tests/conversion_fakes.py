"""Tiny fake releases in the real file layouts of the converters' sources, for the conversion tests.

BraTS and IXI come from :func:`brainmvp_nnunet.data.releases.write_synthetic_release`; the other layouts
are written here from a few rendered synthetic subjects (4 mm, 60 x 60 x 39). Modalities the generator
cannot render (DWI, ADC, MRA, T1-IR) reuse another rendered contrast: only file names, grids and labels
matter to a converter. Every builder returns the modalities it wrote per case id (the expected
``available_slots``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path

import nibabel as nib
import numpy as np

from brainmvp_nnunet.data.anatomy import load_mni152
from brainmvp_nnunet.data.modalities import SLOTS
from brainmvp_nnunet.data.nifti import write_nifti
from brainmvp_nnunet.data.releases import MANIFEST_NAME, write_synthetic_release
from brainmvp_nnunet.data.synth import Subject, SynthConfig, draw_subject, render_subject, to_int16

SPACING = 4.0
Expected = dict[str, list[str]]


def render_subjects(count: int, seed: int = 3) -> list[Subject]:
    """``count`` rendered subjects with a tumour and every renderable contrast."""
    anatomy = load_mni152()
    config = SynthConfig(spacing=SPACING, modalities=("t1", "t1c", "t2", "flair", "pd"))
    return [render_subject(anatomy, draw_subject(np.random.default_rng([seed, i]), anatomy, config), config)
            for i in range(count)]


def save(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    """Write a NIfTI file (``.nii.gz`` or plain ``.nii``), creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".nii.gz"):
        write_nifti(path, array, affine)
    else:
        nib.save(nib.Nifti1Image(array, affine), str(path))


def image(subject: Subject, contrast: str) -> np.ndarray:
    """A rendered contrast as int16, like most releases."""
    return to_int16(subject.images[contrast])


def finer_grid(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same field of view on a grid twice as fine in-plane (a modality stored on its own grid)."""
    fine = np.repeat(np.repeat(array, 2, axis=0), 2, axis=1)
    out = affine.copy()
    out[:3, 0] /= 2
    out[:3, 1] /= 2
    out[:3, 3] -= (affine[:3, 0] + affine[:3, 1]) / 4  # keep voxel centres over the same extent
    return fine, out


# --------------------------------------------------------------------------------------------------


def synthetic_release(layout: str, root: Path, subjects: list[Subject], num_cases: int = 3) -> Expected:
    """BraTS / IXI layouts through the project's synthetic release writer (with missing modalities)."""
    write_synthetic_release(root, layout, num_cases, seed=11, spacing=SPACING, missing_rate=0.3, progress=False)
    manifest = json.loads((root / MANIFEST_NAME).read_text())
    return {case["case"]: sorted(case["available"], key=SLOTS.index) for case in manifest["cases"]}


def upenn_gbm(root: Path, subjects: list[Subject]) -> Expected:
    """Patient 00001 has two scans (_11, _21); a scan with only an automated label is not converted."""
    base = root / "NIfTI-files"
    scans = ["UPENN-GBM-00001_11", "UPENN-GBM-00001_21", "UPENN-GBM-00002_11"]
    tokens = {"T1": "t1", "T1GD": "t1c", "T2": "t2", "FLAIR": "flair"}
    for scan, subject in zip([*scans, "UPENN-GBM-00003_11"], [*subjects, subjects[0]], strict=True):
        for token, contrast in tokens.items():
            save(base / "images_structural" / scan / f"{scan}_{token}.nii.gz", image(subject, contrast), subject.affine)
        label = np.choose(subject.label, [0, 1, 2, 4]).astype(np.uint8)  # NCR 1, ED 2, ET 4
        folder, name = ("images_segm", f"{scan}_segm") if scan in scans else ("automated_segm",
                                                                            f"{scan}_automated_approx_segm")
        save(base / folder / f"{name}.nii.gz", label, subject.affine)
    return {scan: ["flair", "t1", "t1c", "t2"] for scan in scans}


def isles22(root: Path, subjects: list[Subject]) -> Expected:
    """BIDS sessions; FLAIR on its own (finer) grid; the second case has no FLAIR."""
    expected = {}
    for number, subject in enumerate(subjects[:2], start=1):
        sub, ses = f"sub-strokecase{number:04d}", "ses-0001"
        session = root / sub / ses
        save(session / "dwi" / f"{sub}_{ses}_dwi.nii.gz", image(subject, "t2"), subject.affine)
        save(session / "dwi" / f"{sub}_{ses}_adc.nii.gz", image(subject, "t1"), subject.affine)
        slots = ["dwi", "adc"]
        if number == 1:
            save(session / "anat" / f"{sub}_{ses}_FLAIR.nii.gz", *finer_grid(image(subject, "flair"), subject.affine))
            slots.insert(0, "flair")
        mask = (subject.label > 0).astype(np.uint8)
        save(root / "derivatives" / sub / ses / f"{sub}_{ses}_msk.nii.gz", mask, subject.affine)
        expected[f"{sub}_{ses}"] = slots
    return expected


def mrbrains13(root: Path, subjects: list[Subject]) -> Expected:
    """Plain ``.nii`` files; tissue labels 1-3; T1_1mm (other grid) and LabelsForTraining are ignored."""
    expected = {}
    for number, subject in enumerate(subjects[:2], start=1):
        folder = root / "TrainingData" / str(number)
        for name, contrast in (("T1", "t1"), ("T1_IR", "pd"), ("T2_FLAIR", "flair")):
            save(folder / f"{name}.nii", image(subject, contrast), subject.affine)
        save(folder / "T1_1mm.nii", *finer_grid(image(subject, "t1"), subject.affine))
        t1 = subject.images["t1"]
        brain = t1 > 0
        tissue = np.digitize(t1, np.quantile(t1[brain], [1 / 3, 2 / 3])) + 1
        save(folder / "LabelsForTesting.nii", np.where(brain, tissue, 0).astype(np.uint8), subject.affine)
        save(folder / "LabelsForTraining.nii", np.where(brain, 8, 0).astype(np.uint8), subject.affine)
        expected[f"MRBrainS13_{number}"] = ["flair", "t1", "t1c"]
    return expected


def vsseg(root: Path, subjects: list[Subject]) -> Expected:
    """Case 1 has the T2 registered to T1 (``refT1``), case 2 on its own grid (``refT2``), case 3 no T2."""
    expected = {}
    for number, subject in enumerate(subjects, start=1):
        folder = root / f"vs_gk_{number}"
        save(folder / "vs_gk_t1_refT1.nii.gz", image(subject, "t1c"), subject.affine)
        if number == 1:
            save(folder / "vs_gk_t2_refT1.nii.gz", image(subject, "t2"), subject.affine)
        elif number == 2:
            save(folder / "vs_gk_t2_refT2.nii.gz", *finer_grid(image(subject, "t2"), subject.affine))
        save(folder / "vs_gk_seg_refT1.nii.gz", (subject.label == 3).astype(np.uint8), subject.affine)
        expected[f"vs_gk_{number}"] = ["t1c", "t2"] if number < 3 else ["t1c"]
    return expected


def ucsf_pdgm(root: Path, subjects: list[Subject]) -> Expected:
    """Patient 0004 has a follow-up exam; exam 0005 lacks ADC; bias copies and segmentations are ignored."""
    base = root / "UCSF-PDGM-v5"
    tokens = {"T1": "t1", "T1c": "t1c", "T2": "t2", "FLAIR": "flair", "DWI": "t2", "ADC": "t1", "T1_bias": "t1"}
    expected = {}
    for exam, subject in zip(["UCSF-PDGM-0004", "UCSF-PDGM-0004_FU007d", "UCSF-PDGM-0005"], subjects, strict=True):
        for token, contrast in tokens.items():
            if not (exam == "UCSF-PDGM-0005" and token == "ADC"):
                save(base / f"{exam}_nifti" / f"{exam}_{token}.nii.gz", image(subject, contrast), subject.affine)
        save(base / f"{exam}_nifti" / f"{exam}_tumor_segmentation.nii.gz", subject.label, subject.affine)
        expected[exam] = ["flair", "t1", "t1c", "t2", "dwi"] + ([] if exam == "UCSF-PDGM-0005" else ["adc"])
    return expected


def brainmvp16k(root: Path, subjects: list[Subject]) -> Expected:
    """Two JSON lists in ``jsons/``: a BraTS 2021 case (training) and an IXI subject (validation)."""
    brats = "BraTS2021_Training_Data/BraTS2021_00000/BraTS2021_00000"
    ixi = "IXI002-Guys-0828/IXI002-Guys-0828"
    lists = {
        "BraTS2021": ("training", brats, "_", {"flair": "flair", "t1": "t1", "t1ce": "t1c", "t2": "t2"}),
        "BrainAtlas_registration_sir24": ("validation", ixi, "-", {"MRA": "pd", "PD": "pd", "T1": "t1", "T2": "t2"}),
    }
    for (name, (split, stem, sep, tokens)), subject in zip(lists.items(), subjects, strict=False):
        paths = [f"{stem}{sep}{token}.nii.gz" for token in tokens]
        for path, contrast in zip(paths, tokens.values(), strict=True):
            save(root / name / path, image(subject, contrast), subject.affine)
        (root / "jsons").mkdir(exist_ok=True)
        (root / "jsons" / f"dataset_{name}.json").write_text(json.dumps({split: [{"image": paths}]}, indent=4))
    return {"BraTS2021_BraTS2021_00000": ["flair", "t1", "t1c", "t2"],
            "BrainAtlas_registration_sir24_IXI002-Guys-0828": ["t1", "t2", "mra", "pd"]}


def generic(root: Path, subjects: list[Subject]) -> Expected:
    """Two case folders with differently spelled modality files, labels and class labels."""
    files = {"case_a": {"t1.nii.gz": "t1", "FLAIR.nii.gz": "flair"},
             "case_b": {"case_b_T1GD.nii.gz": "t1c", "case_b-t1.nii.gz": "t1"}}
    for (case, names), subject in zip(files.items(), subjects, strict=False):
        for name, contrast in names.items():
            save(root / case / name, image(subject, contrast), subject.affine)
        save(root / case / "seg.nii.gz", subject.label, subject.affine)
    (root / "class_labels.json").write_text(json.dumps({"case_a": "HGG", "case_b": "LGG"}))
    return {"case_a": ["flair", "t1"], "case_b": ["t1", "t1c"]}


BUILDERS: dict[str, Callable[[Path, list[Subject]], Expected]] = {
    **{name: partial(synthetic_release, name) for name in
       ("brats2021", "brats2023-gli", "brats2023-ped", "brats2023-met", "brats2023-ssa", "brats2023-men", "ixi")},
    "upenn-gbm": upenn_gbm,
    "isles22": isles22,
    "mrbrains13": mrbrains13,
    "vsseg": vsseg,
    "ucsf-pdgm": ucsf_pdgm,
    "brainmvp16k": brainmvp16k,
    "generic": generic,
}
