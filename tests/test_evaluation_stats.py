"""Wilcoxon tests against scipy directly, their degenerate cases, and NaN-aware aggregation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from brainmvp_nnunet.errors import EvaluationError
from brainmvp_nnunet.evaluation.stats import (
    TIDY_COLUMNS,
    compare_to_arm,
    mean_sd,
    summarise,
    tidy_frame,
    wilcoxon_signed_rank,
)


@pytest.mark.parametrize("seed", [0, 1])
def test_wilcoxon_equals_scipy(seed):
    rng = np.random.default_rng(seed)
    x, y = rng.random(12), rng.random(12)
    got = wilcoxon_signed_rank(x, y)
    assert got.p_value == pytest.approx(scipy_stats.wilcoxon(x, y).pvalue)
    assert (got.n_pairs, got.reason) == (12, "")


def test_wilcoxon_drops_pairs_with_nan():
    x = np.array([0.9, 0.8, np.nan, 0.7, 0.95, 0.6, 0.85])
    y = np.array([0.5, 0.7, 0.4, np.nan, 0.6, 0.65, 0.2])
    keep = [0, 1, 4, 5, 6]
    got = wilcoxon_signed_rank(x, y)
    assert got.n_pairs == 5
    assert got.p_value == pytest.approx(scipy_stats.wilcoxon(x[keep], y[keep]).pvalue)


@pytest.mark.parametrize(
    ("x", "y", "min_pairs", "p", "n", "reason"),
    [
        ([0.5, 0.6, 0.7], [0.5, 0.6, 0.7], 2, 1.0, 3, "all paired differences are zero"),
        ([0.5], [0.7], 2, math.nan, 1, "1 finite pair(s), fewer than 2"),
        ([], [], 2, math.nan, 0, "0 finite pair(s), fewer than 2"),
        ([0.5, np.nan, 0.1], [0.7, 0.2, np.nan], 2, math.nan, 1, "1 finite pair(s), fewer than 2"),
        ([0.1, 0.2, 0.3, 0.4], [0.2, 0.3, 0.4, 0.5], 5, math.nan, 4, "4 finite pair(s), fewer than 5"),
    ],
)
def test_wilcoxon_degenerate_cases(x, y, min_pairs, p, n, reason):
    got = wilcoxon_signed_rank(x, y, min_pairs=min_pairs)
    assert got.p_value == pytest.approx(p, nan_ok=True)
    assert (got.n_pairs, got.reason) == (n, reason)


def test_wilcoxon_rejects_unpaired_lengths():
    with pytest.raises(EvaluationError):
        wilcoxon_signed_rank([1.0, 2.0], [1.0])


@pytest.mark.parametrize(
    ("values", "mean", "sd", "n"),
    [
        ([1.0, 2.0, 3.0, math.nan], 2.0, 1.0, 3),
        ([4.0], 4.0, math.nan, 1),
        ([math.nan, math.nan], math.nan, math.nan, 0),
    ],
)
def test_mean_sd_ignores_nan(values, mean, sd, n):
    got = mean_sd(values)
    assert got.mean == pytest.approx(mean, nan_ok=True)
    assert got.sd == pytest.approx(sd, nan_ok=True)
    assert got.n == n


def rows_for(arm_values: dict[str, list[float]], budget: float = 1.0, region: str = "(1, 2, 3)"):
    return [
        {"arm": arm, "budget": budget, "fold": i % 2, "case": f"c{i}", "region": region, "metric": "Dice", "value": v}
        for arm, values in arm_values.items()
        for i, v in enumerate(values)
    ]


def test_compare_to_arm_pairs_by_case_and_matches_scipy():
    scratch = [0.50, 0.61, 0.40, 0.72, 0.55, 0.30, 0.66]
    pre = [0.58, 0.60, 0.49, 0.80, 0.65, 0.41, 0.70]
    rows = rows_for({"scratch": scratch, "pre": pre}) + rows_for({"scratch": [0.5, 0.6], "pre": [0.5, 0.6]}, budget=0.2)
    got = compare_to_arm(list(reversed(rows)))  # row order must not matter: pairs are matched by key
    assert list(got["arm"]) == ["pre", "pre"]
    full = got[got["budget"] == 1.0].iloc[0]
    assert full["p_value"] == pytest.approx(scipy_stats.wilcoxon(pre, scratch).pvalue)
    assert full["n_pairs"] == 7
    small = got[got["budget"] == 0.2].iloc[0]
    assert (small["p_value"], small["reason"]) == (1.0, "all paired differences are zero")


def test_compare_to_arm_without_reference_arm_or_with_duplicates():
    got = compare_to_arm(rows_for({"pre": [0.1, 0.2, 0.3]}))
    assert math.isnan(got.iloc[0]["p_value"]) and got.iloc[0]["reason"] == "no 'scratch' arm"
    duplicated = rows_for({"scratch": [0.1, 0.2]}) * 2
    with pytest.raises(EvaluationError, match="more than one value"):
        compare_to_arm(duplicated)


def test_summarise_counts_finite_values_and_nan_apart():
    rows = rows_for({"scratch": [0.2, math.nan, 0.4], "pre": [0.5, 0.7, 0.9]})
    got = summarise(rows).set_index("arm")
    assert got.loc["scratch", ["n", "n_nan"]].tolist() == [2, 1]
    assert got.loc["scratch", "mean"] == pytest.approx(0.3)
    assert got.loc["pre", "sd"] == pytest.approx(0.2)


def test_tidy_frame_normalises_types_and_requires_columns():
    frame = tidy_frame([{"arm": "a", "budget": "0.5", "fold": 0, "case": None, "region": "(1,)", "metric": "AUC",
                         "value": 1, "extra": "dropped"}])
    assert tuple(frame.columns) == TIDY_COLUMNS
    assert frame.iloc[0].to_dict() == {"arm": "a", "budget": 0.5, "fold": "0", "case": "", "region": "(1,)",
                                       "metric": "AUC", "value": 1.0}
    with pytest.raises(EvaluationError, match="lacks column"):
        tidy_frame([{"arm": "a", "value": 1.0}])
    with pytest.raises(EvaluationError, match="without a budget"):
        tidy_frame([{"arm": "a", "budget": None, "fold": 0, "case": "c", "region": "1", "metric": "Dice", "value": 1}])
