"""Label conventions, naming rules, splits and the environment of the dataset converters."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brainmvp_nnunet.cli import build_parser
from brainmvp_nnunet.data.releases import write_synthetic_release
from brainmvp_nnunet.dataset_conversion import SOURCES, convert
from brainmvp_nnunet.dataset_conversion.core import patient_splits, slot_from_name
from brainmvp_nnunet.errors import ConversionError, NnUNetEnvError


def _voxels(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(str(path)).dataobj)


# BraTS value -> 2021 region convention (ED 1, NCR 2, ET 3)
BRATS_CONVENTIONS = {"brats2023-gli": ("-", "seg", {1: 2, 2: 1, 3: 3}), "brats2021": ("_", "seg", {1: 2, 2: 1, 4: 3})}


@pytest.mark.parametrize("source", sorted(BRATS_CONVENTIONS))
def test_brats_labels_end_in_the_2021_region_convention_with_enhancing_tumour(source, tmp_path, nnunet_roots):
    sep, token, mapping = BRATS_CONVENTIONS[source]
    release = write_synthetic_release(tmp_path / "release", source, 2, seed=5, spacing=4.0, progress=False)
    folder = convert(source, release, 510)
    for label_file in sorted((folder / "labelsTr").iterdir()):
        case = label_file.name.removesuffix(".nii.gz")
        original = _voxels(release / case / f"{case}{sep}{token}.nii.gz")
        converted = _voxels(label_file)
        expected = np.zeros_like(converted)
        for theirs, ours in mapping.items():
            expected[original == theirs] = ours
        np.testing.assert_array_equal(converted, expected)
        assert (converted == 3).sum() > 0  # the enhancing-tumour region is not lost (upstream bug)
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]}
    assert meta["regions_class_order"] == [1, 2, 3]


def test_brats_release_without_labels_becomes_a_pretraining_dataset(synth_brats2023, tmp_path, nnunet_roots):
    release = Path(shutil.copytree(synth_brats2023, tmp_path / "validation"))
    for seg in release.rglob("*-seg.nii.gz"):
        seg.unlink()
    meta = json.loads((convert("brats2023-gli", release, 511) / "dataset.json").read_text())
    assert meta["labels"] == {"background": 0, "brain": 1} and meta["brainmvp"]["pretraining"] is True


def test_release_with_some_labels_missing_is_refused(synth_brats2023, tmp_path, nnunet_roots):
    release = Path(shutil.copytree(synth_brats2023, tmp_path / "release"))
    (release / "BraTS-GLI-00002-000" / "BraTS-GLI-00002-000-seg.nii.gz").unlink()
    with pytest.raises(ConversionError, match="case BraTS-GLI-00002-000: label file missing"):
        convert("brats2023-gli", release, 512)


@pytest.mark.parametrize(("file_name", "slot"), [
    ("t1.nii.gz", "t1"), ("FLAIR.nii", "flair"), ("case_b_T1GD.nii.gz", "t1c"), ("t2_flair.nii.gz", "flair"),
    ("IXI002-Guys-0828-MRA.nii.gz", "mra"), ("UCSF-PDGM-0515_ADC.nii.gz", "adc"),
    ("BraTS2021_00000_t1ce.nii.gz", "t1c"), ("BraTS-GLI-00000-000-t2f.nii.gz", "flair"),
    ("sub-1_ses-1_dwi.nii.gz", "dwi"),
])
def test_modality_from_file_name(file_name, slot):
    assert slot_from_name(file_name) == slot


def test_patient_splits_keep_a_patients_scans_together():
    cases = {f"P{p}_{scan}": f"P{p}" for p in range(7) for scan in range(1 + p % 3)}
    splits = patient_splits(cases)
    assert len(splits) == 5
    assert sorted(c for fold in splits for c in fold["val"]) == sorted(cases)
    for fold in splits:
        assert not {cases[c] for c in fold["val"]} & {cases[c] for c in fold["train"]}
        assert sorted(fold["train"] + fold["val"]) == sorted(cases)
    assert patient_splits(cases) == splits  # fixed seed


def test_unknown_source_and_unset_nnunet_raw(tmp_path, monkeypatch):
    with pytest.raises(ConversionError, match="unknown source 'brats2019'; known sources: brats2021"):
        convert("brats2019", tmp_path, 1)
    monkeypatch.delenv("nnUNet_raw")
    with pytest.raises(NnUNetEnvError, match="nnUNet_raw"):
        convert("generic", tmp_path, 1)


def test_empty_input_names_the_expected_layout(tmp_path, nnunet_roots):
    with pytest.raises(ConversionError, match="no case found .* expected BraTS-PED-NNNNN-NNN/"):
        convert("brats2023-ped", tmp_path, 1)


def test_cli_lists_every_source_in_help():
    parser = build_parser()
    convert_parser = parser._subparsers._group_actions[0].choices["convert"]
    text = convert_parser.format_help()
    assert all(name in text for name in SOURCES) and "--skip-bad-cases" in text and "-j" in text


def test_memory_does_not_grow_with_the_number_of_cases(synth_brats2023, tmp_path, nnunet_roots):
    """Cases are streamed: peak memory for 6 cases is about that for 2 (one case held at a time)."""
    import tracemalloc

    peaks = {}
    for count in (2, 6):
        release = tmp_path / f"release{count}"
        release.mkdir()
        for case in sorted(p for p in synth_brats2023.iterdir() if p.is_dir())[:count]:
            shutil.copytree(case, release / case.name)
        tracemalloc.start()
        convert("brats2023-gli", release, 520 + count)
        peaks[count] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[6] < 1.3 * peaks[2], peaks
