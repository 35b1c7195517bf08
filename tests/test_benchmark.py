"""Benchmark: configuration checks, job scheduling, an end-to-end resumable run and `brainmvp report`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from benchmark_fakes import record_job
from transfer_fakes import TINY

from brainmvp_nnunet.benchmark.collect import is_finished, regions_of
from brainmvp_nnunet.benchmark.config import expand_jobs, load_config, parse_config
from brainmvp_nnunet.benchmark.scheduling import run_jobs
from brainmvp_nnunet.cli import main
from brainmvp_nnunet.data.releases import write_synthetic_release
from brainmvp_nnunet.errors import BenchmarkError, EvaluationError
from brainmvp_nnunet.evaluation.classification import CLASSIFICATION_METRICS, classification_summary
from brainmvp_nnunet.evaluation.report import box_plot_figure
from brainmvp_nnunet.planners.variants import BUDGET_KEY
from brainmvp_nnunet.workflows.benchmark import plans_budget, report_results

SCRATCH = {"name": "scratch", "trainer": "T"}


def _raw(**changes) -> dict:
    raw = {"dataset": 1, "folds": [0, 1], "budgets": {"fractions": [1.0, 0.5]}, "arms": [SCRATCH, {**SCRATCH,
                                                                                              "name": "other",
                                                                                              "trainer": "U"}]}
    raw.update(changes)
    return raw


def test_config_defaults_paths_and_job_order(tmp_path):
    (tmp_path / "w.pt").write_bytes(b"")
    config = parse_config(_raw(output="out", arms=[SCRATCH, {"name": "bmvp", "trainer": "T", "pretrained": "w.pt"}]),
                          tmp_path)
    assert config.budgets == (0.5, 1.0) and config.output == tmp_path / "out"
    assert config.arms[1].pretrained == tmp_path / "w.pt" and config.arms[1].plans == "BrainMVPPlans"
    assert [j.describe() for j in expand_jobs(config)][:3] == [
        "arm=scratch budget=0.5 fold=0", "arm=bmvp budget=0.5 fold=0", "arm=scratch budget=0.5 fold=1"]
    assert len(expand_jobs(config)) == 8


@pytest.mark.parametrize(("changes", "message"), [
    ({"epochs": 3}, "top level: unknown key"),
    ({"budgets": {"fractions": [0.0, 1.0]}}, r"in \(0, 1\]"),
    ({"budgets": {"fractions": [1.5]}}, r"in \(0, 1\]"),
    ({"budgets": {"fraction": [0.5]}}, r"\[budgets\]: unknown key"),
    ({"metrics": {"convention": "kaggle"}}, "convention"),
    ({"metrics": {"tolerance": 1}}, r"\[metrics\]: unknown key"),
    ({"arms": [{**SCRATCH, "name": "a"}, {**SCRATCH, "name": "b", "trainer": "U"}]}, "named 'scratch'"),
    ({"arms": [SCRATCH, {**SCRATCH, "trainer": "U"}]}, "duplicate arm name"),
    ({"arms": [SCRATCH, {**SCRATCH, "name": "b"}]}, "same results folder"),
    ({"arms": [SCRATCH, {"name": "b", "trainer": "T", "pretrained": "missing.pt"}]}, "not found"),
    ({"arms": [{**SCRATCH, "lr": 1}]}, r"\[\[arms\]\] #1: unknown key"),
    ({"arms": [{**SCRATCH, "task": "regression"}]}, "task"),
    ({"arms": [{"name": "scratch"}]}, "missing key 'trainer'"),
    ({"folds": [0, 0]}, "distinct"),
    ({"dataset": "500"}, "wrong type"),
    ({"metrics": {"p_values": 1}}, "wrong type"),
])
def test_config_errors_are_clear(tmp_path, changes, message):
    with pytest.raises(BenchmarkError, match=message):
        parse_config(_raw(**changes), tmp_path)


def test_without_p_values_no_scratch_arm_is_needed(tmp_path):
    arms = [{**SCRATCH, "name": "a"}, {**SCRATCH, "name": "b", "trainer": "U"}]
    assert parse_config(_raw(arms=arms, metrics={"p_values": False}), tmp_path).arms[0].name == "a"


def test_load_config_reports_toml_errors(tmp_path):
    path = tmp_path / "b.toml"
    path.write_text("dataset = \n")
    with pytest.raises(BenchmarkError, match="not valid TOML"):
        load_config(path)


def test_sequential_jobs_run_in_order_and_failures_are_collected(tmp_path):
    outcomes = run_jobs([(tmp_path, "a"), (tmp_path, "fail"), (tmp_path, "b")], record_job)
    assert [o.error is None for o in outcomes] == [True, False, True]
    assert "fails on purpose" in outcomes[1].error and outcomes[0].gpu is None
    assert (tmp_path / "a.txt").is_file() and (tmp_path / "b.txt").is_file()


def test_gpu_workers_share_the_queue_with_one_visible_device_each(tmp_path):
    names = [f"job{i}" for i in range(6)]
    outcomes = run_jobs([(tmp_path, n) for n in [*names, "fail"]], record_job, gpus=["0", "1"])
    assert [o.index for o in outcomes] == list(range(7)) and outcomes[-1].error
    for name, outcome in zip(names, outcomes, strict=False):
        # each job ran exactly once, on the GPU its outcome names, seeing only that GPU
        assert (tmp_path / f"{name}.txt").read_text() == f"{outcome.gpu}\n"
    assert {o.gpu for o in outcomes} == {"0", "1"}


CONFIG = """\
dataset = 613
folds = [0, 1]
output = "report"

[budgets]
fractions = [0.5, 1.0]

[metrics]
tolerance_mm = 3.0

[[arms]]
name = "scratch"
trainer = "nnUNetTrainerBrainMVP_Tiny"

[[arms]]
name = "pretrained"
trainer = "nnUNetTrainerBrainMVP_Tiny"
pretrained = "brainmvp_pretrained.pt"
"""


def _finals(results: Path) -> dict[str, float]:
    return {str(p.relative_to(results)): p.stat().st_mtime_ns for p in results.rglob("checkpoint_final.pth")}


@pytest.mark.slow
def test_benchmark_end_to_end_resumes_and_reports(tmp_path, nnunet_roots, monkeypatch, capsys):
    from test_finetune import _artefact

    from brainmvp_nnunet.dataset_conversion import convert
    from brainmvp_nnunet.planners.api import plan_and_preprocess
    from brainmvp_nnunet.workflows import benchmark

    src = write_synthetic_release(tmp_path / "src", "brats2023-gli", 6, seed=4, spacing=3.0, progress=False)
    convert("brats2023-gli", src, 613)
    plan_and_preprocess(613, "BrainMVPPlanner_Tiny32", num_processes=1, verify_integrity=False)
    _artefact(tmp_path / "brainmvp_pretrained.pt", TINY)
    config = tmp_path / "benchmark.toml"
    config.write_text(CONFIG)
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    results = nnunet_roots["nnUNet_results"]

    # interrupted during the third run (Ctrl-C): two runs are finished
    real_run_finetune, calls = benchmark.run_finetune, []

    def interrupted(*args, **kwargs):
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_run_finetune(*args, **kwargs)

    monkeypatch.setattr(benchmark, "run_finetune", interrupted)
    assert main(["benchmark", str(config)]) == 130
    first = _finals(results)
    assert len(first) == 2

    monkeypatch.setattr(benchmark, "run_finetune", real_run_finetune)
    assert main(["benchmark", str(config)]) == 0
    out = capsys.readouterr().out
    assert "[benchmark 1/8] arm=scratch budget=0.5 fold=0 finished, skipped" in out
    assert "[benchmark 3/8] arm=scratch budget=0.5 fold=1 training" in out
    second = _finals(results)
    assert len(second) == 8 and all(second[k] == v for k, v in first.items())

    assert main(["benchmark", str(config)]) == 0
    assert capsys.readouterr().out.count("finished, skipped") == 8 and _finals(results) == second

    report = tmp_path / "report"
    table = pd.read_csv(report / "per_case.csv")
    assert set(table["arm"]) == {"scratch", "pretrained"} and set(table["budget"]) == {0.5, 1.0}
    assert set(table["fold"]) == {0, 1} and set(table["metric"]) == {"Dice", "HD95", "NSD"}
    assert set(table["region"]) == {"whole tumor", "tumor core", "enhancing tumor"}  # named BraTS regions
    markdown = (report / "report.md").read_text()
    assert "p vs scratch" in markdown and "NSD" in markdown and "3 mm" in markdown
    plots = sorted((report / "plots").glob("*.png"))
    assert {p.name for p in plots} >= {"box_Dice_whole-tumor.png", "budget_Dice.png"}
    for plot in plots:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and matplotlib.image.imread(plot).ndim == 3
    figure = box_plot_figure(table.assign(fold=table["fold"].astype(str)), "Dice", "whole tumor")
    assert [len(ax.patches) for ax in figure.axes] == [2, 2]  # one box per arm in each budget panel
    budget_log = next((results / "Dataset613_BraTS2023-GLI").glob(
        "nnUNetTrainerBrainMVP_Tiny__BrainMVPPlans_budget50__3d_fullres/fold_0/training_log_*.txt")).read_text()
    assert "label budget 0.5: 2 of 4 training cases" in budget_log
    runs = json.loads((report / "runs.json").read_text())
    assert len(runs) == 8 and all(Path(r["fold_dir"]).is_dir() for r in runs)

    # the same report for results folders made by anyone (here: two of the benchmark's)
    folders = [results / "Dataset613_BraTS2023-GLI" / f"nnUNetTrainerBrainMVP_Tiny__{p}__3d_fullres"
               for p in ("BrainMVPPlans", "BrainMVPPlans_pretrained")]
    assert main(["report", *map(str, folders), "-o", str(tmp_path / "stock"), "--recompute-surface",
                 "--tolerance-mm", "3"]) == 0
    stock = pd.read_csv(tmp_path / "stock" / "per_case.csv")
    assert set(stock["arm"]) == {f.name for f in folders} and set(stock["metric"]) == {"Dice", "HD95", "NSD"}
    assert main(["report", *map(str, folders), "-o", str(tmp_path / "dice")]) == 0
    assert set(pd.read_csv(tmp_path / "dice" / "per_case.csv")["metric"]) == {"Dice"}
    assert os.path.isfile(tmp_path / "dice" / "plots" / "budget_Dice.png")


@pytest.mark.parametrize(("dataset_json", "regions"), [
    ({"labels": {"background": 0, "NCR": 1, "ED": 2, "ET": 3}}, [1, 2, 3]),
    ({"labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [1, 3], "enhancing tumor": 3},
      "regions_class_order": [2, 1, 3]}, [(1, 2, 3), (1, 3), 3]),
    ({"labels": {"background": 0, "whole tumor": [1, 2, 3], "enhancing tumor": [3]},
      "regions_class_order": [1, 3]}, [(1, 2, 3), (3,)]),
])
def test_regions_follow_the_dataset_json(dataset_json, regions):
    assert regions_of(dataset_json) == regions


@pytest.mark.parametrize(("files", "task", "finished"), [
    (["checkpoint_final.pth", "validation/summary.json"], "segmentation", True),
    (["checkpoint_latest.pth", "validation/summary.json"], "segmentation", False),
    (["checkpoint_final.pth"], "segmentation", False),
    (["checkpoint_final.pth", "validation/summary.json"], "classification", False),
    (["checkpoint_final.pth", "validation/classification_summary.json"], "classification", True),
])
def test_a_run_is_finished_with_final_checkpoint_and_validation(tmp_path, files, task, finished):
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    assert is_finished(tmp_path, task) is finished


@pytest.mark.parametrize(("plans", "budget"), [({}, 1.0), ({BUDGET_KEY: {"fraction": 0.4, "seed": 0}}, 0.4)])
def test_budget_of_a_results_folder_comes_from_its_plans(plans, budget):
    assert plans_budget(plans) == budget


def test_report_of_classification_results_folders(tmp_path):
    cases, truth = ["a", "b", "c", "d"], [0, 1, 1, 0]
    folders = []
    for arm, shift in (("Classifier__Plans__3d_fullres", 0.0), ("Classifier__Plans_pretrained__3d_fullres", 0.3)):
        folders.append(tmp_path / "Dataset001_X" / arm)
        for fold in (0, 1):
            fold_dir = folders[-1] / f"fold_{fold}"
            (fold_dir / "validation").mkdir(parents=True)
            (fold_dir / "checkpoint_final.pth").write_bytes(b"")
            low = np.clip(np.array([0.4, 0.5, 0.6, 0.3]) + shift * (np.array(truth) - 0.5) + 0.05 * fold, 0, 1)
            summary = classification_summary(cases, truth, np.stack([1 - low, low], 1), ["high", "low"])
            (fold_dir / "validation" / "classification_summary.json").write_text(json.dumps(summary))
    files = report_results(folders, tmp_path / "out")
    table = pd.read_csv(files.csv, keep_default_na=False)
    assert set(table["region"]) == {"classification"} and set(table["arm"]) == {f.name for f in folders}
    assert set(table["metric"]) == {*CLASSIFICATION_METRICS, "p_true_class"}
    assert len(table[(table["metric"] == "AUC")]) == 4 and set(table[table["metric"] == "AUC"]["case"]) == {""}
    markdown = files.markdown.read_text()
    assert "## balanced_accuracy" in markdown and "convention" not in markdown
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in files.plots)


def test_report_needs_finished_folds(tmp_path):
    (tmp_path / "T__P__3d_fullres" / "fold_0").mkdir(parents=True)
    with pytest.raises(EvaluationError, match="no finished fold"):
        report_results([tmp_path / "T__P__3d_fullres"], tmp_path / "out")
