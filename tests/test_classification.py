"""Downstream classification: class signal in the synthetic data, classifier network, summary, stock training."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transfer_fakes import TINY, tiny_segnet

from brainmvp_nnunet.data.anatomy import load_mni152
from brainmvp_nnunet.data.releases import CLASS_LABELS_NAME, MANIFEST_NAME, subject_rng, write_synthetic_release
from brainmvp_nnunet.data.synth import GRADES, SynthConfig, draw_subject
from brainmvp_nnunet.errors import EvaluationError, NetworkConfigError
from brainmvp_nnunet.evaluation.classification import CLASSIFICATION_METRICS, class_indices, classification_summary
from brainmvp_nnunet.evaluation.results import read_classification_summary
from brainmvp_nnunet.networks.classification import EncoderClassifier, classifier_from_segmentation_network
from brainmvp_nnunet.nnunet_env import ext_trainer_value
from brainmvp_nnunet.planners.variants import PRETRAINED_ENV

BIN = Path(sys.executable).parent


def test_grades_change_enhancement_and_necrosis_only_when_asked():
    anatomy = load_mni152()
    plain = draw_subject(subject_rng(1, 0), anatomy, SynthConfig(spacing=4.0))
    assert plain.grade is None
    drawn = [draw_subject(subject_rng(1, i), anatomy, SynthConfig(spacing=4.0, grades=True)) for i in range(12)]
    assert {p.grade for p in drawn} == set(GRADES)
    for params in drawn:
        et = params.tumour.compartments["et"]
        enhancement = et.t1 / params.tumour.et_t1_post  # > 1: gadolinium shortened T1
        assert (enhancement < 1.2) == (params.grade == "low")
    # the grade is drawn last: everything else is the subject drawn without grades
    first = draw_subject(subject_rng(1, 0), anatomy, SynthConfig(spacing=4.0, grades=True))
    assert first.snr == plain.snr and first.tumour.r_ed == plain.tumour.r_ed


@pytest.mark.parametrize(("labels", "names", "index"), [
    ({"a": "low", "b": "high", "c": "low"}, ["high", "low"], {"a": 1, "b": 0, "c": 1}),
    ({"a": "NC", "b": "MCI", "c": "AD"}, ["AD", "MCI", "NC"], {"a": 2, "b": 1, "c": 0}),
])
def test_class_indices_are_sorted_names(labels, names, index):
    assert class_indices({"brainmvp": {"class_labels": labels}}) == (names, index)


@pytest.mark.parametrize("dataset_json", [{}, {"brainmvp": {}}, {"brainmvp": {"class_labels": {"a": "x", "b": "x"}}}])
def test_class_indices_need_two_classes(dataset_json):
    with pytest.raises(EvaluationError, match="class_labels"):
        class_indices(dataset_json)


def test_classification_summary_round_trip(tmp_path):
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    summary = classification_summary(["a", "b", "c", "d"], [0, 1, 1, 0], probabilities, ["high", "low"], task="grade")
    assert summary["metrics"]["accuracy"] == 0.5 and summary["metric_per_case"][2]["predicted"] == "high"
    path = tmp_path / "Trainer__Plans__3d_fullres" / "fold_3" / "validation" / "classification_summary.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(summary))
    rows = read_classification_summary(path, budget=0.5)
    fold_rows = {r["metric"]: r["value"] for r in rows if r["case"] == ""}
    assert set(fold_rows) == set(CLASSIFICATION_METRICS) and fold_rows["AUC"] == 0.75
    per_case = {r["case"]: r["value"] for r in rows if r["metric"] == "p_true_class"}
    assert per_case == {"a": 0.9, "b": 0.8, "c": 0.4, "d": 0.3}
    assert {(r["arm"], r["fold"], r["region"], r["budget"]) for r in rows} == {
        ("Trainer__Plans__3d_fullres", "3", "grade", 0.5)}


def test_classifier_uses_the_segmentation_encoder():
    segnet = tiny_segnet(in_channels=4)
    classifier = classifier_from_segmentation_network(segnet, num_classes=3, hidden=16)
    assert classifier.encoder is segnet.encoder
    assert classifier(torch.randn(2, 4, 32, 32, 32)).shape == (2, 3)
    assert TINY["widths"][-1] == classifier.head[0].in_features


@pytest.mark.parametrize(("build", "message"), [
    (lambda: classifier_from_segmentation_network(torch.nn.Linear(2, 2), 2), "no `encoder`"),
    (lambda: EncoderClassifier(tiny_segnet().encoder, 1), "at least 2 classes"),
    (lambda: EncoderClassifier(torch.nn.Identity(), 2), "out_channels"),
])
def test_classifier_refuses_what_it_cannot_build(build, message):
    with pytest.raises(NetworkConfigError, match=message):
        build()


@pytest.mark.slow
def test_stock_train_classifier_writes_the_summary(tmp_path, nnunet_roots):
    from test_finetune import _artefact

    from brainmvp_nnunet.dataset_conversion import convert
    from brainmvp_nnunet.planners.api import plan_and_preprocess
    from brainmvp_nnunet.workflows.finetune import prepare_finetune_plans

    src = write_synthetic_release(tmp_path / "src", "generic-grade", 6, seed=2, spacing=3.0, progress=False)
    grades = json.loads((src / CLASS_LABELS_NAME).read_text())
    manifest = json.loads((src / MANIFEST_NAME).read_text())
    assert grades == {c["case"]: c["grade"] for c in manifest["cases"]} and set(grades.values()) == set(GRADES)
    raw = convert("generic", src, 612)
    assert json.loads((raw / "dataset.json").read_text())["brainmvp"]["class_labels"] == grades
    plan_and_preprocess(612, "BrainMVPPlanner_Tiny32", num_processes=1, verify_integrity=False)
    artefact = _artefact(tmp_path / "brainmvp_pretrained.pt", TINY)
    plans = prepare_finetune_plans(612, "BrainMVPPlans", artefact)

    env = {**os.environ, "nnUNet_extTrainer": ext_trainer_value(), "nnUNet_n_proc_DA": "0"}
    env.pop(PRETRAINED_ENV, None)
    result = subprocess.run([str(BIN / "nnUNetv2_train"), "612", "3d_fullres", "0", "-tr",
                             "nnUNetTrainerBrainMVPClassifier_Tiny", "-p", plans, "-device", "cpu"],
                            env=env, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    fold = raw.parent.parent / "nnUNet_results" / raw.name / \
        f"nnUNetTrainerBrainMVPClassifier_Tiny__{plans}__3d_fullres" / "fold_0"
    log = next(fold.glob("training_log_*.txt")).read_text()
    assert "tensors loaded (100.0 %)" in log
    summary = json.loads((fold / "validation" / "classification_summary.json").read_text())
    assert set(summary["metrics"]) == set(CLASSIFICATION_METRICS)
    assert 0.0 <= summary["metrics"]["accuracy"] <= 1.0 and not math.isnan(summary["metrics"]["balanced_accuracy"])
    splits = json.loads((raw.parent.parent / "nnUNet_preprocessed" / raw.name / "splits_final.json").read_text())
    assert [c["case"] for c in summary["metric_per_case"]] == sorted(splits[0]["val"])
    for case in summary["metric_per_case"]:
        assert case["label"] == grades[case["case"]] and math.isclose(sum(case["probabilities"]), 1.0, rel_tol=1e-5)
    assert not list((fold / "validation").glob("*.nii.gz"))  # no segmentation export
