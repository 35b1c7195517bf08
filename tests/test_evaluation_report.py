"""Report files (CSV, markdown, PNG) and rows from stock nnU-Net results."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from brainmvp_nnunet.errors import EvaluationError
from brainmvp_nnunet.evaluation.metrics import compute_case_metrics, convention_line
from brainmvp_nnunet.evaluation.report import box_plot_figure, budget_plot_figure, markdown_report, write_report
from brainmvp_nnunet.evaluation.results import evaluate_folder, infer_arm_and_fold, read_nnunet_summary
from brainmvp_nnunet.evaluation.stats import TIDY_COLUMNS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ARMS = ["scratch", "brainmvp", "brainmvp-frozen"]
REGIONS = ["(1, 2, 3)", "(2, 3)", "(3,)"]
BUDGETS = [0.2, 0.4, 1.0]


def benchmark_rows(seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for arm in ARMS:
        for budget in BUDGETS:
            for case in range(6):
                for region in REGIONS:
                    for metric in ("Dice", "HD95"):
                        # case 0 has no enhancing tumour: NaN under nnU-Net's convention
                        value = math.nan if (case == 0 and region == "(3,)") else float(rng.random())
                        rows.append({"arm": arm, "budget": budget, "fold": case % 2, "case": f"case_{case}",
                                     "region": region, "metric": metric, "value": value})
    return rows


def test_write_report_files(tmp_path):
    regions = REGIONS[1:]  # two regions keep the plotting time down
    rows = [r for r in benchmark_rows() if r["region"] in regions]
    files = write_report(rows, tmp_path / "report", convention="nnunet", tolerance_mm=1.0)
    assert files.csv.is_file() and files.markdown.is_file()
    csv = pd.read_csv(files.csv)
    assert tuple(csv.columns) == TIDY_COLUMNS
    assert len(csv) == len(ARMS) * len(BUDGETS) * 6 * len(regions) * 2
    # 2 metrics x (one box plot per region + one budget plot)
    assert len(files.plots) == 2 * (len(regions) + 1)
    for plot in files.plots:
        assert plot.read_bytes()[:8] == PNG_MAGIC, plot
    text = files.markdown.read_text()
    assert convention_line("nnunet", tolerance_mm=1.0) in text
    assert text.index("Empty-reference convention") < text.index("| region | budget | arm |")
    assert "## Dice" in text and "## HD95" in text and "p vs scratch" in text
    table_rows = [line for line in text.splitlines() if line.startswith("| (")]
    assert len(table_rows) == 2 * len(regions) * len(BUDGETS) * len(ARMS)
    assert all(any(f"| {arm} |" in line for line in table_rows) for arm in ARMS)
    assert "| (3,) | 0.2 | scratch | 5 (1 NaN) |" in text
    assert all(f"({p.relative_to(files.markdown.parent).as_posix()})" in text for p in files.plots)


@pytest.mark.parametrize("n_arms", [2, 3])
def test_box_plot_has_one_box_per_arm_in_every_budget_panel(n_arms):
    rows = [r for r in benchmark_rows() if r["arm"] in ARMS[:n_arms]]
    fig = box_plot_figure(pd.DataFrame(rows), "Dice", "(3,)")
    assert len(fig.axes) == len(BUDGETS)
    for ax in fig.axes:
        assert len(ax.patches) == n_arms  # patch_artist boxes
        assert [t.get_text() for t in ax.get_xticklabels()] == ARMS[:n_arms]


def test_box_plot_lays_out_long_arm_names():
    """Stock runs are named by their results folder; the rotated labels must fit (no collapsed axes)."""
    import warnings

    from brainmvp_nnunet.evaluation.report import _png_bytes

    long_names = {arm: f"nnUNetTrainerBrainMVP_Tiny__BrainMVPPlans_{arm}__3d_fullres" for arm in ARMS[1:]}
    rows = [{**r, "arm": long_names.get(r["arm"], r["arm"])} for r in benchmark_rows()]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns when constrained layout cannot fit the axes
        _png_bytes(box_plot_figure(pd.DataFrame(rows), "Dice", "(3,)"))


def test_plots_of_absent_metric_or_region_raise():
    table = pd.DataFrame(benchmark_rows())
    with pytest.raises(EvaluationError, match="no 'NSD'"):
        budget_plot_figure(table, "NSD")
    with pytest.raises(EvaluationError, match="region '4'"):
        box_plot_figure(table, "Dice", "4")


def test_budget_plot_has_one_line_per_arm_per_region():
    fig = budget_plot_figure(pd.DataFrame(benchmark_rows()), "Dice")
    assert len(fig.axes) == len(REGIONS)
    for ax in fig.axes:
        assert len(ax.containers) == len(ARMS)  # one ErrorbarContainer per arm
        assert list(ax.lines[0].get_xdata()) == BUDGETS


def test_markdown_for_classification_has_no_convention_line_and_gives_reasons():
    rows = [{"arm": arm, "budget": 1.0, "fold": fold, "case": None, "region": "HGG vs LGG", "metric": "AUC",
             "value": v} for arm, vals in {"scratch": [0.7], "brainmvp": [0.8]}.items() for fold, v in enumerate(vals)]
    text = markdown_report(rows, convention=None, title="Classification")
    assert "Empty-reference convention" not in text
    assert "| HGG vs LGG | 1 | brainmvp | 1 | 0.800 +/- NaN | n/a (1 finite pair(s), fewer than 2) |" in text


def write_summary(path: Path) -> Path:
    """A summary.json as nnU-Net 2.8.1's save_summary_json writes it (region keys, bare NaN)."""
    nan_case = {"Dice": math.nan, "IoU": math.nan, "FP": 0, "TP": 0, "FN": 0, "TN": 100, "n_pred": 0, "n_ref": 0}
    summary = {
        "foreground_mean": {"Dice": 0.8},
        "mean": {"(1, 2)": {"Dice": 0.8}, "(2,)": {"Dice": 0.6}},
        "metric_per_case": [
            {"metrics": {"(1, 2)": {"Dice": 0.9, "IoU": 0.8, "TP": 9}, "(2,)": {"Dice": 0.6, "IoU": 0.4, "TP": 3}},
             "prediction_file": "/r/fold_0/validation/BraTS_001.nii.gz", "reference_file": "/p/gt/BraTS_001.nii.gz"},
            {"metrics": {"(1, 2)": {"Dice": 0.7, "IoU": 0.5, "TP": 7}, "(2,)": nan_case},
             "prediction_file": "/r/fold_0/validation/BraTS_002.nii.gz", "reference_file": "/p/gt/BraTS_002.nii.gz"},
        ],
    }
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(summary, indent=4, sort_keys=True))
    assert "NaN" in path.read_text()
    return path


def test_read_nnunet_summary_rows_and_layout_inference(tmp_path):
    trainer = "nnUNetTrainer__nnUNetPlans__3d_fullres"
    path = write_summary(tmp_path / "Dataset001_X" / trainer / "fold_3" / "validation" / "summary.json")
    rows = read_nnunet_summary(path)
    assert [(r["case"], r["region"], r["value"]) for r in rows[:3]] == [
        ("BraTS_001", "(1, 2)", 0.9), ("BraTS_001", "(2,)", 0.6), ("BraTS_002", "(1, 2)", 0.7)]
    assert {(r["arm"], r["fold"], r["budget"], r["metric"]) for r in rows} == {(trainer, "3", 1.0, "Dice")}
    assert math.isnan(rows[3]["value"])
    all_metrics = read_nnunet_summary(path, arm="stock", fold=0, budget=0.5, metrics=None)
    assert {r["metric"] for r in all_metrics} >= {"Dice", "IoU", "TP", "n_ref"}
    assert {(r["arm"], r["fold"], r["budget"]) for r in all_metrics} == {("stock", "0", 0.5)}
    assert infer_arm_and_fold(tmp_path / "D" / trainer / "crossval_results_folds_0_1" / "summary.json") == (trainer, "")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(EvaluationError, match="summary.json"):
        read_nnunet_summary(tmp_path / "bad.json")


def write_seg(path: Path, array: np.ndarray, spacing_xyz=(1.0, 2.0, 3.0)) -> None:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(spacing_xyz)
    sitk.WriteImage(image, str(path))


@pytest.fixture()
def folder_pair(tmp_path):
    ref_dir, pred_dir = tmp_path / "gt", tmp_path / "trainer" / "fold_1" / "validation"
    ref_dir.mkdir()
    pred_dir.mkdir(parents=True)
    rng = np.random.default_rng(3)
    cases = {}
    for i in range(3):
        ref = np.zeros((10, 12, 14), dtype=np.uint8)
        ref[2:7, 3:9, 4:11] = 1
        ref[3:5, 4:7, 5:9] = 2
        pred = np.where(rng.random(ref.shape) > 0.9, (ref + 1) % 3, ref).astype(np.uint8)
        write_seg(ref_dir / f"case_{i}.nii.gz", ref)
        write_seg(pred_dir / f"case_{i}.nii.gz", pred)
        cases[f"case_{i}"] = (ref, pred)
    return ref_dir, pred_dir, cases


def test_evaluate_folder_matches_array_metrics_in_one_or_two_processes(folder_pair):
    ref_dir, pred_dir, cases = folder_pair
    regions = [(1, 2), 2]
    rows = evaluate_folder(ref_dir, pred_dir, regions, tolerance_mm=2.0, convention="brats", num_processes=1)
    assert {(r["arm"], r["fold"]) for r in rows} == {("trainer", "1")}
    for case, (ref, pred) in cases.items():
        # SimpleITK spacing (x, y, z) = (1, 2, 3) is (3, 2, 1) in numpy order
        want = compute_case_metrics(ref, pred, (3.0, 2.0, 1.0), regions, tolerance_mm=2.0, convention="brats")
        got = {(r["region"], r["metric"]): r["value"] for r in rows if r["case"] == case}
        assert got == {(k, m): v for k, values in want.items() for m, v in values.items()}
    parallel = evaluate_folder(ref_dir, pred_dir, regions, tolerance_mm=2.0, convention="brats", num_processes=2)
    assert parallel == rows
    hd_only = evaluate_folder(ref_dir, pred_dir, regions, metrics=("HD95",), arm="a", fold=0, budget=0.4)
    assert {(r["metric"], r["arm"], r["fold"], r["budget"]) for r in hd_only} == {("HD95", "a", "0", 0.4)}


def test_evaluate_folder_rejects_missing_or_mismatched_references(folder_pair):
    ref_dir, pred_dir, _ = folder_pair
    write_seg(ref_dir / "case_0.nii.gz", np.zeros((10, 12, 14)), spacing_xyz=(1.0, 1.0, 1.0))
    with pytest.raises(EvaluationError, match="does not match"):
        evaluate_folder(ref_dir, pred_dir, [1])
    (ref_dir / "case_1.nii.gz").unlink()
    with pytest.raises(EvaluationError, match="no reference for case_1"):
        evaluate_folder(ref_dir, pred_dir, [1])
