"""Classification metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from brainmvp_nnunet.errors import EvaluationError
from brainmvp_nnunet.evaluation.classification import (
    accuracy,
    balanced_accuracy,
    binary_auc,
    classification_metrics,
    f1_score,
    roc_auc,
)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "acc", "bal"),
    [
        ([0, 0, 0, 1], [0, 0, 1, 1], 0.75, (2 / 3 + 1) / 2),
        ([0, 0, 0, 1], [0, 0, 0, 0], 0.75, 0.5),  # majority guess: accurate, not balanced
        ([0, 1, 2, 2], [0, 2, 2, 2], 0.75, (1 + 0 + 1) / 3),
    ],
)
def test_accuracy_and_balanced_accuracy(y_true, y_pred, acc, bal):
    assert accuracy(y_true, y_pred) == pytest.approx(acc)
    assert balanced_accuracy(y_true, y_pred) == pytest.approx(bal)


@pytest.mark.parametrize(
    ("y_true", "scores", "expected"),
    [
        ([0, 0, 1, 1], [0.1, 0.4, 0.6, 0.9], 1.0),
        ([0, 0, 1, 1], [0.9, 0.6, 0.4, 0.1], 0.0),
        # pairs (pos, neg): (.5,.1)=1, (.5,.5)=1/2 (tie), (.9,.1)=1, (.9,.5)=1 -> 3.5 / 4
        ([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9], 0.875),
        ([0, 1, 0, 1], [0.3, 0.3, 0.3, 0.3], 0.5),  # all tied
        # 2 pos x 3 neg, pos {.2, .7} neg {.2, .2, .9}: .2 ties two (1), beats none; .7 beats two (2) -> 3 / 6
        ([1, 0, 0, 1, 0], [0.2, 0.2, 0.2, 0.7, 0.9], 0.5),
        ([1, 1, 1], [0.2, 0.3, 0.4], math.nan),  # one class only
    ],
)
def test_binary_auc_hand_cases_with_ties(y_true, scores, expected):
    assert binary_auc(y_true, scores) == pytest.approx(expected, nan_ok=True)
    assert roc_auc(y_true, scores) == pytest.approx(expected, nan_ok=True)


def test_multiclass_auc_is_macro_one_vs_rest():
    y = [0, 1, 2, 2]
    scores = np.array([[0.8, 0.1, 0.1], [0.3, 0.4, 0.3], [0.2, 0.2, 0.6], [0.9, 0.1, 0.3]])
    # class 0: pos .8 vs neg {.3, .2, .9} -> 2/3; class 1: pos .4 vs {.1, .2, .1} -> 1;
    # class 2: pos {.6, .3} vs neg {.1, .3} -> (1 + 1 + 1 + 1/2) / 4
    assert roc_auc(y, scores) == pytest.approx((2 / 3 + 1 + 0.875) / 3)
    assert roc_auc([0, 1], np.array([[0.7, 0.3], [0.4, 0.6]])) == 1.0  # two columns: column 1 scores class 1


@pytest.mark.parametrize(
    ("y_true", "y_pred", "average", "expected"),
    [
        ([1, 1, 0, 0, 1], [1, 0, 1, 0, 1], "binary", 4 / 6),  # tp 2, fp 1, fn 1
        ([1, 1, 0, 0, 1], [1, 0, 1, 0, 1], "macro", (2 / 4 + 4 / 6) / 2),  # class 0: tp 1, fp 1, fn 1
        ([0, 1, 2, 2], [0, 2, 2, 2], "macro", (1 + 0 + 4 / 5) / 3),
        ([0, 0], [0, 0], "binary", math.nan),  # no positive anywhere: undefined
    ],
)
def test_f1_hand_cases(y_true, y_pred, average, expected):
    assert f1_score(y_true, y_pred, average=average) == pytest.approx(expected, nan_ok=True)


def test_classification_metrics_binary_scores_and_multiclass_scores():
    got = classification_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])  # predictions 0, 1, 0, 1
    assert got == pytest.approx({"accuracy": 0.5, "balanced_accuracy": 0.5, "AUC": 0.75, "F1": 0.5})
    three = classification_metrics([0, 1, 2], np.eye(3))
    assert three == pytest.approx({"accuracy": 1.0, "balanced_accuracy": 1.0, "AUC": 1.0, "F1": 1.0})


@pytest.mark.parametrize(
    "call",
    [
        lambda: accuracy([0, 1], [0]),
        lambda: accuracy([], []),
        lambda: f1_score([0, 1], [0, 1], average="micro"),
        lambda: roc_auc([0, 1, 2], np.ones((2, 3))),
    ],
)
def test_bad_inputs_raise(call):
    with pytest.raises(EvaluationError):
        call()
