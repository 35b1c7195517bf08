"""``brainmvp finetune``: record a pre-trained checkpoint in a plans variant, check it fits, train folds.

The checkpoint is test-loaded into the network built from the plans before any training starts,
so a checkpoint of another architecture fails in seconds with the list of mismatching tensors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from brainmvp_nnunet.nnunet_env import activate_ext_trainers, require_nnunet_paths
from brainmvp_nnunet.planners.variants import (
    BUDGET_KEY,
    FINETUNE_KEY,
    plans_path,
    results_folder,
    variant_name,
    write_plans_variant,
)
from brainmvp_nnunet.transfer import TransferReport, load_encoder_into, read_encoder_weights

CONFIGURATION = "3d_fullres"


def build_network_from_plans(plans: dict, dataset_json: dict, configuration: str = CONFIGURATION) -> torch.nn.Module:
    """The network nnU-Net would train for these plans and dataset (deep supervision on)."""
    manager = PlansManager(plans)
    config = manager.get_configuration(configuration)
    label_manager = manager.get_label_manager(dataset_json)
    return get_network_from_plans(config.network_arch_class_name, config.network_arch_init_kwargs,
                                  config.network_arch_init_kwargs_req_import,
                                  determine_num_input_channels(manager, config, dataset_json),
                                  label_manager.num_segmentation_heads, allow_init=True, deep_supervision=True)


def check_pretrained_fits(dataset: int | str, plans_identifier: str, checkpoint: Path,
                          stem_mode: str = "repeat") -> TransferReport:
    """Test-load ``checkpoint``'s encoder into the network of the plans (raises CheckpointError if it does not fit)."""
    path = plans_path(dataset, plans_identifier)
    plans = json.loads(path.read_text())
    dataset_json = json.loads((path.parent / "dataset.json").read_text())
    network = build_network_from_plans(plans, dataset_json)
    return load_encoder_into(network, read_encoder_weights(checkpoint), stem_mode=stem_mode)


def prepare_finetune_plans(dataset: int | str, base_plans: str, pretrained: Path | None, name: str | None = None,
                           stem_mode: str = "repeat", budget: float | None = None, budget_seed: int = 0) -> str:
    """Write the plans variant for a run (pre-trained and/or label budget); returns its identifier.

    Without a checkpoint and without a budget the base plans are used as they are (scratch baseline).
    """
    extra: dict = {}
    parts = []
    if pretrained is not None:
        report = check_pretrained_fits(dataset, base_plans, Path(pretrained), stem_mode)
        print(f"[finetune] {Path(pretrained).name} fits: {report.summary().splitlines()[0]}", flush=True)
        extra[FINETUNE_KEY] = {"pretrained": str(Path(pretrained).resolve()), "stem_mode": stem_mode}
        parts.append(name or "pretrained")
    if budget is not None and budget < 1.0:
        extra[BUDGET_KEY] = {"fraction": float(budget), "seed": int(budget_seed)}
        parts.append(f"budget{round(budget * 100)}")
    if not extra:
        return base_plans
    new_plans = variant_name(base_plans, "-".join(parts))
    write_plans_variant(dataset, base_plans, new_plans, extra)
    return new_plans


def run_finetune(dataset: int, plans: str, trainer: str, folds: Sequence[int | str], device: str = "cpu",
                 continue_training: bool = False) -> list[Path]:
    """Train the folds one after the other with nnU-Net's own training entry; returns the fold folders."""
    from nnunetv2.run.run_training import run_training

    require_nnunet_paths()
    activate_ext_trainers()
    model = results_folder(dataset, trainer, plans, CONFIGURATION)
    for fold in folds:
        print(f"[finetune] dataset {dataset}, fold {fold}, trainer {trainer}, plans {plans}", flush=True)
        run_training(str(dataset), CONFIGURATION, fold, trainer_class_name=trainer, plans_identifier=plans,
                     continue_training=continue_training, device=torch.device(device))
    return [model / f"fold_{fold}" for fold in folds]
