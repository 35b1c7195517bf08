"""Reading checkpoint files without unpickling arbitrary objects.

Every checkpoint goes through :func:`safe_torch_load`: ``torch.load(..., weights_only=True)``, so a
file that embeds a class instance (which could run code when unpickled) is refused instead of
executed. nnU-Net's own checkpoints hold numpy scalars in their training log (``np.nanmean`` of the
pseudo Dice); numpy scalars, dtypes and plain numeric arrays are data, not code, so they are allowed
for the duration of the call only (the process-wide allowlist is left untouched).
"""

from __future__ import annotations

import importlib
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from brainmvp_nnunet.errors import CheckpointError

_UNPICKLER_REASON = re.compile(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\n|$)", re.DOTALL)
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")


def _numpy_safe_globals() -> list[Any]:
    """The numpy callables a pickled scalar/array refers to (``numpy._core`` from numpy 2, ``numpy.core`` before)."""
    try:
        multiarray = importlib.import_module("numpy._core.multiarray")
    except ImportError:
        multiarray = importlib.import_module("numpy.core.multiarray")
    dtype_classes = [getattr(np.dtypes, name) for name in np.dtypes.__all__]
    return [multiarray.scalar, multiarray._reconstruct, np.ndarray, np.dtype, *dtype_classes]


def safe_torch_load(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """Load a torch file with ``weights_only=True`` onto ``map_location``.

    Raises:
        CheckpointError: naming the file when it does not exist, is corrupt, or embeds an object
            other than tensors, numbers, strings, containers and numpy data.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"file {path}: not found")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message is long and suggests weights_only=False, which we never do: keep the cause only
        culprit = _UNSUPPORTED_GLOBAL.search(str(exc))
        if culprit:
            raise CheckpointError(f"file {path}: refused, it embeds an object of type {culprit.group(1)}; "
                                  f"checkpoints are only read with weights_only=True (never unpickled), "
                                  f"re-save it as plain tensors and containers") from exc
        reason = _UNPICKLER_REASON.search(str(exc))
        raise CheckpointError(f"file {path}: cannot be read with weights_only=True, corrupt or not a torch "
                              f"file ({reason.group(1) if reason else type(exc).__name__})") from exc
    except Exception as exc:  # corrupt or truncated file, unknown format
        raise CheckpointError(f"file {path}: cannot be read ({type(exc).__name__}: {exc})") from exc
