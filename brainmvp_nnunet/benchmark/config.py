"""The benchmark configuration (a TOML file) and the jobs it expands to.

Example (every key shown; ``output`` and ``pretrained`` paths are relative to the file)::

    dataset = 500
    base_plans = "BrainMVPPlans"        # default plans of every arm
    folds = [0, 1, 2, 3, 4]
    output = "benchmark_500"            # report and log folder
    device = "cuda"                     # cpu | cuda | mps (--gpus overrides)

    [budgets]
    fractions = [0.2, 0.4, 1.0]         # of each training fold, nested and seeded
    seed = 0

    [metrics]
    convention = "nnunet"               # nnunet | brats (empty-reference convention)
    tolerance_mm = 1.0                  # NSD tolerance
    p_values = true                     # Wilcoxon against the arm named "scratch"
    num_processes = 1

    [[arms]]
    name = "scratch"
    trainer = "nnUNetTrainerBrainMVP"

    [[arms]]
    name = "pretrained"
    trainer = "nnUNetTrainerBrainMVP"
    pretrained = "brainmvp_pretrained.pt"
    stem_mode = "repeat"                # repeat | reinit
    # plans = "BrainMVPPlans"           # per-arm plans (default: base_plans)
    # task = "classification"           # with a classification trainer

The module only reads and checks; nothing here touches nnU-Net.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brainmvp_nnunet.errors import BenchmarkError

REFERENCE_ARM = "scratch"
TASKS = ("segmentation", "classification")
CONVENTIONS = ("nnunet", "brats")
DEVICES = ("cpu", "cuda", "mps")
_TOP_KEYS = {"dataset", "base_plans", "folds", "output", "device", "budgets", "metrics", "arms"}
_BUDGET_KEYS = {"fractions", "seed"}
_METRIC_KEYS = {"convention", "tolerance_mm", "p_values", "num_processes"}
_ARM_KEYS = {"name", "trainer", "plans", "pretrained", "stem_mode", "task"}


@dataclass(frozen=True)
class Arm:
    """One way of training: trainer, plans and initialisation (``pretrained`` None = from scratch)."""

    name: str
    trainer: str
    plans: str
    pretrained: Path | None = None
    stem_mode: str = "repeat"
    task: str = "segmentation"


@dataclass(frozen=True)
class BenchmarkConfig:
    """A parsed, validated benchmark configuration."""

    dataset: int
    arms: tuple[Arm, ...]
    folds: tuple[int, ...]
    budgets: tuple[float, ...]
    budget_seed: int
    output: Path
    device: str = "cpu"
    convention: str = "nnunet"
    tolerance_mm: float = 1.0
    p_values: bool = True
    num_processes: int = 1


@dataclass(frozen=True)
class Job:
    """One training run of a benchmark: an arm at a label budget on a fold."""

    arm: Arm
    budget: float
    fold: int

    def describe(self) -> str:
        """``arm=pretrained budget=0.4 fold=1``, the form of the progress lines."""
        return f"arm={self.arm.name} budget={self.budget:g} fold={self.fold}"


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise BenchmarkError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _typed(value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    # bool is an int in Python; a `true` where a number belongs is a typo, not 1
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BenchmarkError(f"{what} has the wrong type: {value!r}")
    return value


def _path(value: Any, base_dir: Path, what: str) -> Path:
    path = Path(_typed(value, str, what)).expanduser()
    return path if path.is_absolute() else (base_dir / path)


def _arm(raw: Any, index: int, base_plans: str, base_dir: Path) -> Arm:
    where = f"[[arms]] #{index + 1}"
    if not isinstance(raw, dict):
        raise BenchmarkError(f"{where}: expected a table")
    _check_keys(raw, _ARM_KEYS, where)
    for key in ("name", "trainer"):
        if key not in raw:
            raise BenchmarkError(f"{where}: missing key {key!r}")
    task = _typed(raw.get("task", "segmentation"), str, f"{where}.task")
    if task not in TASKS:
        raise BenchmarkError(f"{where}: task {task!r} must be one of {', '.join(TASKS)}")
    stem_mode = _typed(raw.get("stem_mode", "repeat"), str, f"{where}.stem_mode")
    if stem_mode not in ("repeat", "reinit"):
        raise BenchmarkError(f"{where}: stem_mode {stem_mode!r} must be 'repeat' or 'reinit'")
    pretrained = raw.get("pretrained")
    return Arm(name=_typed(raw["name"], str, f"{where}.name"), trainer=_typed(raw["trainer"], str, f"{where}.trainer"),
               plans=_typed(raw.get("plans", base_plans), str, f"{where}.plans"),
               pretrained=None if pretrained is None else _path(pretrained, base_dir, f"{where}.pretrained"),
               stem_mode=stem_mode, task=task)


def _check_arms(arms: list[Arm], p_values: bool) -> None:
    if not arms:
        raise BenchmarkError("no [[arms]] given")
    names = [a.name for a in arms]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BenchmarkError(f"duplicate arm name(s): {', '.join(duplicates)}")
    if p_values and REFERENCE_ARM not in names:
        raise BenchmarkError(f"p-values are compared against an arm named {REFERENCE_ARM!r}, and there is none "
                             f"(arms: {', '.join(names)}); add it or set [metrics] p_values = false")
    # Without a checkpoint the plans variant (and so the results folder) does not carry the arm's name.
    scratch = [(a.trainer, a.plans) for a in arms if a.pretrained is None]
    clashes = sorted({f"{t} with {p}" for t, p in scratch if scratch.count((t, p)) > 1})
    if clashes:
        raise BenchmarkError(f"arms without a checkpoint would train into the same results folder: {clashes[0]}; "
                             f"give them different trainers or plans")
    for arm in arms:
        if arm.pretrained is not None and not arm.pretrained.is_file():
            raise BenchmarkError(f"arm {arm.name!r}: pre-trained checkpoint {arm.pretrained} not found")


def parse_config(raw: Mapping[str, Any], base_dir: Path) -> BenchmarkConfig:
    """Validate a decoded TOML document; relative paths are taken from ``base_dir``.

    Raises:
        BenchmarkError: naming the first problem (unknown key, wrong type, budget outside (0, 1], no
        scratch arm while p-values are requested, duplicate arm names, arms sharing a results folder).
    """
    _check_keys(raw, _TOP_KEYS, "top level")
    if "dataset" not in raw:
        raise BenchmarkError("missing key 'dataset' (the nnU-Net dataset id)")
    budgets_raw = raw.get("budgets", {})
    metrics_raw = raw.get("metrics", {})
    for name, table in (("[budgets]", budgets_raw), ("[metrics]", metrics_raw)):
        if not isinstance(table, dict):
            raise BenchmarkError(f"{name}: expected a table")
    _check_keys(budgets_raw, _BUDGET_KEYS, "[budgets]")
    _check_keys(metrics_raw, _METRIC_KEYS, "[metrics]")

    fractions = [float(_typed(f, (int, float), "[budgets] fraction"))
                 for f in _typed(budgets_raw.get("fractions", [1.0]), list, "[budgets] fractions")]
    bad = [f for f in fractions if not 0.0 < f <= 1.0]
    if bad or not fractions:
        raise BenchmarkError(f"[budgets] fractions must be non-empty and in (0, 1]; got {fractions}")
    folds = [_typed(f, int, "folds entry") for f in _typed(raw.get("folds", [0]), list, "folds")]
    if not folds or any(f < 0 for f in folds) or len(set(folds)) != len(folds):
        raise BenchmarkError(f"folds must be distinct non-negative integers; got {folds}")
    convention = _typed(metrics_raw.get("convention", "nnunet"), str, "[metrics] convention")
    if convention not in CONVENTIONS:
        raise BenchmarkError(f"[metrics] convention {convention!r} must be one of {', '.join(CONVENTIONS)}")
    tolerance = float(_typed(metrics_raw.get("tolerance_mm", 1.0), (int, float), "[metrics] tolerance_mm"))
    if tolerance < 0:
        raise BenchmarkError(f"[metrics] tolerance_mm must not be negative; got {tolerance}")
    device = _typed(raw.get("device", "cpu"), str, "device")
    if device not in DEVICES:
        raise BenchmarkError(f"device {device!r} must be one of {', '.join(DEVICES)}")
    p_values = _typed(metrics_raw.get("p_values", True), bool, "[metrics] p_values")
    base_plans = _typed(raw.get("base_plans", "BrainMVPPlans"), str, "base_plans")
    arms_raw = _typed(raw.get("arms", []), list, "arms")
    arms = [_arm(a, i, base_plans, base_dir) for i, a in enumerate(arms_raw)]
    _check_arms(arms, p_values)
    return BenchmarkConfig(
        dataset=_typed(raw["dataset"], int, "dataset"), arms=tuple(arms), folds=tuple(folds),
        budgets=tuple(sorted(set(fractions))), budget_seed=_typed(budgets_raw.get("seed", 0), int, "[budgets] seed"),
        output=_path(raw.get("output", "benchmark"), base_dir, "output"), device=device, convention=convention,
        tolerance_mm=tolerance, p_values=p_values,
        num_processes=_typed(metrics_raw.get("num_processes", 1), int, "[metrics] num_processes"))


def load_config(path: str | Path) -> BenchmarkConfig:
    """Read and validate a benchmark TOML file (relative paths in it are relative to the file)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise BenchmarkError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise BenchmarkError(f"{path}: not valid TOML ({exc})") from exc
    return parse_config(raw, path.resolve().parent)


def expand_jobs(config: BenchmarkConfig) -> list[Job]:
    """Every (arm, budget, fold), budget-major then fold then arm, so that paired results arrive together."""
    return [Job(arm, budget, fold) for budget in config.budgets for fold in config.folds for arm in config.arms]
