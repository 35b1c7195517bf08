"""``brainmvp benchmark`` and ``brainmvp report``: train arms x label budgets x folds, then report.

The benchmark prepares one plans variant per (arm, budget) with :func:`prepare_finetune_plans` (so a
pre-trained checkpoint that does not fit fails before any training), trains every run that is not
finished with nnU-Net's own ``run_training`` (:func:`run_finetune`) and evaluates each fold's
validation predictions against ``nnUNet_preprocessed/<Dataset>/gt_segmentations``. A run counts as
finished when its ``checkpoint_final.pth`` and validation summary exist, so an interrupted benchmark
resumes where it stopped; a run with only ``checkpoint_latest.pth`` continues from it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

from brainmvp_nnunet.atomic import atomic_write_bytes
from brainmvp_nnunet.benchmark.collect import FinishedRun, finished_runs, is_finished, run_rows
from brainmvp_nnunet.benchmark.config import REFERENCE_ARM, BenchmarkConfig, expand_jobs
from brainmvp_nnunet.benchmark.scheduling import run_jobs
from brainmvp_nnunet.errors import BenchmarkError, EvaluationError
from brainmvp_nnunet.evaluation.report import ReportFiles, write_report
from brainmvp_nnunet.nnunet_env import activate_ext_trainers, require_nnunet_paths
from brainmvp_nnunet.planners.variants import BUDGET_KEY, plans_path, results_folder
from brainmvp_nnunet.workflows.finetune import CONFIGURATION, prepare_finetune_plans, run_finetune


@dataclass(frozen=True)
class TrainJob:
    """A run to train, in a picklable form for GPU worker processes."""

    number: int
    total: int
    description: str
    dataset: int
    plans: str
    trainer: str
    fold: int
    device: str
    fold_dir: Path


def _progress(number: int, total: int, text: str) -> None:
    print(f"[benchmark {number}/{total}] {text}", flush=True)


def train_job(job: TrainJob) -> None:
    """Train (or continue) one run; top level so that GPU workers can unpickle it."""
    resume = any(job.fold_dir.glob("checkpoint_*.pth"))  # interrupted: continue rather than restart
    _progress(job.number, job.total, f"{job.description} {'continuing' if resume else 'training'} "
                                     f"({job.trainer}, {job.plans}, {job.device})")
    run_finetune(job.dataset, job.plans, job.trainer, [job.fold], job.device, continue_training=resume)
    _progress(job.number, job.total, f"{job.description} done")


def _reference_arm(config: BenchmarkConfig) -> str:
    names = [arm.name for arm in config.arms]
    # without p-values requested there need not be a scratch arm; the first arm is then the reference
    return REFERENCE_ARM if REFERENCE_ARM in names else names[0]


def run_benchmark(config: BenchmarkConfig, gpus: Sequence[str] = (), device: str | None = None,
                  dry_run: bool = False) -> ReportFiles | None:
    """Train every unfinished run of ``config``, then write the report into ``config.output``.

    Args:
        config: the validated configuration.
        gpus: GPU indices; one worker process per GPU (device ``cuda``). Empty: in this process.
        device: overrides ``config.device`` without ``gpus``.
        dry_run: prepare the plans and list the runs (finished or not), train and report nothing.

    Returns:
        The report's files (``None`` for a dry run).

    Raises:
        BenchmarkError: some runs failed (the others are kept; re-running resumes).
    """
    roots = require_nnunet_paths()
    activate_ext_trainers()
    dataset_name = maybe_convert_to_dataset_name(config.dataset)
    device = "cuda" if gpus else (device or config.device)
    missing = sorted({arm.plans for arm in config.arms if not plans_path(config.dataset, arm.plans).is_file()})
    if missing:
        raise BenchmarkError(f"plans {', '.join(missing)} of dataset {config.dataset} not found; run "
                             f"`brainmvp plan -d {config.dataset}` (or nnUNetv2_plan_and_preprocess) first")
    plans = {(arm.name, budget): prepare_finetune_plans(config.dataset, arm.plans, arm.pretrained, arm.name,
                                                        arm.stem_mode, budget, config.budget_seed)
             for arm in config.arms for budget in config.budgets}
    jobs = expand_jobs(config)
    fold_dirs = [results_folder(config.dataset, job.arm.trainer, plans[job.arm.name, job.budget], CONFIGURATION)
                 / f"fold_{job.fold}" for job in jobs]
    todo = []
    for number, (job, fold_dir) in enumerate(zip(jobs, fold_dirs, strict=True), start=1):
        if is_finished(fold_dir, job.arm.task):
            _progress(number, len(jobs), f"{job.describe()} finished, skipped ({fold_dir})")
        elif dry_run:
            _progress(number, len(jobs), f"{job.describe()} to train ({fold_dir})")
        else:
            todo.append(TrainJob(number, len(jobs), job.describe(), config.dataset, plans[job.arm.name, job.budget],
                                 job.arm.trainer, job.fold, device, fold_dir))
    if dry_run:
        return None
    failed = [(todo[o.index], o.error) for o in run_jobs(todo, train_job, gpus) if o.error]
    if failed:
        details = "\n".join(f"  {job.description}: {error.strip().splitlines()[-1]}" for job, error in failed)
        raise BenchmarkError(f"{len(failed)} of {len(todo)} run(s) failed (finished runs are kept; re-run to "
                             f"resume):\n{details}")

    gt_folder = roots["nnUNet_preprocessed"] / dataset_name / "gt_segmentations"
    rows = []
    for job, fold_dir in zip(jobs, fold_dirs, strict=True):
        run = FinishedRun(fold_dir, str(job.fold), job.budget, job.arm.task)
        rows += run_rows(run, job.arm.name, gt_folder=gt_folder, recompute=True, convention=config.convention,
                         tolerance_mm=config.tolerance_mm, num_processes=config.num_processes)
    config.output.mkdir(parents=True, exist_ok=True)
    runs = [{"arm": j.arm.name, "budget": j.budget, "fold": j.fold, "task": j.arm.task, "fold_dir": str(d)}
            for j, d in zip(jobs, fold_dirs, strict=True)]
    atomic_write_bytes(config.output / "runs.json", (json.dumps(runs, indent=1) + "\n").encode())
    segmentation = any(arm.task == "segmentation" for arm in config.arms)
    return write_report(rows, config.output, convention=config.convention if segmentation else None,
                        reference_arm=_reference_arm(config), title=f"Benchmark {dataset_name}",
                        tolerance_mm=config.tolerance_mm if segmentation else None)


def plans_budget(plans: dict) -> float:
    """Label budget recorded in a plans file (1.0 for every plans without our key, e.g. stock runs)."""
    return float(plans.get(BUDGET_KEY, {}).get("fraction", 1.0))


def report_results(folders: Sequence[Path], out_dir: Path, convention: str = "nnunet", recompute: bool = False,
                   tolerance_mm: float = 1.0, reference_arm: str | None = None, gt_folder: Path | None = None,
                   num_processes: int = 1) -> ReportFiles:
    """The benchmark report for existing ``<Trainer>__<Plans>__<configuration>`` results folders.

    Each folder is one arm, named after the folder; its budget comes from the ``plans.json`` copy in
    it. Dice is read from nnU-Net's ``summary.json`` unless ``recompute`` (Dice, HD95, NSD from the
    validation predictions) or the BraTS convention (nnU-Net's summary always uses NaN) asks for more.

    Args:
        folders: results folders.
        out_dir: report folder.
        convention: empty-reference convention.
        recompute: recompute Dice, HD95 and NSD.
        tolerance_mm: NSD tolerance.
        reference_arm: the arm p-values compare against (default: the first folder).
        gt_folder: reference segmentations (default: ``nnUNet_preprocessed/<Dataset>/gt_segmentations``
            of the dataset folder the results folder sits in).
        num_processes: metric worker processes.
    """
    recompute = recompute or convention == "brats"
    rows: list[dict[str, object]] = []
    tasks = set()
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise EvaluationError(f"{folder}: not a results folder")
        plans_file = folder / "plans.json"
        budget = plans_budget(json.loads(plans_file.read_text())) if plans_file.is_file() else 1.0
        runs = finished_runs(folder, budget)
        if not runs:
            raise EvaluationError(f"{folder}: no finished fold (fold_k/checkpoint_final.pth and fold_k/validation/"
                                  f"summary.json)")
        references = gt_folder
        if recompute and references is None:
            references = require_nnunet_paths()["nnUNet_preprocessed"] / folder.parent.name / "gt_segmentations"
        for run in runs:
            tasks.add(run.task)
            rows += run_rows(run, folder.name, gt_folder=references, recompute=recompute, convention=convention,
                             tolerance_mm=tolerance_mm, num_processes=num_processes)
    segmentation = "segmentation" in tasks
    return write_report(rows, out_dir, convention=convention if segmentation else None,
                        reference_arm=reference_arm or Path(folders[0]).name, title="Results report",
                        tolerance_mm=tolerance_mm if recompute else None)
