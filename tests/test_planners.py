"""Planners: fixed architecture across datasets, fingerprint extension, stock nnU-Net CLIs end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brainmvp_nnunet.data.releases import write_synthetic_release
from brainmvp_nnunet.errors import PlanningError
from brainmvp_nnunet.nnunet_env import ext_trainer_value
from brainmvp_nnunet.plugins import install_plugins, nnunet_package_dir

BIN = Path(sys.executable).parent


def _convert(tmp: Path, dataset_id: int, seed: int, n: int, spacing: float, missing_rate: float = 0.0) -> Path:
    from brainmvp_nnunet.dataset_conversion import convert

    src = write_synthetic_release(tmp / f"src{dataset_id}", "brats2023-gli", n, seed=seed, spacing=spacing,
                                  missing_rate=missing_rate, progress=False)
    return convert("brats2023-gli", src, dataset_id)


def _plan(dataset_id: int, planner: str) -> dict:
    from brainmvp_nnunet.planners.api import plan_and_preprocess

    plans_id = plan_and_preprocess(dataset_id, planner, num_processes=1, verify_integrity=False, preprocess=False)
    folder = next(Path(os.environ["nnUNet_preprocessed"]).glob(f"Dataset{dataset_id:03d}_*"))
    return json.loads((folder / f"{plans_id}.json").read_text())


@pytest.mark.parametrize("planner", ["BrainMVPPlanner", "BrainMVPPlanner_Tiny32", "BrainMVPResEncPlanner_Tiny32"])
def test_same_architecture_for_different_datasets(tmp_path, nnunet_roots, planner):
    _convert(tmp_path, 601, seed=1, n=3, spacing=3.0)
    _convert(tmp_path, 602, seed=2, n=2, spacing=4.0)
    a, b = _plan(601, planner), _plan(602, planner)
    fingerprints = [json.loads(next(nnunet_roots["nnUNet_preprocessed"].glob(f"Dataset{i}_*"))
                               .joinpath("dataset_fingerprint.json").read_text()) for i in (601, 602)]
    assert fingerprints[0]["spacings"] != fingerprints[1]["spacings"]
    assert fingerprints[0]["shapes_after_crop"] != fingerprints[1]["shapes_after_crop"]
    ca, cb = a["configurations"]["3d_fullres"], b["configurations"]["3d_fullres"]
    assert list(a["configurations"]) == ["3d_fullres"]
    assert ca["architecture"] == cb["architecture"]
    assert ca["patch_size"] == cb["patch_size"] and ca["spacing"] == cb["spacing"]
    assert a["transpose_forward"] == [0, 1, 2]
    assert ca["batch_size"] >= 2


def test_patch_not_divisible_by_stride_is_refused(tmp_path, nnunet_roots):
    from brainmvp_nnunet.planners.brainmvp_planners import BrainMVPPlanner_Tiny32
    from brainmvp_nnunet.planners.fingerprint import BrainMVPFingerprintExtractor

    class Planner40(BrainMVPPlanner_Tiny32):
        patch_size = (40, 32, 32)

    _convert(tmp_path, 603, seed=3, n=2, spacing=4.0)
    BrainMVPFingerprintExtractor(603, num_processes=1).run()
    with pytest.raises(PlanningError, match=r"patch \[40, 32, 32\] is not divisible .* 40 \(axis 0, stride 16\)"):
        Planner40(603).plan_experiment()


def test_fingerprint_reports_availability_and_per_modality_stats(tmp_path, nnunet_roots):
    raw = _convert(tmp_path, 604, seed=4, n=5, spacing=4.0, missing_rate=0.4)
    from brainmvp_nnunet.planners.fingerprint import BrainMVPFingerprintExtractor

    fingerprint = BrainMVPFingerprintExtractor(604, num_processes=1).run()
    section = fingerprint["brainmvp"]
    available = json.loads((raw / "dataset.json").read_text())["brainmvp"]["available_slots"]
    for slot, count in section["availability_counts"].items():
        assert count == sum(slot in slots for slots in available.values())
    # Statistics per modality come from the cases that have it only: no zero-filled channel drags them to 0.
    for slot, stats in section["intensity_statistics_per_modality"].items():
        assert stats["min"] > 0, slot
    saved = json.loads(next(nnunet_roots["nnUNet_preprocessed"].glob("Dataset604_*"))
                       .joinpath("dataset_fingerprint.json").read_text())
    assert saved["brainmvp"] == json.loads(json.dumps(section))


@pytest.fixture()
def nnunet_with_plugins(tmp_path) -> Path:
    """A copy of nnunetv2 with our shims, first on PYTHONPATH: the installed package is never touched."""
    site = tmp_path / "site"
    shutil.copytree(nnunet_package_dir(), site / "nnunetv2", ignore=shutil.ignore_patterns("__pycache__"))
    install_plugins(site / "nnunetv2")
    return site


def _run(command: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, f"{command[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.slow
def test_stock_nnunet_clis_plan_train_predict(tmp_path, nnunet_roots, nnunet_with_plugins):
    raw = _convert(tmp_path, 605, seed=5, n=5, spacing=3.0)  # 5 folds need 5 cases
    env = {**os.environ, "PYTHONPATH": str(nnunet_with_plugins)}
    env.pop("nnUNet_extTrainer", None)  # the shim alone must make the trainer findable
    _run([str(BIN / "nnUNetv2_plan_and_preprocess"), "-d", "605", "-pl", "BrainMVPPlanner_Tiny32",
          "-fpe", "BrainMVPFingerprintExtractor", "-c", "3d_fullres", "-np", "1"], env)
    plans = json.loads((nnunet_roots["nnUNet_preprocessed"] / raw.name / "BrainMVPPlans.json").read_text())
    assert plans["configurations"]["3d_fullres"]["architecture"]["network_class_name"] == \
        "brainmvp_nnunet.networks.segmentation.UniFormerSegNet"

    train_env = {**env, "nnUNet_n_proc_DA": "0"}
    _run([str(BIN / "nnUNetv2_train"), "605", "3d_fullres", "0", "-tr", "nnUNetTrainerBrainMVPTiny",
          "-p", "BrainMVPPlans", "-device", "cpu"], train_env)
    model = nnunet_roots["nnUNet_results"] / raw.name / "nnUNetTrainerBrainMVPTiny__BrainMVPPlans__3d_fullres"
    assert (model / "fold_0" / "checkpoint_final.pth").is_file()
    assert (model / "fold_0" / "validation" / "summary.json").is_file()

    # Stock predict, with the trainer found through nnUNet_extTrainer this time (no shim on the path).
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    case = sorted((raw / "imagesTr").iterdir())[0].name.rsplit("_", 1)[0]
    for image in (raw / "imagesTr").glob(f"{case}_*.nii.gz"):
        shutil.copy(image, inputs / image.name)
    predict_env = {**os.environ, "nnUNet_extTrainer": ext_trainer_value()}
    _run([str(BIN / "nnUNetv2_predict"), "-i", str(inputs), "-o", str(tmp_path / "pred"), "-d", "605", "-c",
          "3d_fullres", "-f", "0", "-tr", "nnUNetTrainerBrainMVPTiny", "-p", "BrainMVPPlans", "-device", "cpu",
          "--disable_progress_bar", "-npp", "1", "-nps", "1"], predict_env)
    prediction = nib.load(str(tmp_path / "pred" / f"{case}.nii.gz"))
    reference = nib.load(str(raw / "labelsTr" / f"{case}.nii.gz"))
    assert prediction.shape == reference.shape
    np.testing.assert_allclose(prediction.affine, reference.affine, atol=1e-4)
    assert set(np.unique(np.asarray(prediction.dataobj)).tolist()) <= {0, 1, 2, 3}
