"""``brainmvp demo``: the whole pipeline, end to end, on embedded synthetic data (CPU, minutes).

Stages: synthesise a BraTS-2023-style training release and a disjoint test release, convert both to
nnU-Net raw format, plan and preprocess, train a short run with the stock ``nnUNetv2_train``,
predict the test release with the stock ``nnUNetv2_predict`` and score it with nnU-Net's
evaluator. Stock nnU-Net commands run as subprocesses, exactly as a user would run them.
"""

from __future__ import annotations

import json
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
    """Sizes of the demo; the defaults finish in a few minutes on 2 CPU cores."""

    output: Path
    train_cases: int = 10
    test_cases: int = 2
    spacing_mm: float = 3.0
    dataset_id: int = 500
    test_dataset_id: int = 501
    planner: str = "BrainMVPPlanner_Tiny32"
    trainer: str = "nnUNetTrainerBrainMVPDemo"
    seed: int = 0


class DemoError(BrainMVPError):
    """A stage of the demo failed (the message names the stage and its log)."""


class _Stages:
    """Numbered stage headers with elapsed time, so a user sees where the demo is."""

    def __init__(self, total: int):
        self.total, self.number, self.start = total, 0, time.monotonic()

    def __call__(self, title: str) -> None:
        self.number += 1
        print(f"\n=== [{self.number}/{self.total}] {title} (t={time.monotonic() - self.start:.0f} s) ===", flush=True)


def _stock(command: str, *args: str) -> None:
    """Run a stock nnU-Net console script of this environment, streaming its output."""
    executable = Path(sys.executable).parent / command
    print(f"$ {command} {' '.join(args)}", flush=True)
    result = subprocess.run([str(executable), *args], env=os.environ.copy(), check=False)
    if result.returncode != 0:
        raise DemoError(f"{command} failed with exit code {result.returncode} (see its output above)")


def _nnunet_runtime_env() -> None:
    # One process per pool on a 2-core machine, no torch.compile on CPU, trainers discoverable.
    os.environ.setdefault("nnUNet_def_n_proc", "1")
    os.environ.setdefault("nnUNet_compile", "f")
    activate_ext_trainers()


def run_demo(config: DemoConfig) -> dict:
    """Run every stage and return the test-set summary (mean Dice per region and overall)."""
    from brainmvp_nnunet.dataset_conversion import convert
    from brainmvp_nnunet.planners.api import plan_and_preprocess

    output = Path(config.output).resolve()
    if output.exists() and any(output.iterdir()):
        raise DemoError(f"output folder {output} is not empty; remove it or pass another --output")
    stage = _Stages(6)
    roots = use_nnunet_roots(output)
    _nnunet_runtime_env()

    stage(f"synthesise {config.train_cases} training + {config.test_cases} test subjects ({config.spacing_mm} mm)")
    sources = output / "sources"
    train_src = write_synthetic_release(sources / "brats2023-gli-train", "brats2023-gli", config.train_cases,
                                        seed=config.seed, spacing=config.spacing_mm, preview=True)
    test_src = write_synthetic_release(sources / "brats2023-gli-test", "brats2023-gli", config.test_cases,
                                       seed=config.seed + 1, start_index=1000, spacing=config.spacing_mm)

    stage("convert to nnU-Net raw format")
    train_raw = convert("brats2023-gli", train_src, config.dataset_id, name="SynthGLI")
    test_raw = convert("brats2023-gli", test_src, config.test_dataset_id, name="SynthGLITest")

    stage(f"fingerprint, plan and preprocess with {config.planner}")
    plans = plan_and_preprocess(config.dataset_id, config.planner, num_processes=1)

    stage(f"train fold 0 with stock nnUNetv2_train -tr {config.trainer}")
    os.environ["nnUNet_n_proc_DA"] = "0"  # single-process augmentation: only for training, breaks planning
    _stock("nnUNetv2_train", str(config.dataset_id), CONFIGURATION, "0", "-tr", config.trainer, "-p", plans,
           "-device", "cpu")
    os.environ.pop("nnUNet_n_proc_DA")

    stage("predict the held-out test subjects with stock nnUNetv2_predict")
    predictions = output / "predictions"
    _stock("nnUNetv2_predict", "-i", str(test_raw / "imagesTr"), "-o", str(predictions), "-d",
           str(config.dataset_id), "-c", CONFIGURATION, "-f", "0", "-tr", config.trainer, "-p", plans,
           "-device", "cpu", "--disable_progress_bar", "-npp", "1", "-nps", "1")

    stage("score the predictions (Dice per BraTS region)")
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder2

    summary_file = predictions / "summary.json"
    compute_metrics_on_folder2(str(test_raw / "labelsTr"), str(predictions), str(test_raw / "dataset.json"),
                               str(predictions / "plans.json"), str(summary_file), num_processes=1)
    summary = json.loads(summary_file.read_text())
    # nnU-Net keys regions by str(tuple), e.g. "(2, 3)"; labels by str(int).
    names = {str(tuple(v)) if isinstance(v, list) else str(v): k
             for k, v in json.loads((train_raw / "dataset.json").read_text())["labels"].items()}
    result = {"mean_dice": summary["foreground_mean"]["Dice"],
              "dice_per_region": {names.get(key, key): value["Dice"] for key, value in summary["mean"].items()},
              "summary_file": str(summary_file)}
    model_folder = roots["nnUNet_results"] / train_raw.name / f"{config.trainer}__{plans}__{CONFIGURATION}"
    print("\nDemo finished. Test-set Dice (synthetic data, a few CPU iterations: a smoke test, not a result):")
    for region, dice in result["dice_per_region"].items():
        print(f"  {region:<16} {dice:.3f}")
    print(f"  {'mean':<16} {result['mean_dice']:.3f}")
    print(f"\nOutputs under {output}:\n  synthetic sources   {sources} (preview: {train_src / 'preview.png'})"
          f"\n  nnU-Net raw         {train_raw}\n  trained model       {model_folder}"
          f"\n  predictions         {predictions}\n  Dice summary        {summary_file}")
    return result
