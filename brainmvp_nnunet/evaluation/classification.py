"""Classification metrics in plain numpy: accuracy, balanced accuracy, ROC AUC, F1.

Labels are integers ``0 .. K-1``; scores are either one column (binary: the score of class 1) or
``K`` columns (one per class, e.g. softmax outputs). Undefined values are NaN rather than an
arbitrary 0, in line with nnU-Net's Dice convention: AUC without both classes, F1 when a class is
neither present nor predicted.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from brainmvp_nnunet.errors import EvaluationError


def _labels(y: np.ndarray | list) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise EvaluationError(f"labels must be 1-D, got shape {y.shape}")
    return y


def _pair(y_true: np.ndarray | list, y_pred: np.ndarray | list) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = _labels(y_true), _labels(y_pred)
    if y_true.shape != y_pred.shape:
        raise EvaluationError(f"y_true has {y_true.size} cases, y_pred {y_pred.size}")
    if y_true.size == 0:
        raise EvaluationError("no cases")
    return y_true, y_pred


def accuracy(y_true: np.ndarray | list, y_pred: np.ndarray | list) -> float:
    """Fraction of correct predictions.

    Args:
        y_true: true labels.
        y_pred: predicted labels.

    Returns:
        Accuracy in [0, 1].
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def balanced_accuracy(y_true: np.ndarray | list, y_pred: np.ndarray | list) -> float:
    """Mean recall over the classes present in ``y_true`` (as scikit-learn defines it).

    Args:
        y_true: true labels.
        y_pred: predicted labels.

    Returns:
        Balanced accuracy in [0, 1].
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing the mean of their ranks (the Mann-Whitney tie correction)."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # start index of each run of equal values, then each run's mean rank ((first + last) / 2, 1-based)
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], sorted_values.size]
    run_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(values.size, dtype=float)
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def binary_auc(y_true: np.ndarray | list, scores: np.ndarray | list) -> float:
    """ROC AUC of a binary problem through the Mann-Whitney U statistic.

    ``AUC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)`` with ``R_pos`` the sum of the positives'
    average ranks, i.e. ``P(score_pos > score_neg) + P(tie) / 2``.

    Args:
        y_true: labels, 1 (or True) for positives, anything else negative.
        scores: one score per case, higher = more positive.

    Returns:
        AUC in [0, 1]; NaN when either class is absent.
    """
    y_true, scores = _pair(y_true, scores)
    positive = y_true == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = _average_ranks(scores.astype(float))
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_auc(y_true: np.ndarray | list, scores: np.ndarray | list) -> float:
    """ROC AUC: binary, or the macro average of one-vs-rest AUCs for more classes.

    Args:
        y_true: labels ``0 .. K-1``.
        scores: shape ``(n,)`` (binary: score of class 1), ``(n, 2)`` (column 1 is used) or ``(n, K)``.

    Returns:
        AUC; for ``K > 2`` the mean over classes present in ``y_true`` (a class absent from ``y_true``
        has no one-vs-rest AUC). NaN when fewer than two classes are present.
    """
    y_true = _labels(y_true)
    scores = np.asarray(scores, dtype=float)
    if scores.ndim == 1 or scores.shape[1] == 2:
        return binary_auc(y_true, scores if scores.ndim == 1 else scores[:, 1])
    if scores.shape[0] != y_true.size:
        raise EvaluationError(f"y_true has {y_true.size} cases, scores {scores.shape[0]}")
    present = np.unique(y_true)
    if present.size < 2:
        return math.nan
    return float(np.mean([binary_auc((y_true == c).astype(int), scores[:, int(c)]) for c in present]))


def _f1_of(y_true: np.ndarray, y_pred: np.ndarray, label: int) -> float:
    tp = int(np.sum((y_pred == label) & (y_true == label)))
    fp = int(np.sum((y_pred == label) & (y_true != label)))
    fn = int(np.sum((y_pred != label) & (y_true == label)))
    return math.nan if tp + fp + fn == 0 else 2.0 * tp / (2 * tp + fp + fn)


def f1_score(
    y_true: np.ndarray | list,
    y_pred: np.ndarray | list,
    *,
    average: Literal["binary", "macro"] = "binary",
    positive_label: int = 1,
) -> float:
    """F1 score, ``2 TP / (2 TP + FP + FN)``.

    Args:
        y_true: true labels.
        y_pred: predicted labels.
        average: ``"binary"`` (F1 of ``positive_label``) or ``"macro"`` (mean over the labels present in
            ``y_true`` or ``y_pred``).
        positive_label: the positive class for ``"binary"``.

    Returns:
        F1 in [0, 1]; NaN for binary when the positive class is neither present nor predicted.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    if average == "binary":
        return _f1_of(y_true, y_pred, positive_label)
    if average == "macro":
        return float(np.mean([_f1_of(y_true, y_pred, c) for c in np.union1d(y_true, y_pred)]))
    raise EvaluationError(f"average must be 'binary' or 'macro', got {average!r}")


def classification_metrics(y_true: np.ndarray | list, scores: np.ndarray | list) -> dict[str, float]:
    """The four metrics of the benchmark report from labels and scores.

    Args:
        y_true: labels ``0 .. K-1``.
        scores: shape ``(n,)`` (binary probability of class 1, predicted class = score >= 0.5) or
            ``(n, K)`` (predicted class = arg-max).

    Returns:
        ``{"accuracy", "balanced_accuracy", "AUC", "F1"}``; F1 is binary (class 1) for two classes,
        macro otherwise.
    """
    y_true = _labels(y_true)
    scores = np.asarray(scores, dtype=float)
    y_pred = (scores >= 0.5).astype(int) if scores.ndim == 1 else np.argmax(scores, axis=1)
    n_classes = 2 if scores.ndim == 1 else scores.shape[1]
    return {
        "accuracy": accuracy(y_true, y_pred),
        "balanced_accuracy": balanced_accuracy(y_true, y_pred),
        "AUC": roc_auc(y_true, scores),
        "F1": f1_score(y_true, y_pred, average="binary" if n_classes == 2 else "macro"),
    }


CLASSIFICATION_SUMMARY_NAME = "classification_summary.json"
CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "AUC", "F1")


def classification_summary(cases: list[str], y_true: list[int], probabilities: np.ndarray | list,
                           class_names: list[str], task: str = "classification") -> dict:
    """The JSON-able content of ``validation/classification_summary.json`` of one fold.

    Args:
        cases: case identifiers, in the order of the rows of ``probabilities``.
        y_true: true class indices ``0 .. K-1`` into ``class_names``.
        probabilities: ``(n, K)`` class probabilities (softmax).
        class_names: names of the classes; index 1 is the positive class for binary AUC and F1.
        task: the task's name, used as the region of the report rows.

    Returns:
        ``{"task", "class_names", "metrics": {accuracy, balanced_accuracy, AUC, F1}, "metric_per_case":
        [{"case", "label", "probabilities", "predicted"}]}``; NaN metrics are stored as JSON ``NaN``, as
        nnU-Net's ``summary.json`` does.
    """
    probabilities = np.asarray(probabilities, dtype=float)
    if probabilities.shape != (len(cases), len(class_names)):
        raise EvaluationError(f"probabilities of shape {probabilities.shape} do not match {len(cases)} cases and "
                              f"{len(class_names)} classes")
    # binary: the score of class 1, so that AUC and F1 refer to the named positive class
    scores = probabilities[:, 1] if len(class_names) == 2 else probabilities
    return {
        "task": task,
        "class_names": list(class_names),
        "metrics": classification_metrics(y_true, scores),
        "metric_per_case": [
            {"case": case, "label": class_names[int(label)], "probabilities": [float(p) for p in row],
             "predicted": class_names[int(np.argmax(row))]}
            for case, label, row in zip(cases, y_true, probabilities, strict=True)
        ],
    }


def class_indices(dataset_json: dict) -> tuple[list[str], dict[str, int]]:
    """Class names (sorted) and each case's class index from ``dataset.json``'s ``brainmvp.class_labels``.

    The converter writes ``{"<case>": "<class name>"}`` there (the generic source's
    ``class_labels.json``). Sorting makes the index of a class independent of case order; for two
    classes the second name is the positive class of AUC and F1.

    Raises:
        EvaluationError: no class labels, or fewer than two classes.
    """
    labels = dataset_json.get("brainmvp", {}).get("class_labels") or {}
    names = sorted(set(labels.values()))
    if len(names) < 2:
        raise EvaluationError("dataset.json has no brainmvp.class_labels with at least two classes; convert the "
                              "dataset with the generic source and a class_labels.json")
    return names, {case: names.index(name) for case, name in labels.items()}
