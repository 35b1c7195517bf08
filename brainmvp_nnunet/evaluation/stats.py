"""Aggregation of tidy per-case tables: mean +/- sd ignoring NaN, paired Wilcoxon tests against an arm.

A tidy table has one row per value with the columns :data:`TIDY_COLUMNS`: ``arm`` (e.g.
``"scratch"``, ``"brainmvp"``), ``budget`` (fraction of each training fold used, 1.0 = all),
``fold``, ``case``, ``region`` (nnU-Net's key, e.g. ``"(1, 2, 3)"``, or a classification task),
``metric`` (``"Dice"``, ``"HD95"``, ``"NSD"``, ``"AUC"`` ...) and ``value``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from brainmvp_nnunet.errors import EvaluationError

TIDY_COLUMNS: tuple[str, ...] = ("arm", "budget", "fold", "case", "region", "metric", "value")
_GROUP = ["arm", "budget", "region", "metric"]
_PAIR_KEYS = ["budget", "fold", "case", "region", "metric"]


@dataclass(frozen=True)
class WilcoxonResult:
    """Outcome of a paired test: ``p_value`` is NaN exactly when ``reason`` says why it was not computed."""

    p_value: float
    n_pairs: int
    reason: str = ""


@dataclass(frozen=True)
class MeanSD:
    """Mean and sample standard deviation (ddof=1) of the finite values, and how many there were."""

    mean: float
    sd: float
    n: int


def wilcoxon_signed_rank(x: Iterable[float], y: Iterable[float], *, min_pairs: int = 2) -> WilcoxonResult:
    """Two-sided paired Wilcoxon signed-rank test of ``x`` against ``y`` (``scipy.stats.wilcoxon``).

    Pairs with a NaN on either side are dropped (nnU-Net's both-empty NaN). Zero differences are
    dropped by scipy's default ``zero_method="wilcox"``.

    Args:
        x: values of the arm under test.
        y: paired values of the reference arm, same length.
        min_pairs: fewest finite pairs for which a p-value is computed.

    Returns:
        p-value, number of finite pairs, and a reason when the p-value is NaN or was not computed by
        scipy: fewer than ``min_pairs`` pairs -> NaN; all differences zero -> 1.0 (identical arms give no
        evidence of a difference; scipy would return 1.0 with a division warning).
    """
    x_arr, y_arr = np.asarray(list(x), dtype=float), np.asarray(list(y), dtype=float)
    if x_arr.shape != y_arr.shape:
        raise EvaluationError(f"paired samples differ in length: {x_arr.size} and {y_arr.size}")
    finite = np.isfinite(x_arr) & np.isfinite(y_arr)
    x_arr, y_arr = x_arr[finite], y_arr[finite]
    n = int(x_arr.size)
    if n < min_pairs:
        return WilcoxonResult(math.nan, n, f"{n} finite pair(s), fewer than {min_pairs}")
    if np.all(x_arr == y_arr):
        return WilcoxonResult(1.0, n, "all paired differences are zero")
    return WilcoxonResult(float(stats.wilcoxon(x_arr, y_arr).pvalue), n)


def mean_sd(values: Iterable[float]) -> MeanSD:
    """Mean and sample sd of the finite values (NaN means "undefined for this case" and is left out).

    Args:
        values: numbers, NaN allowed.

    Returns:
        :class:`MeanSD`; mean NaN when no finite value, sd NaN when fewer than two.
    """
    arr = np.asarray(list(values), dtype=float)
    arr = arr[np.isfinite(arr)]
    mean = float(arr.mean()) if arr.size else math.nan
    sd = float(arr.std(ddof=1)) if arr.size > 1 else math.nan
    return MeanSD(mean, sd, int(arr.size))


def tidy_frame(rows: pd.DataFrame | Iterable[Mapping[str, object]]) -> pd.DataFrame:
    """Validate and normalise a tidy table.

    Args:
        rows: a DataFrame or an iterable of dict rows with at least :data:`TIDY_COLUMNS`.

    Returns:
        A new DataFrame with exactly :data:`TIDY_COLUMNS`: ``budget`` (required) and ``value`` as floats, ``arm``,
        ``fold``, ``case``, ``region`` and ``metric`` as strings (a missing fold or case becomes ``""``,
        e.g. fold-level classification metrics have no case).
    """
    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    missing = [c for c in TIDY_COLUMNS if c not in frame.columns]
    if missing:
        raise EvaluationError(f"tidy table lacks column(s) {missing}; needs {list(TIDY_COLUMNS)}")
    frame = frame.loc[:, list(TIDY_COLUMNS)].reset_index(drop=True)
    for column in ("arm", "fold", "case", "region", "metric"):
        # string keys so that fold 0 and "0" pair up, and None does not vanish from group-bys
        frame[column] = ["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in frame[column]]
    frame["budget"] = pd.to_numeric(frame["budget"]).astype(float)
    if frame["budget"].isna().any():
        raise EvaluationError("tidy table has rows without a budget (use 1.0 for the whole training fold)")
    frame["value"] = pd.to_numeric(frame["value"]).astype(float)
    return frame


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean +/- sd per arm, budget, region and metric.

    Args:
        table: tidy table (see :func:`tidy_frame`).

    Returns:
        DataFrame with columns ``arm, budget, region, metric, n, n_nan, mean, sd`` (``n`` counts the
        finite values used, ``n_nan`` those left out), groups in order of first appearance.
    """
    table = tidy_frame(table)
    records = []
    for (arm, budget, region, metric), group in table.groupby(_GROUP, sort=False, dropna=False):
        agg = mean_sd(group["value"])
        records.append(
            {"arm": arm, "budget": budget, "region": region, "metric": metric, "n": agg.n,
             "n_nan": int(len(group) - agg.n), "mean": agg.mean, "sd": agg.sd}
        )
    return pd.DataFrame.from_records(records, columns=[*_GROUP, "n", "n_nan", "mean", "sd"])


def compare_to_arm(table: pd.DataFrame, reference_arm: str = "scratch", *, min_pairs: int = 2) -> pd.DataFrame:
    """Paired Wilcoxon p-value of every other arm against ``reference_arm`` per budget, region and metric.

    Pairs are rows with the same budget, fold, case, region and metric.

    Args:
        table: tidy table (see :func:`tidy_frame`).
        reference_arm: the arm everything is compared with (the scratch arm).
        min_pairs: passed to :func:`wilcoxon_signed_rank`.

    Returns:
        DataFrame with columns ``arm, budget, region, metric, p_value, n_pairs, reason``, one row per
        group of a non-reference arm.
    """
    table = tidy_frame(table)
    duplicated = table.duplicated(["arm", *_PAIR_KEYS])
    if duplicated.any():
        first = table.loc[duplicated, ["arm", *_PAIR_KEYS]].iloc[0].to_dict()
        raise EvaluationError(f"more than one value for {first}: pairs would be ambiguous")
    reference = table.loc[table["arm"] == reference_arm, [*_PAIR_KEYS, "value"]]
    others = table[table["arm"] != reference_arm]
    merged = others.merge(reference, on=_PAIR_KEYS, how="left", suffixes=("", "_ref"))
    records = []
    for (arm, budget, region, metric), group in merged.groupby(_GROUP, sort=False, dropna=False):
        if reference.empty:
            result = WilcoxonResult(math.nan, 0, f"no {reference_arm!r} arm")
        else:
            result = wilcoxon_signed_rank(group["value"], group["value_ref"], min_pairs=min_pairs)
        records.append(
            {"arm": arm, "budget": budget, "region": region, "metric": metric, "p_value": result.p_value,
             "n_pairs": result.n_pairs, "reason": result.reason}
        )
    return pd.DataFrame.from_records(records, columns=[*_GROUP, "p_value", "n_pairs", "reason"])
