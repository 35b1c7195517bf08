"""Benchmark report: per-case CSV, markdown table and PNG plots from a tidy per-case table.

The table (see :mod:`brainmvp_nnunet.evaluation.stats`) may mix segmentation metrics (per case and
region) and classification metrics (per fold, ``case`` empty, ``region`` = the task). Output in
``out_dir``:

* ``per_case.csv``: the tidy table;
* ``report.md``: the empty-reference convention, then one table per metric with mean +/- sd per
  region, budget and arm, ``n``, and the paired Wilcoxon p-value against the reference (scratch) arm;
* ``plots/box_<metric>_<region>.png``: one panel per budget, one box per arm;
* ``plots/budget_<metric>.png``: one panel per region, mean +/- sd against the label budget per arm.

Figures are built on matplotlib's Agg canvas without pyplot, so no global figure state leaks between
reports and no display is needed. Every file is written atomically.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import matplotlib.style
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from brainmvp_nnunet.atomic import atomic_write_bytes
from brainmvp_nnunet.errors import EvaluationError
from brainmvp_nnunet.evaluation.metrics import Convention, convention_line
from brainmvp_nnunet.evaluation.stats import compare_to_arm, summarise, tidy_frame


@dataclass(frozen=True)
class ReportFiles:
    """Paths written by :func:`write_report`."""

    csv: Path
    markdown: Path
    plots: tuple[Path, ...]


def _arms(table: pd.DataFrame, reference_arm: str) -> list[str]:
    """Arms in order of first appearance, the reference arm first."""
    arms = list(dict.fromkeys(table["arm"]))
    return sorted(arms, key=lambda a: a != reference_arm)


def _budget_label(budget: float) -> str:
    return f"{budget:g}"


def _number(value: float) -> str:
    return "NaN" if math.isnan(value) else f"{value:.3f}"


def _slug(text: str) -> str:
    """File-name-safe form of a region key or metric: ``"(1, 2, 3)"`` -> ``"1-2-3"``."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-") or "all"


def markdown_report(
    rows: pd.DataFrame | Iterable[Mapping[str, object]],
    *,
    convention: Convention | None,
    reference_arm: str = "scratch",
    title: str = "Benchmark report",
    tolerance_mm: float | None = None,
    hd95_penalty_mm: float | None = None,
    min_pairs: int = 2,
    plots: Iterable[str] = (),
) -> str:
    """The markdown text of the report.

    Args:
        rows: tidy table.
        convention: empty-mask convention of the segmentation metrics, stated above the tables;
            ``None`` for classification-only reports.
        reference_arm: the arm p-values compare against.
        title: the top heading.
        tolerance_mm: NSD tolerance, stated with the convention.
        hd95_penalty_mm: BraTS HD95 penalty, stated with the convention.
        min_pairs: fewest pairs for a p-value.
        plots: relative paths of PNG files to show below the tables.

    Returns:
        Markdown text.
    """
    table = tidy_frame(rows)
    summary = summarise(table)
    tests = compare_to_arm(table, reference_arm, min_pairs=min_pairs)
    merged = summary.merge(tests, on=["arm", "budget", "region", "metric"], how="left")
    arm_rank = {arm: i for i, arm in enumerate(_arms(table, reference_arm))}
    region_rank = {region: i for i, region in enumerate(dict.fromkeys(table["region"]))}
    merged = merged.assign(
        _region=merged["region"].map(region_rank), _arm=merged["arm"].map(arm_rank)
    ).sort_values(["_region", "budget", "_arm"], kind="stable")

    lines = [f"# {title}", ""]
    if convention is not None:
        lines += [convention_line(convention, tolerance_mm=tolerance_mm, hd95_penalty_mm=hd95_penalty_mm), ""]
    lines += [
        f"Mean +/- sample sd over the finite values (n; NaN values are counted apart and left out). p: two-sided "
        f"paired Wilcoxon signed-rank test against `{reference_arm}` (pairs: same budget, fold, case and region).",
        "",
    ]
    for metric in dict.fromkeys(table["metric"]):
        lines += [f"## {metric}", "", f"| region | budget | arm | n | mean +/- sd | p vs {reference_arm} |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for row in merged[merged["metric"] == metric].itertuples():
            n = f"{row.n}" + (f" ({row.n_nan} NaN)" if row.n_nan else "")
            if row.arm == reference_arm:
                p = "-"
            elif math.isnan(row.p_value):  # not computed: the reason says why
                p = f"n/a ({row.reason})"
            else:
                p = f"{row.p_value:.3g}"
            lines.append(
                f"| {row.region} | {_budget_label(row.budget)} | {row.arm} | {n} | "
                f"{_number(row.mean)} +/- {_number(row.sd)} | {p} |"
            )
        lines.append("")
    for plot in plots:
        lines += [f"![{Path(plot).stem}]({plot})", ""]
    return "\n".join(lines)


# nnU-Net's logger module sets a seaborn theme with 2.5x fonts for the whole process when imported;
# our plots always draw with matplotlib's defaults.
_own_style = matplotlib.style.context("default")


@_own_style
def box_plot_figure(table: pd.DataFrame, metric: str, region: str, *, reference_arm: str = "scratch") -> Figure:
    """Box plots of one metric and region: one panel per budget, one box per arm (NaN left out).

    Args:
        table: tidy table.
        metric: the metric to plot.
        region: the region (or task) to plot.
        reference_arm: drawn first.

    Returns:
        A figure on an Agg canvas; each panel's boxes are its ``patches`` (one per arm).
    """
    table = tidy_frame(table)
    arms = _arms(table, reference_arm)
    selected = table[(table["metric"] == metric) & (table["region"] == region)]
    if selected.empty:
        raise EvaluationError(f"no {metric!r} values for region {region!r} to plot")
    budgets = sorted(selected["budget"].unique())
    # Rotated tick labels need room below and left of the axes (folder names of stock runs are ~50 characters).
    longest = max(len(arm) for arm in arms)
    fig = Figure(figsize=(1.2 + 1.1 * len(arms) * len(budgets) + 0.065 * longest, 3.6 + 0.04 * longest),
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(budgets), squeeze=False, sharey=True)[0]
    for ax, budget in zip(axes, budgets, strict=True):
        at_budget = selected[selected["budget"] == budget]
        data = []
        for arm in arms:
            values = at_budget.loc[at_budget["arm"] == arm, "value"].to_numpy()
            data.append(values[np.isfinite(values)])
        # patch_artist: boxes become patches, which a test (and a reader of the Axes) can count
        ax.boxplot(data, tick_labels=arms, patch_artist=True, showfliers=True)
        ax.set_title(f"budget {_budget_label(budget)}")
        ax.tick_params(axis="x", labelrotation=30)
    axes[0].set_ylabel(metric)
    fig.suptitle(f"{metric}, region {region}")
    return fig


@_own_style
def budget_plot_figure(table: pd.DataFrame, metric: str, *, reference_arm: str = "scratch") -> Figure:
    """Mean +/- sd of one metric against the label budget, one line per arm, one panel per region.

    Args:
        table: tidy table.
        metric: the metric to plot.
        reference_arm: drawn first.

    Returns:
        A figure on an Agg canvas.
    """
    table = tidy_frame(table)
    arms = _arms(table, reference_arm)
    if not (table["metric"] == metric).any():
        raise EvaluationError(f"no {metric!r} values to plot")
    summary = summarise(table[table["metric"] == metric])
    regions = list(dict.fromkeys(summary["region"]))
    fig = Figure(figsize=(4.0 * len(regions), 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(regions), squeeze=False)[0]
    for ax, region in zip(axes, regions, strict=True):
        for arm in arms:
            line = summary[(summary["region"] == region) & (summary["arm"] == arm)].sort_values("budget")
            if not line.empty:
                ax.errorbar(line["budget"], line["mean"], yerr=line["sd"].fillna(0.0), marker="o", capsize=3,
                            label=arm)
        ax.set_title(f"region {region}")
        ax.set_xlabel("label budget (fraction of training fold)")
        ax.set_ylabel(f"{metric} (mean +/- sd)")
    axes[0].legend()
    return fig


@_own_style
def _png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def write_report(
    rows: pd.DataFrame | Iterable[Mapping[str, object]],
    out_dir: str | Path,
    *,
    convention: Convention | None,
    reference_arm: str = "scratch",
    title: str = "Benchmark report",
    tolerance_mm: float | None = None,
    hd95_penalty_mm: float | None = None,
    min_pairs: int = 2,
) -> ReportFiles:
    """Write the CSV, the markdown report and the plots of a tidy per-case table.

    Args:
        rows: tidy table (list of dict rows or DataFrame with ``arm, budget, fold, case, region, metric,
            value``).
        out_dir: output folder (created).
        convention: empty-mask convention of the segmentation metrics; ``None`` for classification only.
        reference_arm: the scratch arm that p-values compare against.
        title: heading of the markdown report.
        tolerance_mm: NSD tolerance, stated in the report.
        hd95_penalty_mm: BraTS HD95 penalty, stated in the report.
        min_pairs: fewest pairs for a p-value.

    Returns:
        The paths written.
    """
    table = tidy_frame(rows)
    out_dir = Path(out_dir)
    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "per_case.csv"
    atomic_write_bytes(csv_path, table.to_csv(index=False).encode())

    plots: list[Path] = []
    for metric in dict.fromkeys(table["metric"]):
        at_metric = table[table["metric"] == metric]
        for region in dict.fromkeys(at_metric["region"]):
            path = out_dir / "plots" / f"box_{_slug(metric)}_{_slug(region)}.png"
            atomic_write_bytes(path, _png_bytes(box_plot_figure(at_metric, metric, region,
                                                                reference_arm=reference_arm)))
            plots.append(path)
        path = out_dir / "plots" / f"budget_{_slug(metric)}.png"
        atomic_write_bytes(path, _png_bytes(budget_plot_figure(at_metric, metric, reference_arm=reference_arm)))
        plots.append(path)

    markdown_path = out_dir / "report.md"
    text = markdown_report(
        table, convention=convention, reference_arm=reference_arm, title=title, tolerance_mm=tolerance_mm,
        hd95_penalty_mm=hd95_penalty_mm, min_pairs=min_pairs,
        plots=[p.relative_to(out_dir).as_posix() for p in plots],
    )
    atomic_write_bytes(markdown_path, text.encode())
    return ReportFiles(csv_path, markdown_path, tuple(plots))
