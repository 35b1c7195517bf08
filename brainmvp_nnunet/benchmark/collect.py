"""Finding finished runs in ``nnUNet_results`` and turning their validation output into report rows.

A run (one arm, budget and fold) is finished when its fold folder holds ``checkpoint_final.pth`` and
the validation result of its task: nnU-Net's ``validation/summary.json`` for segmentation, our
``validation/classification_summary.json`` for classification. Both the benchmark (which skips
finished runs) and ``brainmvp report`` (which reads results folders made by anyone) use this.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunetv2.utilities.label_handling.label_handling import LabelManager

from brainmvp_nnunet.errors import EvaluationError
from brainmvp_nnunet.evaluation.classification import CLASSIFICATION_SUMMARY_NAME
from brainmvp_nnunet.evaluation.metrics import RegionOrLabel, region_names
from brainmvp_nnunet.evaluation.results import evaluate_folder, read_classification_summary, read_nnunet_summary

_FOLD_FOLDER = re.compile(r"fold_(\d+|all)")


def validation_marker(fold_dir: Path, task: str) -> Path:
    """The file whose presence says that the validation of ``task`` finished."""
    name = CLASSIFICATION_SUMMARY_NAME if task == "classification" else "summary.json"
    return Path(fold_dir) / "validation" / name


def is_finished(fold_dir: Path, task: str) -> bool:
    """Training and validation of the run in ``fold_dir`` are complete."""
    return (Path(fold_dir) / "checkpoint_final.pth").is_file() and validation_marker(fold_dir, task).is_file()


def regions_of(dataset_json: dict) -> list[RegionOrLabel]:
    """nnU-Net's evaluation targets: the regions of a region-based dataset, else the foreground labels."""
    manager = LabelManager(dataset_json["labels"], dataset_json.get("regions_class_order"))
    if manager.has_regions:
        # a region written as a bare label stays an int, as nnU-Net's own evaluation keys it ("3", not "(3,)")
        return [tuple(int(label) for label in region) if isinstance(region, list | tuple) else int(region)
                for region in manager.foreground_regions]
    return [int(label) for label in manager.foreground_labels]


@dataclass(frozen=True)
class FinishedRun:
    """A fold folder of an nnU-Net results folder with its label budget and task."""

    fold_dir: Path
    fold: str
    budget: float
    task: str


def finished_runs(results_folder: Path, budget: float = 1.0) -> list[FinishedRun]:
    """The finished folds of a ``<Trainer>__<Plans>__<configuration>`` folder, all at label budget ``budget``.

    The task is classification where a classification summary exists, else segmentation.
    """
    runs = []
    for fold_dir in sorted(p for p in Path(results_folder).iterdir() if p.is_dir() and _FOLD_FOLDER.fullmatch(p.name)):
        task = "classification" if validation_marker(fold_dir, "classification").is_file() else "segmentation"
        if is_finished(fold_dir, task):
            runs.append(FinishedRun(fold_dir, fold_dir.name.removeprefix("fold_"), budget, task))
    return runs


def run_rows(run: FinishedRun, arm: str, *, gt_folder: Path | None, recompute: bool, convention: str = "nnunet",
             tolerance_mm: float = 1.0, num_processes: int = 1,
             metrics: Sequence[str] = ("Dice", "HD95", "NSD")) -> list[dict[str, object]]:
    """Report rows of one finished run.

    Args:
        run: the run.
        arm: the arm's name in the report.
        gt_folder: reference segmentations (``nnUNet_preprocessed/<Dataset>/gt_segmentations``); needed
            when ``recompute``.
        recompute: segmentation: compute ``metrics`` from the validation predictions (needed for HD95,
            NSD and the BraTS convention); otherwise Dice is read from nnU-Net's ``summary.json``.
        convention, tolerance_mm, num_processes: as :func:`~brainmvp_nnunet.evaluation.results.evaluate_folder`.
        metrics: segmentation metrics to recompute.

    Returns:
        Tidy rows.
    """
    marker = validation_marker(run.fold_dir, run.task)
    if run.task == "classification":
        return read_classification_summary(marker, arm=arm, fold=run.fold, budget=run.budget)
    dataset_json = json.loads((run.fold_dir.parent / "dataset.json").read_text())
    if not recompute:
        rows = read_nnunet_summary(marker, arm=arm, fold=run.fold, budget=run.budget)
    elif gt_folder is None or not Path(gt_folder).is_dir():
        raise EvaluationError(f"reference segmentations {gt_folder} not found (needed to recompute {run.fold_dir})")
    else:
        rows = evaluate_folder(gt_folder, marker.parent, regions_of(dataset_json), tolerance_mm=tolerance_mm,
                               convention=convention, metrics=metrics, file_ending=dataset_json["file_ending"],
                               num_processes=num_processes, arm=arm, fold=run.fold, budget=run.budget)
    # Reports name regions as dataset.json does ("whole tumor"), not by nnU-Net's key ("(1, 2, 3)").
    names = region_names(dataset_json["labels"])
    return [{**row, "region": names.get(str(row["region"]), row["region"])} for row in rows]
