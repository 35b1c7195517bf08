"""``brainmvp demo``: the whole pipeline, end to end, on embedded synthetic data (CPU, minutes).

1. synthesise three BraTS-2023-style releases: a pre-training collection with missing modalities,
   a labelled training set and a disjoint test set;
2. convert them to nnU-Net raw format;
3. plan and preprocess (``BrainMVPPlanner_Tiny32``: the same network for every dataset);
4. pre-train BrainMVP with the stock ``nnUNetv2_train ... -tr nnUNetTrainerBrainMVPPretrain_Demo``;
5. benchmark fine-tuning from scratch vs from the pre-trained encoder on nnU-Net folds and label
   budgets, and write the report (CSV, markdown table, plots);
6. predict the test set with the pre-trained model, with every modality and with FLAIR only (the
   missing channels filled from the learned templates), and score it.

Everything happens under one output folder (including nnU-Net's three data roots). The numbers
are from tiny networks trained for seconds on synthetic data: a smoke test, not evidence.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from brainmvp_nnunet.data.releases import write_synthetic_release
from brainmvp_nnunet.errors import BrainMVPError
from brainmvp_nnunet.nnunet_env import activate_ext_trainers, use_nnunet_roots

CONFIGURATION = "3d_fullres"


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo; the defaults finish in under 10 minutes on 2 CPU cores."""

    output: Path
    train_cases: int = 10
    pretrain_cases: int = 12
    test_cases: int = 3
    spacing_mm: float = 3.0
    pretrain_missing_rate: float = 0.3
    dataset_id: int = 500
    test_dataset_id: int = 501
    pretrain_dataset_id: int = 502
    planner: str = "BrainMVPPlanner_Tiny32"
    plans: str = "BrainMVPPlans"
    pretrain_trainer: str = "nnUNetTrainerBrainMVPPretrain_Demo"
    finetune_trainer: str = "nnUNetTrainerBrainMVP_Demo"
    folds: tuple[int, ...] = (0, 1)
    budgets: tuple[float, ...] = (0.5, 1.0)
    seed: int = 0


class DemoError(BrainMVPError):
    """A stage of the demo failed (the message names the stage; its output is above)."""


class _Stages:
    """Numbered stage headers with elapsed time, so a user sees where the demo is."""

    def __init__(self, total: int):
        self.total, self.number, self.start = total, 0, time.monotonic()

    def __call__(self, title: str) -> None:
        self.number += 1
        print(f"\n=== [{self.number}/{self.total}] {title} (t={self.elapsed():.0f} s) ===", flush=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def _stock(command: str, *args: str, env: dict[str, str] | None = None) -> None:
    """Run a stock nnU-Net console script of this environment, streaming its output."""
    executable = Path(sys.executable).parent / command
    print(f"$ {command} {' '.join(args)}", flush=True)
    result = subprocess.run([str(executable), *args], env=env or os.environ.copy(), check=False)
    if result.returncode != 0:
        raise DemoError(f"{command} failed with exit code {result.returncode} (see its output above)")


def _dice_of(prediction_folder: Path, raw: Path) -> dict[str, float]:
    """Mean Dice per region of a prediction folder against the raw dataset's labels."""
    import json

    from brainmvp_nnunet.benchmark.collect import regions_of
    from brainmvp_nnunet.evaluation.metrics import region_names
    from brainmvp_nnunet.evaluation.results import evaluate_folder
    from brainmvp_nnunet.evaluation.stats import mean_sd

    dataset_json = json.loads((raw / "dataset.json").read_text())
    names = region_names(dataset_json["labels"])
    rows = evaluate_folder(raw / "labelsTr", prediction_folder, regions_of(dataset_json), metrics=("Dice",))
    return {names.get(r, r): mean_sd(row["value"] for row in rows if row["region"] == r).mean
            for r in dict.fromkeys(row["region"] for row in rows)}


def run_demo(config: DemoConfig) -> dict:
    """Run every stage; return the benchmark report's files and the test-set Dice per input set."""
    from brainmvp_nnunet.benchmark.config import parse_config
    from brainmvp_nnunet.dataset_conversion import convert
    from brainmvp_nnunet.planners.api import plan_and_preprocess
    from brainmvp_nnunet.planners.variants import results_folder
    from brainmvp_nnunet.workflows.benchmark import run_benchmark
    from brainmvp_nnunet.workflows.predict import predict_folder

    output = Path(config.output).resolve()
    if output.exists() and any(output.iterdir()):
        raise DemoError(f"output folder {output} is not empty; remove it or pass another --output")
    stage = _Stages(6)
    use_nnunet_roots(output)
    # One process per pool on a 2-core machine, no torch.compile on CPU, our trainers discoverable.
    os.environ.setdefault("nnUNet_def_n_proc", "1")
    os.environ.setdefault("nnUNet_compile", "f")
    activate_ext_trainers()

    stage("synthesise pre-training, training and test subjects "
          f"({config.pretrain_cases} + {config.train_cases} + {config.test_cases}, {config.spacing_mm} mm)")
    sources = output / "sources"
    pretrain_src = write_synthetic_release(sources / "pretraining", "brats2023-gli", config.pretrain_cases,
                                           seed=config.seed + 2, start_index=2000, spacing=config.spacing_mm,
                                           missing_rate=config.pretrain_missing_rate)
    train_src = write_synthetic_release(sources / "train", "brats2023-gli", config.train_cases, seed=config.seed,
                                        spacing=config.spacing_mm, preview=True)
    test_src = write_synthetic_release(sources / "test", "brats2023-gli", config.test_cases, seed=config.seed + 1,
                                       start_index=1000, spacing=config.spacing_mm)

    stage("convert to nnU-Net raw format")
    convert("brats2023-gli", pretrain_src, config.pretrain_dataset_id, name="SynthPretraining")
    train_raw = convert("brats2023-gli", train_src, config.dataset_id, name="SynthGLI")
    test_raw = convert("brats2023-gli", test_src, config.test_dataset_id, name="SynthGLITest")

    stage(f"fingerprint, plan and preprocess with {config.planner} (one network for both datasets)")
    for dataset in (config.pretrain_dataset_id, config.dataset_id):
        plan_and_preprocess(dataset, config.planner, num_processes=1)

    stage(f"pre-train BrainMVP: stock nnUNetv2_train {config.pretrain_dataset_id} {CONFIGURATION} all "
          f"-tr {config.pretrain_trainer}")
    _stock("nnUNetv2_train", str(config.pretrain_dataset_id), CONFIGURATION, "all", "-tr", config.pretrain_trainer,
           "-p", config.plans, "-device", "cpu", env={**os.environ, "nnUNet_n_proc_DA": "0"})
    pretrain_fold = results_folder(config.pretrain_dataset_id, config.pretrain_trainer, config.plans) / "fold_all"
    artefact = pretrain_fold / "brainmvp_pretrained.pt"

    stage(f"benchmark: scratch vs pre-trained, folds {list(config.folds)}, label budgets {list(config.budgets)}")
    benchmark = parse_config({
        "dataset": config.dataset_id, "base_plans": config.plans, "folds": list(config.folds),
        "output": str(output / "benchmark"), "device": "cpu",
        "budgets": {"fractions": list(config.budgets), "seed": config.seed},
        "arms": [{"name": "scratch", "trainer": config.finetune_trainer},
                 {"name": "pretrained", "trainer": config.finetune_trainer, "pretrained": str(artefact)}],
    }, output)
    os.environ["nnUNet_n_proc_DA"] = "0"  # in-process augmentation: only for training, it breaks planning
    report = run_benchmark(benchmark)
    os.environ.pop("nnUNet_n_proc_DA")

    stage("predict the held-out test subjects with the pre-trained model (all modalities, then FLAIR only)")
    pretrained_plans = f"{config.plans}_pretrained"
    dice = {}
    for label, available in (("all modalities", None), ("FLAIR only", ["flair"])):
        folder = output / "predictions" / ("all" if available is None else "flair_only")
        predict_folder(test_raw / "imagesTr", folder, config.dataset_id, plans=pretrained_plans,
                       trainer=config.finetune_trainer, folds=[config.folds[0]], available=available)
        dice[label] = _dice_of(folder, test_raw)

    print(f"\nDemo finished in {stage.elapsed() / 60:.1f} min. Synthetic data, tiny networks, seconds of CPU "
          "training: a smoke test of the pipeline, not evidence about pre-training.\n")
    print(report.markdown.read_text())
    print("Test-set Dice of the pre-trained model (fold 0):")
    regions = list(next(iter(dice.values())))
    print(f"  {'inputs':<16}" + "".join(f"{r:>18}" for r in regions))
    for label, values in dice.items():
        print(f"  {label:<16}" + "".join(f"{values[r]:>18.3f}" for r in regions))
    print(f"\nOutputs under {output}:\n  synthetic sources   {sources} (preview: {train_src / 'preview.png'})"
          f"\n  nnU-Net raw         {train_raw}\n  pre-training        {pretrain_fold} ({artefact.name}, templates/)"
          f"\n  benchmark report    {report.markdown}\n  per-case metrics    {report.csv}"
          f"\n  plots               {report.markdown.parent / 'plots'}\n  test predictions    {output / 'predictions'}")
    return {"report": report, "test_dice": dice}
