"""Which channel files a case has at prediction time, and which of them may be used.

nnU-Net names an input channel ``<case>_<XXXX><file_ending>``; here a channel whose file is absent,
or whose modality is not among the allowed ones (``--available``), is missing and gets filled later.
Everything is checked before anything is predicted, and every failure names the case and the file.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from brainmvp_nnunet.data.modalities import slot_of
from brainmvp_nnunet.errors import PredictionError, UnknownModalityError

# Geometry may differ by rounding in the header only (float32 storage of spacing and origin).
_GEOMETRY_RTOL, _GEOMETRY_ATOL = 1e-5, 1e-4


@dataclass(frozen=True)
class CaseChannels:
    """The inputs of one case: the channel files that are used and the channels to fill.

    Attributes:
        case: case identifier (the output is ``<case><file_ending>``).
        files: channel index -> image file, for the channels that are used (ascending).
        missing: channel indices to fill (absent files and modalities that are not allowed).
    """

    case: str
    files: Mapping[int, Path]
    missing: tuple[int, ...]


def find_case_files(folder: Path, file_ending: str, num_channels: int) -> dict[str, dict[int, Path]]:
    """Group ``<case>_<XXXX><file_ending>`` files of ``folder`` by case: case -> {channel: file}.

    Other files are ignored, as nnU-Net does.

    Raises:
        PredictionError: when the folder does not exist or holds no such file, or a file names a
            channel the model does not have.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PredictionError("input folder does not exist", file=str(folder))
    pattern = re.compile(rf"(?P<case>.+)_(?P<channel>\d{{4}}){re.escape(file_ending)}")
    cases: dict[str, dict[int, Path]] = {}
    for path in sorted(folder.iterdir()):
        match = pattern.fullmatch(path.name)
        if match is None or not path.is_file():
            continue
        channel = int(match["channel"])
        if channel >= num_channels:
            raise PredictionError(f"channel {channel} but the model has {num_channels} input channels "
                                  f"(_0000.._{num_channels - 1:04d})", case=match["case"], file=str(path))
        cases.setdefault(match["case"], {})[channel] = path
    if not cases:
        raise PredictionError(f"no image named CASE_XXXX{file_ending}", file=str(folder))
    return cases


def parse_available(names: Sequence[str] | None, channel_slots: Sequence[str]) -> tuple[int, ...]:
    """Channel indices of the modalities named in ``--available`` (aliases allowed); None means all.

    Raises:
        PredictionError: an unknown modality name, or one that is not a channel of the dataset.
    """
    if names is None:
        return tuple(range(len(channel_slots)))
    channels = set()
    for name in names:
        try:
            slot = slot_of(name)
        except UnknownModalityError as exc:
            raise PredictionError(f"--available: {exc}") from None
        if slot not in channel_slots:
            raise PredictionError(f"--available: modality {name!r} ({slot}) is not a channel of this model; "
                                  f"its channels are {', '.join(channel_slots)}")
        channels.add(channel_slots.index(slot))
    if not channels:
        raise PredictionError("--available names no modality")
    return tuple(sorted(channels))


def select_channels(case: str, files: Mapping[int, Path], allowed: Iterable[int],
                    channel_slots: Sequence[str]) -> CaseChannels:
    """The channels of ``case`` that have a file and are allowed; the others are missing.

    Raises:
        PredictionError: when no channel is left (a case cannot be predicted from templates alone).
    """
    allowed = set(allowed)
    used = {c: files[c] for c in sorted(files) if c in allowed}
    if not used:
        found = ", ".join(channel_slots[c] for c in sorted(files)) or "none"
        wanted = ", ".join(channel_slots[c] for c in sorted(allowed))
        raise PredictionError(f"no available channel (files for: {found}; allowed: {wanted})", case=case)
    return CaseChannels(case, used, tuple(c for c in range(len(channel_slots)) if c not in used))


def _numeric_entries(properties: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Every numeric entry of a (nested) reader properties dict, keyed by its dotted path."""
    entries: dict[str, np.ndarray] = {}
    for key, value in properties.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            entries.update(_numeric_entries(value, f"{name}."))
            continue
        try:
            entries[name] = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            continue  # e.g. a file name stored by a reader
    return entries


def geometry_difference(reference_shape: Sequence[int], reference_properties: Mapping[str, Any],
                        shape: Sequence[int], properties: Mapping[str, Any]) -> str | None:
    """Why an image does not share the reference image's grid, or None when it does.

    Compares the array shape and every numeric entry of nnU-Net reader properties (SimpleITK's spacing,
    origin and direction, nibabel's affines), so it works with any of nnU-Net's readers.
    """
    if tuple(shape) != tuple(reference_shape):
        return f"shape {tuple(shape)} differs from {tuple(reference_shape)}"
    reference = _numeric_entries(reference_properties)
    for name, value in _numeric_entries(properties).items():
        ref = reference.get(name)
        if ref is not None and (ref.shape != value.shape
                                or not np.allclose(value, ref, rtol=_GEOMETRY_RTOL, atol=_GEOMETRY_ATOL)):
            return f"{name} {value.tolist()} differs from {ref.tolist()}"
    return None


def nonempty_subsets(num_channels: int) -> list[tuple[int, ...]]:
    """Every non-empty subset of ``range(num_channels)``: 2^C - 1 of them, by size, then channel order."""
    return [s for k in range(1, num_channels + 1) for s in itertools.combinations(range(num_channels), k)]


def subset_name(channels: Iterable[int], channel_slots: Sequence[str]) -> str:
    """``flair+t1`` for channels (0, 1) of a flair, t1, ... dataset (also a folder name)."""
    return "+".join(channel_slots[c] for c in sorted(channels))
