"""One exception type per failure family.

Every error names what failed (a case, a file, an option) and why, so that a command-line user can
act on the message alone. The CLI turns any :class:`BrainMVPError` into a one-line message and a
non-zero exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class BrainMVPError(Exception):
    """Base class of every error this package raises on purpose."""


class UnknownModalityError(BrainMVPError, KeyError):
    """A modality name that the alias table does not know."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class SynthError(BrainMVPError):
    """Bad options for, or an unwritable destination of, the synthetic data generator."""


class NnUNetEnvError(BrainMVPError):
    """nnU-Net's environment (nnUNet_raw, nnUNet_preprocessed, nnUNet_results) is not usable."""


class LocatedError(BrainMVPError):
    """An error about one case and/or file: the message starts with where it happened."""

    def __init__(self, reason: str, case: str | None = None, file: str | None = None):
        self.case, self.file, self.reason = case, file, reason
        where = ", ".join(p for p in (f"case {case}" if case else "", f"file {file}" if file else "") if p)
        super().__init__(f"{where}: {reason}" if where else reason)


class ConversionError(LocatedError):
    """A source dataset cannot be converted; names the case, the file and the reason."""


class PlanningError(BrainMVPError):
    """A dataset cannot be planned with the requested planner (patch, spacing, topology)."""


class NetworkConfigError(BrainMVPError, ValueError):
    """A network cannot be built with the given arguments (e.g. a patch not divisible by the stride)."""


class CheckpointError(BrainMVPError):
    """A checkpoint cannot be read, is unsafe to unpickle, or does not fit the target network."""


class PretrainingError(BrainMVPError, ValueError):
    """Pre-training options or inputs that cannot work (mask/block sizes, the dataset.json ``brainmvp``
    block, a case off the template grid, loss settings)."""


class EvaluationError(BrainMVPError, ValueError):
    """Metrics or a report cannot be computed from the given inputs (mismatched masks or images, a
    malformed table or ``summary.json``, an unknown empty-mask convention)."""


class BenchmarkError(BrainMVPError, ValueError):
    """A benchmark configuration that cannot run (unknown keys, bad budgets, arms that collide) or a
    benchmark job that failed."""


class PredictionError(LocatedError):
    """Inputs or a model that prediction cannot use; names the case, the file and the reason."""
