"""Every source: a tiny fake release in its real layout converts into a dataset nnU-Net accepts."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
from conversion_fakes import BUILDERS, render_subjects
from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

from brainmvp_nnunet.data.modalities import DISPLAY_NAMES, SLOTS
from brainmvp_nnunet.dataset_conversion import SOURCES, convert

PRETRAINING = {"ixi", "ucsf-pdgm", "brainmvp16k"}
PATIENT_SPLITS = {"upenn-gbm": {"UPENN-GBM-00001_11", "UPENN-GBM-00001_21"},
                  "ucsf-pdgm": {"UCSF-PDGM-0004", "UCSF-PDGM-0004_FU007d"}}


@pytest.fixture(scope="module", autouse=True)
def fork_verify():
    """nnU-Net's check starts a spawn pool per call (seconds of imports); a fork pool runs the same check."""
    import nnunetv2.experiment_planning.verify_dataset_integrity as module

    original = module.multiprocessing
    module.multiprocessing = SimpleNamespace(get_context=lambda method=None: original.get_context("fork"))
    yield
    module.multiprocessing = original


@pytest.fixture(scope="module")
def subjects():
    """Three rendered subjects shared by the hand-written layouts."""
    return render_subjects(3)


def _voxels(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(str(path)).dataobj)


def test_every_source_has_a_fake_release():
    assert set(BUILDERS) == set(SOURCES)


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_source_converts_to_a_valid_nnunet_dataset(source, subjects, tmp_path, nnunet_roots):
    expected = BUILDERS[source](tmp_path / "release", subjects)
    folder = convert(source, tmp_path / "release", 501)

    assert folder == nnunet_roots["nnUNet_raw"] / f"Dataset501_{SOURCES[source].default_name}"
    verify_dataset_integrity(str(folder), num_processes=1)
    meta = json.loads((folder / "dataset.json").read_text())
    block = meta["brainmvp"]
    channels = [slot for slot in SLOTS if any(slot in slots for slots in expected.values())]
    assert block["channel_slots"] == {str(i): slot for i, slot in enumerate(channels)}
    assert meta["channel_names"] == {str(i): DISPLAY_NAMES[slot] for i, slot in enumerate(channels)}
    assert block["available_slots"] == expected
    assert block["source"] == source and block["format_version"] == 1
    assert block["pretraining"] is (source in PRETRAINING)
    assert set(block) == {"format_version", "source", "channel_slots", "available_slots", "pretraining",
                          *(["class_labels"] if source == "generic" else [])}
    assert meta["numTraining"] == len(expected) and meta["file_ending"] == ".nii.gz"

    for case, available in expected.items():
        images = [_voxels(folder / "imagesTr" / f"{case}_{i:04d}.nii.gz") for i in range(len(channels))]
        # a channel is all zeros exactly when the release had no file for it
        assert [slot for slot, data in zip(channels, images, strict=True) if data.any()] == available
        label = _voxels(folder / "labelsTr" / f"{case}.nii.gz")
        if block["pretraining"]:
            assert meta["labels"] == {"background": 0, "brain": 1}
            np.testing.assert_array_equal(label, np.any(np.stack(images) != 0, axis=0))

    splits_file = folder / "splits_final.json"
    assert splits_file.exists() is (source in PATIENT_SPLITS)
    if source in PATIENT_SPLITS:
        splits = json.loads(splits_file.read_text())
        same_patient = PATIENT_SPLITS[source]
        assert all(same_patient <= set(fold["val"]) or not same_patient & set(fold["val"]) for fold in splits)
        assert sorted(c for fold in splits for c in fold["val"]) == sorted(expected)


def test_generic_class_labels_and_raw_label_values(subjects, tmp_path, nnunet_roots):
    BUILDERS["generic"](tmp_path / "release", subjects)
    folder = convert("generic", tmp_path / "release", 7, name="Classes")
    meta = json.loads((folder / "dataset.json").read_text())
    assert folder.name == "Dataset007_Classes"
    assert meta["brainmvp"]["class_labels"] == {"case_a": "HGG", "case_b": "LGG"}
    assert meta["labels"] == {"background": 0, "label_1": 1, "label_2": 2, "label_3": 3}
    np.testing.assert_array_equal(_voxels(folder / "labelsTr" / "case_a.nii.gz"), subjects[0].label)


def test_isles22_flair_is_resampled_onto_the_dwi_grid(subjects, tmp_path, nnunet_roots):
    BUILDERS["isles22"](tmp_path / "release", subjects)
    folder = convert("isles22", tmp_path / "release", 502)
    flair = nib.load(str(folder / "imagesTr" / "sub-strokecase0001_ses-0001_0000.nii.gz"))
    dwi = nib.load(str(folder / "imagesTr" / "sub-strokecase0001_ses-0001_0001.nii.gz"))
    assert flair.shape == dwi.shape
    np.testing.assert_allclose(flair.affine, dwi.affine)
    source = subjects[0].images["flair"]
    brain = source > 0
    # trilinear on a 2x finer copy of the same field of view gives back the original inside the brain
    assert np.corrcoef(np.asanyarray(flair.dataobj)[brain], source[brain])[0, 1] > 0.95
