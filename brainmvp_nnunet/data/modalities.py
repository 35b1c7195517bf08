"""Canonical modality slots and the alias table that maps source file names onto them.

The slot order is fixed: it is the order of the learnable templates of pre-training and of the
official BrainMVP release checkpoint (``rep_template``), so it must never be reordered; new slots
may only be appended.
"""

from __future__ import annotations

from collections.abc import Iterable

from brainmvp_nnunet.errors import UnknownModalityError

SLOTS: tuple[str, ...] = ("flair", "t1", "t1c", "t2", "mra", "pd", "dwi", "adc")

# Display names used for nnU-Net channel_names (anything but "CT" means z-score normalisation).
DISPLAY_NAMES: dict[str, str] = {
    "flair": "FLAIR", "t1": "T1", "t1c": "T1c", "t2": "T2",
    "mra": "MRA", "pd": "PD", "dwi": "DWI", "adc": "ADC",
}

_ALIASES: dict[str, tuple[str, ...]] = {
    "flair": ("flair", "t2f", "t2flair", "t2-flair", "t2_flair", "fla"),
    "t1": ("t1", "t1n", "t1w", "t1native", "mprage", "t1-ir", "t1ir"),
    "t1c": ("t1c", "t1ce", "t1gd", "t1post", "t1-gd", "t1_gd", "t1wce", "t1contrast"),
    "t2": ("t2", "t2w"),
    "mra": ("mra", "tof"),
    "pd": ("pd", "pdw"),
    "dwi": ("dwi", "dw", "trace"),
    "adc": ("adc",),
}

ALIAS_TABLE: dict[str, str] = {alias: slot for slot, aliases in _ALIASES.items() for alias in aliases}


def slot_of(name: str) -> str:
    """Return the canonical slot of a modality name (case-insensitive), e.g. ``"T1GD" -> "t1c"``.

    Raises:
        UnknownModalityError: when the name is not in the alias table.
    """
    key = name.strip().lower()
    if key not in ALIAS_TABLE:
        known = ", ".join(sorted(ALIAS_TABLE))
        raise UnknownModalityError(f"unknown modality {name!r}; known names: {known}")
    return ALIAS_TABLE[key]


def slot_index(slot: str) -> int:
    """Index of a canonical slot (or alias) in :data:`SLOTS`."""
    return SLOTS.index(slot_of(slot))


def sort_slots(slots: Iterable[str]) -> list[str]:
    """Canonical slots in template order, duplicates removed."""
    return sorted({slot_of(s) for s in slots}, key=SLOTS.index)
