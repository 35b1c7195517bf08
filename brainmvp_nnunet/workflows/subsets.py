"""``brainmvp evaluate-subsets``: a fold's validation Dice under every non-empty subset of modalities.

For each subset (2^C - 1 of them, 15 for the four BraTS modalities) the fold's validation cases
(``splits_final.json``) are predicted from ``nnUNet_raw/<Dataset>/imagesTr`` with only that subset's
channels (the others filled as in ``brainmvp predict``; a case's own missing modalities, from the
``brainmvp`` block of dataset.json, stay missing) and scored against
``nnUNet_preprocessed/<Dataset>/gt_segmentations`` with the evaluation library. One row per subset.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

from brainmvp_nnunet.atomic import atomic_write_bytes
from brainmvp_nnunet.errors import PredictionError
from brainmvp_nnunet.evaluation.metrics import Convention, convention_line, region_key, region_names
from brainmvp_nnunet.evaluation.results import evaluate_folder
from brainmvp_nnunet.inference import find_case_files, nonempty_subsets, select_channels, subset_name
from brainmvp_nnunet.nnunet_env import require_nnunet_paths
from brainmvp_nnunet.pretraining.availability import parse_brainmvp_block
from brainmvp_nnunet.workflows.predict import MissingModalityPredictor, model_folder

TABLE_NAME = "subsets"


@dataclass(frozen=True)
class SubsetTable:
    """The result of :func:`evaluate_subsets`: one row per subset, and the files written."""

    rows: list[dict[str, object]]
    csv: Path
    markdown: Path


def validation_cases(dataset: int | str, fold: int) -> list[str]:
    """The validation case ids of ``fold`` in ``nnUNet_preprocessed/<Dataset>/splits_final.json``."""
    path = require_nnunet_paths()["nnUNet_preprocessed"] / maybe_convert_to_dataset_name(dataset) / \
        "splits_final.json"
    try:
        splits = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PredictionError(f"cannot read the folds ({exc}); train the fold first", file=str(path)) from None
    if not 0 <= fold < len(splits):
        raise PredictionError(f"fold {fold} does not exist ({len(splits)} folds)", file=str(path))
    return sorted(splits[fold]["val"])


def _markdown(rows: list[dict[str, object]], convention: Convention, title: str) -> str:
    columns = list(rows[0])
    lines = [f"# {title}", "", convention_line(convention), "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [("NaN" if math.isnan(v) else f"{v:.3f}") if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _csv(rows: list[dict[str, object]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def evaluate_subsets(dataset: int | str, fold: int, plans: str = "BrainMVPPlans",
                     trainer: str = "nnUNetTrainerBrainMVP", fill: str = "templates",
                     templates_file: Path | None = None, output: Path | None = None,
                     convention: Convention = "nnunet", device: str = "cpu") -> SubsetTable:
    """Predict and score the fold's validation cases under every non-empty modality subset.

    Predictions go to ``output/<subset>/`` (default ``<model>/fold_<fold>/subsets``), the table to
    ``output/subsets.csv`` and ``output/subsets.md``: subset, number of cases scored (a case with
    none of the subset's modalities is left out of that row), mean Dice per region or label and
    overall (the mean of the region means, as nnU-Net's ``foreground_mean``).
    """
    roots = require_nnunet_paths()
    model = model_folder(dataset, trainer, plans)
    name = maybe_convert_to_dataset_name(dataset)
    predictor = MissingModalityPredictor(model, [fold], fill, templates_file, device)
    dataset_json = predictor.predictor.dataset_json
    slots = predictor.channel_slots
    cases = validation_cases(dataset, fold)
    files = find_case_files(roots["nnUNet_raw"] / name / "imagesTr", predictor.file_ending, len(slots))
    absent = [c for c in cases if c not in files]
    if absent:
        raise PredictionError(f"validation cases without images: {', '.join(absent[:5])}",
                              file=str(roots["nnUNet_raw"] / name / "imagesTr"))
    block = parse_brainmvp_block(dataset_json) if "brainmvp" in dataset_json else None
    # converted cases hold zero files for their missing modalities: those are not available channels
    available = {c: set(block.channels(c)) if block is not None and c in block.available_slots else set(files[c])
                 for c in cases}
    label_manager = predictor.predictor.label_manager
    regions = label_manager.foreground_regions if label_manager.has_regions else label_manager.foreground_labels
    names = region_names(dataset_json["labels"])
    output = model / f"fold_{fold}" / TABLE_NAME if output is None else Path(output)
    reference = roots["nnUNet_preprocessed"] / name / "gt_segmentations"

    subsets = nonempty_subsets(len(slots))
    rows: list[dict[str, object]] = []
    for index, subset in enumerate(subsets, 1):
        start = time.monotonic()
        label = subset_name(subset, slots)
        chosen = [select_channels(c, {ch: f for ch, f in files[c].items() if ch in available[c]}, subset, slots)
                  for c in cases if available[c] & set(subset)]
        row: dict[str, object] = {"subset": label, "n_cases": len(chosen)}
        means = {names.get(region_key(r), region_key(r)): math.nan for r in regions}
        if chosen:
            # a fresh folder: the table must score exactly this run's predictions
            shutil.rmtree(output / label, ignore_errors=True)
            predictor.predict(chosen, output / label)
            scores = pd.DataFrame(evaluate_folder(reference, output / label, regions, metrics=("Dice",),
                                                  convention=convention))
            for region, value in scores.groupby("region")["value"].mean().items():
                means[names.get(region, region)] = float(value)
        row.update({f"Dice {region}": value for region, value in means.items()})
        finite = [v for v in means.values() if not math.isnan(v)]
        row["Dice overall"] = sum(finite) / len(finite) if finite else math.nan
        rows.append(row)
        print(f"[subsets] {index}/{len(subsets)} {label}: {len(chosen)} cases, mean Dice "
              f"{row['Dice overall']:.3f} ({time.monotonic() - start:.1f} s)", flush=True)

    title = f"{name} fold {fold}: {trainer}__{plans}, missing channels filled with {fill}"
    csv_path, md_path = output / f"{TABLE_NAME}.csv", output / f"{TABLE_NAME}.md"
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(csv_path, _csv(rows).encode())
    atomic_write_bytes(md_path, _markdown(rows, convention, title).encode())
    return SubsetTable(rows, csv_path, md_path)
