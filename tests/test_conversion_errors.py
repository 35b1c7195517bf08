"""Bad input: one clear error naming case, file and reason, and nothing left in nnUNet_raw."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brainmvp_nnunet.cli import main
from brainmvp_nnunet.data.nifti import write_nifti
from brainmvp_nnunet.dataset_conversion import convert
from brainmvp_nnunet.errors import ConversionError

CASE = "BraTS-GLI-00001-000"


@pytest.fixture()
def release(synth_brats2023: Path, tmp_path: Path) -> Path:
    """A private copy of the shared 6-case BraTS 2023 release, free to damage."""
    return Path(shutil.copytree(synth_brats2023, tmp_path / "release"))


def case_file(root: Path, token: str, case: str = CASE) -> Path:
    """Path of one file of a BraTS 2023 case."""
    return root / case / f"{case}-{token}.nii.gz"


def rewrite(path: Path, change) -> None:
    """Rewrite a NIfTI file with ``change(array, affine) -> (array, affine)`` applied."""
    img = nib.load(str(path))
    array, affine = change(np.asanyarray(img.dataobj), img.affine.copy())
    write_nifti(path, array, affine)


def truncate(path: Path) -> None:
    """Cut a file in half (an interrupted download)."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def with_voxel(value: float):
    """A change that stores the image as float32 with one voxel set to ``value``."""
    def change(array, affine):
        array = array.astype(np.float32)
        array[30, 30, 20] = value
        return array, affine
    return change


def scaled_spacing(array, affine):
    """Same voxels, 25 % larger voxel size."""
    affine[:3, :3] *= 1.25
    return array, affine


def flipped_x(array, affine):
    """Same image in world space, stored with the x axis reversed (LAS instead of RAS)."""
    affine[:3, 3] += affine[:3, 0] * (array.shape[0] - 1)
    affine[:3, 0] *= -1
    return array[::-1], affine


def assert_fails(source: str, root: Path, raw: Path, case: str | None, file: str | None, reason: str) -> None:
    """Conversion raises one ConversionError naming case, file and reason, and leaves nnUNet_raw empty."""
    before = sorted(raw.iterdir())
    with pytest.raises(ConversionError) as info:
        convert(source, root, 501)
    error, message = info.value, str(info.value)
    assert error.case == case and (case is None or case in message)
    assert (error.file is None) if file is None else (Path(error.file).name == file and error.file in message)
    assert reason in error.reason, message
    assert sorted(raw.iterdir()) == before  # no dataset folder, no temporary folder


BAD_FILES = {
    "truncated-gzip": ("t2w", truncate, "corrupt or truncated"),
    "not-a-nifti": ("t2w", lambda p: p.write_bytes(b"this is not a NIfTI file"), "cannot read the NIfTI header"),
    "other-shape": ("t2w", lambda p: rewrite(p, lambda a, m: (a[:-2], m)), "shape (58, 60, 39) differs"),
    "other-spacing": ("t1c", lambda p: rewrite(p, scaled_spacing), "spacing (5, 5, 5) differs"),
    "other-orientation": ("t1n", lambda p: rewrite(p, flipped_x), "orientation LAS differs from RAS"),
    "nan-voxel": ("t2f", lambda p: rewrite(p, with_voxel(np.nan)), "contains NaN or Inf voxels"),
    "inf-voxel": ("t2f", lambda p: rewrite(p, with_voxel(np.inf)), "contains NaN or Inf voxels"),
    "label-value": ("seg", lambda p: rewrite(p, lambda a, m: (np.where(a == 3, 4, a).astype(np.uint8), m)),
                    "label values [4] outside the allowed set [0, 1, 2, 3]"),
    "label-shape": ("seg", lambda p: rewrite(p, lambda a, m: (a[:, :-1], m)), "label shape (60, 59, 39) differs"),
}


@pytest.mark.parametrize("problem", sorted(BAD_FILES))
def test_bad_file_names_case_file_and_reason(problem, release, nnunet_roots):
    token, damage, reason = BAD_FILES[problem]
    path = case_file(release, token)
    damage(path)
    assert_fails("brats2023-gli", release, nnunet_roots["nnUNet_raw"], CASE, path.name, reason)


def test_duplicate_case_ids(release, nnunet_roots):
    shutil.copytree(release / CASE, release / "second-download" / CASE)
    assert_fails("brats2023-gli", release, nnunet_roots["nnUNet_raw"], CASE, f"{CASE}-t2f.nii.gz",
                 f"duplicate case id: 2 cases are named {CASE} (also {release / 'second-download'}")


def test_case_without_usable_modality(release, nnunet_roots):
    for token in ("t1n", "t1c", "t2w", "t2f"):
        case_file(release, token).unlink()
    assert_fails("brats2023-gli", release, nnunet_roots["nnUNet_raw"], CASE, None, "no usable modality")


def test_generic_unknown_modality_name(tmp_path, release, nnunet_roots):
    root = tmp_path / "generic"
    (root / "case_a").mkdir(parents=True)
    shutil.copy(case_file(release, "t1n"), root / "case_a" / "t1.nii.gz")
    shutil.copy(case_file(release, "t2w"), root / "case_a" / "localizer.nii.gz")
    assert_fails("generic", root, nnunet_roots["nnUNet_raw"], "case_a", "localizer.nii.gz", "unknown modality")


def test_json_entry_escaping_the_root(tmp_path, release, nnunet_roots):
    root = tmp_path / "BrainMVP-16k"
    shutil.copytree(release / CASE, root / "BraTS2023_GLI" / CASE)
    outside = tmp_path / "elsewhere" / f"{CASE}-t1c.nii.gz"
    outside.parent.mkdir()
    shutil.copy(case_file(release, "t1c"), outside)  # the file exists: only its place is wrong
    images = [f"{CASE}/{CASE}-t1n.nii.gz", f"../../elsewhere/{CASE}-t1c.nii.gz"]
    (root / "dataset_BraTS2023_GLI.json").write_text(json.dumps({"training": [{"image": images}]}))
    assert_fails("brainmvp16k", root, nnunet_roots["nnUNet_raw"], f"BraTS2023_GLI_{CASE}", outside.name,
                 "path escapes the input root")


def test_output_id_that_already_exists(release, nnunet_roots):
    (nnunet_roots["nnUNet_raw"] / "Dataset501_SomethingElse").mkdir()
    assert_fails("brats2023-gli", release, nnunet_roots["nnUNet_raw"], None, None, "dataset id 501 already exists")


def test_cli_exits_non_zero_with_one_message(release, nnunet_roots, capsys):
    rewrite(case_file(release, "t2f"), with_voxel(np.nan))
    assert main(["convert", "brats2023-gli", str(release), "--id", "501"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("brainmvp convert: error: case BraTS-GLI-00001-000, file ")
    assert f"{CASE}-t2f.nii.gz" in err and "NaN or Inf" in err
    assert list(nnunet_roots["nnUNet_raw"].iterdir()) == []


def test_skip_bad_cases_converts_the_rest_and_reports(release, nnunet_roots, capsys):
    rewrite(case_file(release, "t2f"), with_voxel(np.nan))  # found while writing (worker)
    other = "BraTS-GLI-00003-000"
    rewrite(case_file(release, "t2w", other), lambda a, m: (a[:-2], m))  # found before writing (headers)
    assert main(["convert", "brats2023-gli", str(release), "--id", "502", "-j", "2", "--skip-bad-cases"]) == 0
    folder = nnunet_roots["nnUNet_raw"] / "Dataset502_BraTS2023-GLI"
    report = json.loads((folder / "conversion_report.json").read_text())
    assert report["converted"] == 4
    assert {(s["case"], Path(s["file"]).name) for s in report["skipped"]} == {
        (CASE, f"{CASE}-t2f.nii.gz"), (other, f"{other}-t2w.nii.gz")}
    assert all(s["reason"] for s in report["skipped"])
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["numTraining"] == 4 and CASE not in meta["brainmvp"]["available_slots"]
    assert len(list((folder / "imagesTr").iterdir())) == 4 * 4
    assert not any(CASE in p.name or other in p.name for p in folder.rglob("*.nii.gz"))
    assert "skipped 2 bad case(s)" in capsys.readouterr().err
