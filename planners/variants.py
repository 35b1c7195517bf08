"""Plans variants: a copy of a plans file under a new name with BrainMVP keys added.

nnU-Net names a results folder ``Trainer__Plans__configuration``, so a pre-trained run and its
scratch baseline (or two label budgets) must differ in trainer or plans name. A variant keeps the
configurations (and the ``data_identifier``, so the preprocessed data are shared) and adds:

* ``brainmvp_finetune``: ``{"pretrained": path, "stem_mode": "repeat"|"reinit"}``;
* ``brainmvp_label_budget``: ``{"fraction": f, "seed": s}``.

The plans file is copied into every results folder, so these keys document each run.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from nnunetv2.paths import nnUNet_preprocessed, nnUNet_results
from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

from brainmvp_nnunet.atomic import atomic_write_bytes
from brainmvp_nnunet.errors import PlanningError

FINETUNE_KEY = "brainmvp_finetune"
BUDGET_KEY = "brainmvp_label_budget"
PRETRAINED_ENV = "BRAINMVP_PRETRAINED"


def plans_path(dataset: int | str, plans_identifier: str) -> Path:
    """``nnUNet_preprocessed/DatasetXXX_Name/<plans_identifier>.json``."""
    return Path(os.fspath(nnUNet_preprocessed)) / maybe_convert_to_dataset_name(dataset) / f"{plans_identifier}.json"


def results_folder(dataset: int | str, trainer: str, plans_identifier: str, configuration: str = "3d_fullres") -> Path:
    """``nnUNet_results/DatasetXXX_Name/<trainer>__<plans>__<configuration>``, nnU-Net's folder of a model."""
    return (Path(os.fspath(nnUNet_results)) / maybe_convert_to_dataset_name(dataset)
            / f"{trainer}__{plans_identifier}__{configuration}")


def variant_name(base: str, suffix: str) -> str:
    """``<base>_<suffix>`` with the suffix reduced to letters, digits and dashes ('__' separates folder parts)."""
    clean = re.sub(r"[^A-Za-z0-9-]+", "-", suffix).strip("-")
    if not clean:
        raise PlanningError(f"plans variant suffix {suffix!r} has no usable characters")
    return f"{base}_{clean}"


def write_plans_variant(dataset: int | str, base_plans: str, new_plans: str, extra: dict) -> Path:
    """Copy ``base_plans`` to ``new_plans`` with ``extra`` keys merged in; returns the new file."""
    source = plans_path(dataset, base_plans)
    if not source.is_file():
        raise PlanningError(f"file {source}: plans {base_plans!r} not found; run `brainmvp plan -d {dataset}` first")
    plans = json.loads(source.read_text())
    plans.update(extra)
    plans["plans_name"] = new_plans
    target = plans_path(dataset, new_plans)
    atomic_write_bytes(target, (json.dumps(plans, indent=4) + "\n").encode())
    return target
