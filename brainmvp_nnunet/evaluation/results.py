"""Rows for a report from stock nnU-Net output: ``summary.json`` files and prediction folders.

``read_nnunet_summary`` turns the Dice (and any other per-case metric) nnU-Net already computed into
tidy rows; ``evaluate_folder`` recomputes Dice, HD95 and NSD from a prediction folder and its
references, for one empty-mask convention. Under the BraTS convention take Dice from
``evaluate_folder`` too: nnU-Net's ``summary.json`` always uses NaN for "both empty".

Arm and fold default to what nnU-Net's folder layout says,
``<trainer>__<plans>__<configuration>/fold_<k>/validation/summary.json`` (arm = the trainer folder,
fold = ``k``; ``crossval_results_folds_*`` gives fold ``""``); the budget defaults to 1.0 (stock
nnU-Net trains on the whole training fold).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from brainmvp_nnunet.errors import EvaluationError
from brainmvp_nnunet.evaluation.metrics import (
    DEFAULT_NSD_TOLERANCE_MM,
    Convention,
    RegionOrLabel,
    compute_case_metrics,
)

_FOLD = re.compile(r"fold_(.+)")


def case_id(path: str | Path, file_ending: str = ".nii.gz") -> str:
    """Case identifier of an nnU-Net image or segmentation file (its name without ``file_ending``).

    Args:
        path: a file path.
        file_ending: nnU-Net's ``file_ending`` from ``dataset.json``.

    Returns:
        The case identifier, e.g. ``"BraTS_001"`` for ``.../BraTS_001.nii.gz``.
    """
    name = Path(path).name
    return name[: -len(file_ending)] if name.endswith(file_ending) else Path(name).stem


def infer_arm_and_fold(path: str | Path) -> tuple[str, str]:
    """Arm (the trainer folder) and fold that nnU-Net's results layout encodes in ``path``.

    Args:
        path: a ``summary.json`` or prediction folder inside ``nnUNet_results``.

    Returns:
        ``(arm, fold)``; the fold is ``""`` for cross-validation results and unknown layouts, where the
        arm is the parent folder's name.
    """
    path = Path(path).resolve()
    for part in (path, *path.parents):
        match = _FOLD.fullmatch(part.name)
        if match:
            return part.parent.name, match.group(1)
        if part.name.startswith("crossval_results_folds"):
            return part.parent.name, ""
    return path.parent.name, ""


def read_nnunet_summary(
    summary_json: str | Path,
    *,
    arm: str | None = None,
    fold: str | int | None = None,
    budget: float = 1.0,
    metrics: Sequence[str] | None = ("Dice",),
    file_ending: str = ".nii.gz",
) -> list[dict[str, object]]:
    """Tidy rows from nnU-Net's ``summary.json`` (``metric_per_case``).

    Args:
        summary_json: path of the file.
        arm: the arm's name; ``None`` = inferred from the path (:func:`infer_arm_and_fold`).
        fold: the fold; ``None`` = inferred from the path.
        budget: label budget of these results.
        metrics: which per-case metrics to keep (nnU-Net has Dice, IoU, TP, FP, FN, TN, n_pred, n_ref);
            ``None`` keeps all.
        file_ending: stripped from ``prediction_file`` to give the case id.

    Returns:
        Rows with keys ``arm, budget, fold, case, region, metric, value``; regions keep nnU-Net's keys
        (``"1"``, ``"(1, 2, 3)"``); NaN (both masks empty) stays NaN.
    """
    path = Path(summary_json)
    try:
        summary = json.loads(path.read_text())  # json accepts nnU-Net's bare NaN
        per_case = summary["metric_per_case"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EvaluationError(f"{path}: not a readable nnU-Net summary.json ({exc})") from exc
    inferred_arm, inferred_fold = infer_arm_and_fold(path)
    arm = inferred_arm if arm is None else arm
    fold = inferred_fold if fold is None else str(fold)
    rows: list[dict[str, object]] = []
    for entry in per_case:
        case = case_id(entry["prediction_file"], file_ending)
        for region, values in entry["metrics"].items():
            for metric, value in values.items():
                if metrics is None or metric in metrics:
                    rows.append(
                        {"arm": arm, "budget": budget, "fold": fold, "case": case, "region": region,
                         "metric": metric, "value": math.nan if value is None else float(value)}
                    )
    return rows


def read_classification_summary(
    summary_json: str | Path,
    *,
    arm: str | None = None,
    fold: str | int | None = None,
    budget: float = 1.0,
) -> list[dict[str, object]]:
    """Tidy rows from a classifier's ``validation/classification_summary.json``.

    One row per fold and metric (``case`` empty, ``region`` = the task): accuracy, balanced accuracy,
    AUC, F1; plus one row per case with ``metric = "p_true_class"``, the probability given to the true
    class, so that arms can also be compared case by case.

    Args:
        summary_json: path of the file (written by the classification trainer).
        arm: the arm's name; ``None`` = inferred from the path (:func:`infer_arm_and_fold`).
        fold: the fold; ``None`` = inferred from the path.
        budget: label budget of these results.

    Returns:
        Rows with keys ``arm, budget, fold, case, region, metric, value``.
    """
    path = Path(summary_json)
    try:
        summary = json.loads(path.read_text())
        task, metrics = summary["task"], summary["metrics"]
        names = summary["class_names"]
        per_case = [(e["case"], e["probabilities"][names.index(e["label"])]) for e in summary["metric_per_case"]]
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise EvaluationError(f"{path}: not a readable classification_summary.json ({exc})") from exc
    inferred_arm, inferred_fold = infer_arm_and_fold(path)
    base = {"arm": inferred_arm if arm is None else arm, "budget": budget,
            "fold": inferred_fold if fold is None else str(fold), "region": task}
    rows = [{**base, "case": "", "metric": metric, "value": math.nan if value is None else float(value)}
            for metric, value in metrics.items()]
    rows += [{**base, "case": case, "metric": "p_true_class", "value": float(p)} for case, p in per_case]
    return rows


def read_segmentation(path: str | Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """A label map and its spacing, both in numpy (z, y, x) order.

    Args:
        path: any image SimpleITK reads (``.nii.gz``, ``.nrrd``, ``.mha`` ...).

    Returns:
        ``(array, spacing)`` with spacing reversed from SimpleITK's (x, y, z).
    """
    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image), tuple(float(s) for s in reversed(image.GetSpacing()))


def _evaluate_case(job: tuple) -> tuple[str, dict[str, dict[str, float]]]:
    """One case: a top-level function so that spawned worker processes can unpickle it."""
    reference_file, prediction_file, regions, tolerance_mm, convention, penalty, file_ending = job
    reference, ref_spacing = read_segmentation(reference_file)
    prediction, pred_spacing = read_segmentation(prediction_file)
    if reference.shape != prediction.shape or not np.allclose(ref_spacing, pred_spacing, rtol=1e-4):
        raise EvaluationError(
            f"{prediction_file}: shape {prediction.shape} / spacing {pred_spacing} does not match the reference "
            f"{reference_file}: {reference.shape} / {ref_spacing}"
        )
    metrics = compute_case_metrics(
        reference, prediction, ref_spacing, regions,
        tolerance_mm=tolerance_mm, convention=convention, hd95_penalty_mm=penalty,
    )
    return case_id(prediction_file, file_ending), metrics


def evaluate_folder(
    reference_folder: str | Path,
    prediction_folder: str | Path,
    regions_or_labels: Sequence[RegionOrLabel],
    *,
    tolerance_mm: float = DEFAULT_NSD_TOLERANCE_MM,
    convention: Convention = "nnunet",
    hd95_penalty_mm: float | None = None,
    metrics: Sequence[str] = ("Dice", "HD95", "NSD"),
    file_ending: str = ".nii.gz",
    num_processes: int = 1,
    arm: str | None = None,
    fold: str | int | None = None,
    budget: float = 1.0,
) -> list[dict[str, object]]:
    """Recompute per-case metrics for every prediction in a folder against its reference.

    As nnU-Net's ``compute_metrics_on_folder``: every ``*file_ending`` file of ``prediction_folder`` is
    evaluated against the file of the same name in ``reference_folder`` (e.g. ``gt_segmentations``);
    references without a prediction are ignored.

    Args:
        reference_folder: folder of reference segmentations.
        prediction_folder: folder of predicted segmentations.
        regions_or_labels: labels (ints) and/or regions (tuples of labels).
        tolerance_mm: NSD tolerance in mm.
        convention: empty-mask convention, ``"nnunet"`` or ``"brats"``.
        hd95_penalty_mm: BraTS HD95 when exactly one mask is empty; ``None`` = the image diagonal.
        metrics: which of ``"Dice"``, ``"HD95"``, ``"NSD"`` to return.
        file_ending: file ending of the segmentations.
        num_processes: worker processes (spawned); 1 evaluates in this process.
        arm: the arm's name; ``None`` = inferred from ``prediction_folder`` (:func:`infer_arm_and_fold`).
        fold: the fold; ``None`` = inferred from ``prediction_folder``.
        budget: label budget of these predictions.

    Returns:
        Tidy rows (``arm, budget, fold, case, region, metric, value``), cases sorted by file name.
    """
    reference_folder, prediction_folder = Path(reference_folder), Path(prediction_folder)
    predictions = sorted(prediction_folder.glob(f"*{file_ending}"))
    if not predictions:
        raise EvaluationError(f"{prediction_folder}: no *{file_ending} predictions")
    missing = [p.name for p in predictions if not (reference_folder / p.name).is_file()]
    if missing:
        raise EvaluationError(f"{reference_folder}: no reference for {', '.join(missing[:5])}")
    jobs = [
        (reference_folder / p.name, p, list(regions_or_labels), tolerance_mm, convention, hd95_penalty_mm, file_ending)
        for p in predictions
    ]
    if num_processes > 1:
        # spawn, as nnU-Net does: forking a process that holds threads (torch, BLAS) can deadlock
        with ProcessPoolExecutor(num_processes, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_evaluate_case, jobs))
    else:
        results = [_evaluate_case(job) for job in jobs]
    inferred_arm, inferred_fold = infer_arm_and_fold(prediction_folder)
    arm = inferred_arm if arm is None else arm
    fold = inferred_fold if fold is None else str(fold)
    return [
        {"arm": arm, "budget": budget, "fold": fold, "case": case, "region": region, "metric": metric,
         "value": value}
        for case, per_region in results
        for region, values in per_region.items()
        for metric, value in values.items()
        if metric in metrics
    ]
