"""Fine-tuning: checkpoint source, label budgets, plans variants, stock nnUNetv2_train with and without weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transfer_fakes import TINY, tiny_uniformer

from brainmvp_nnunet.benchmark.budgets import BudgetError, budget_size, budget_subset
from brainmvp_nnunet.cli import main
from brainmvp_nnunet.data.releases import write_synthetic_release
from brainmvp_nnunet.errors import PlanningError
from brainmvp_nnunet.nnunet_env import ext_trainer_value
from brainmvp_nnunet.planners.variants import FINETUNE_KEY, PRETRAINED_ENV, variant_name
from brainmvp_nnunet.trainers.finetune import pretrained_source
from brainmvp_nnunet.transfer import PretrainedArtefact, save_artefact

BIN = Path(sys.executable).parent


@pytest.mark.parametrize(("environ", "plans", "expected"), [
    ({}, {}, None),
    ({}, {FINETUNE_KEY: {"pretrained": "/p/plans.pt"}}, "/p/plans.pt"),
    ({PRETRAINED_ENV: "/p/env.pt"}, {FINETUNE_KEY: {"pretrained": "/p/plans.pt"}}, "/p/env.pt"),
    ({PRETRAINED_ENV: ""}, {FINETUNE_KEY: {"pretrained": "/p/plans.pt"}}, "/p/plans.pt"),
])
def test_pretrained_source_precedence(environ, plans, expected):
    assert pretrained_source(plans, environ)[0] == expected


@pytest.mark.parametrize(("n", "fraction", "size"), [(10, 1.0, 10), (10, 0.4, 4), (10, 0.2, 2), (7, 0.2, 2),
                                                      (3, 0.1, 1), (5, 0.6, 3)])
def test_budget_size(n, fraction, size):
    assert budget_size(n, fraction) == size


@pytest.mark.parametrize("fraction", [0.0, -0.2, 1.5])
def test_budget_outside_unit_interval_refused(fraction):
    with pytest.raises(BudgetError):
        budget_size(10, fraction)


def test_budgets_are_nested_seeded_and_order_free():
    keys = [f"case{i:02d}" for i in range(20)]
    small, medium, full = (budget_subset(keys, f, seed=3) for f in (0.2, 0.4, 1.0))
    assert set(small) < set(medium) < set(full) == set(keys)
    assert budget_subset(list(reversed(keys)), 0.4, seed=3) == medium
    assert budget_subset(keys, 0.4, seed=4) != medium


@pytest.mark.parametrize(("suffix", "expected"), [("pretrained", "BrainMVPPlans_pretrained"),
                                                  ("my run/2", "BrainMVPPlans_my-run-2"),
                                                  ("a__b", "BrainMVPPlans_a-b")])
def test_variant_names_never_contain_double_underscores(suffix, expected):
    assert variant_name("BrainMVPPlans", suffix) == expected


def test_variant_name_needs_characters():
    with pytest.raises(PlanningError):
        variant_name("BrainMVPPlans", "__")


def _artefact(path: Path, arch: dict) -> Path:
    encoder = tiny_uniformer(1, seed=5, arch=arch)
    return save_artefact(PretrainedArtefact(
        network_class="brainmvp_nnunet.networks.segmentation.UniFormerSegNet", arch_kwargs=dict(arch),
        encoder_state_dict=encoder.state_dict(), reconstruction_head_state_dict={},
        templates=torch.zeros(4, 2, 2, 2), template_slots=["flair", "t1", "t1c", "t2"],
        template_spacing=[3.0, 3.0, 3.0], normalization=["ZScoreNormalization"] * 4, spacing=[3.0, 3.0, 3.0],
        patch_size=[32, 32, 32]), path)


@pytest.fixture()
def planned_dataset(tmp_path, nnunet_roots) -> Path:
    from brainmvp_nnunet.dataset_conversion import convert
    from brainmvp_nnunet.planners.api import plan_and_preprocess

    src = write_synthetic_release(tmp_path / "src", "brats2023-gli", 5, seed=21, spacing=3.0, progress=False)
    raw = convert("brats2023-gli", src, 611)
    plan_and_preprocess(611, "BrainMVPPlanner_Tiny32", num_processes=1, verify_integrity=False)
    return raw


def test_incompatible_checkpoint_refused_before_training(tmp_path, planned_dataset, nnunet_roots, capsys):
    wide = _artefact(tmp_path / "wide.pt", {**TINY, "widths": [16, 32, 80, 128], "head_dim": 16})
    code = main(["finetune", "-d", "611", "--pretrained", str(wide), "--plans-only"])
    err = capsys.readouterr().err
    assert code == 2 and "refusing to fine-tune" in err and "patch_embed1" in err
    assert not list(nnunet_roots["nnUNet_preprocessed"].glob("*/BrainMVPPlans_*.json"))


def _train(fold_plans: str, env: dict) -> Path:
    result = subprocess.run([str(BIN / "nnUNetv2_train"), "611", "3d_fullres", "0", "-tr",
                             "nnUNetTrainerBrainMVP_Tiny", "-p", fold_plans, "-device", "cpu"],
                            env=env, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return Path(os.environ["nnUNet_results"]) / "Dataset611_BraTS2023-GLI" / \
        f"nnUNetTrainerBrainMVP_Tiny__{fold_plans}__3d_fullres" / "fold_0"


@pytest.mark.slow
def test_pretrain_then_stock_finetune_with_and_without_encoder_then_stock_predict(tmp_path, planned_dataset,
                                                                                 nnunet_roots, monkeypatch, capsys):
    from brainmvp_nnunet.workflows.pretrain import run_pretraining

    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    artefact = run_pretraining(611, trainer="nnUNetTrainerBrainMVPPretrain_Tiny")  # brief, on the same images
    monkeypatch.delenv("nnUNet_n_proc_DA")
    assert main(["finetune", "-d", "611", "--pretrained", str(artefact), "--plans-only"]) == 0
    assert "plans: BrainMVPPlans_pretrained" in capsys.readouterr().out
    env = {**os.environ, "nnUNet_extTrainer": ext_trainer_value(), "nnUNet_n_proc_DA": "0"}
    env.pop(PRETRAINED_ENV, None)

    pretrained = _train("BrainMVPPlans_pretrained", env)
    log = next(pretrained.glob("training_log_*.txt")).read_text()
    assert f"pre-trained encoder: {artefact.resolve()}" in log
    assert "tensors loaded (100.0 %)" in log and "1 adapted" in log
    assert (pretrained / "validation" / "summary.json").is_file()
    plans_copy = json.loads((pretrained.parent / "plans.json").read_text())
    assert plans_copy[FINETUNE_KEY]["pretrained"] == str(artefact.resolve())

    scratch = _train("BrainMVPPlans", env)
    log = next(scratch.glob("training_log_*.txt")).read_text()
    assert "pre-trained encoder: none (from none (training from scratch))" in log
    assert (scratch / "validation" / "summary.json").is_file()

    images = sorted((planned_dataset / "imagesTr").iterdir())[:4]  # one case, 4 channels
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for image in images:
        (inputs / image.name).write_bytes(image.read_bytes())
    result = subprocess.run([str(BIN / "nnUNetv2_predict"), "-i", str(inputs), "-o", str(tmp_path / "pred"), "-d",
                             "611", "-c", "3d_fullres", "-f", "0", "-tr", "nnUNetTrainerBrainMVP_Tiny", "-p",
                             "BrainMVPPlans_pretrained", "-device", "cpu", "--disable_progress_bar", "-npp", "1",
                             "-nps", "1"], env=env, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    case = images[0].name.rsplit("_", 1)[0]
    assert (tmp_path / "pred" / f"{case}.nii.gz").is_file()
