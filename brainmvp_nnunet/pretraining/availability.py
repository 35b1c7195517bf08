"""Which modalities a case has, and the per-sample choice of the modalities of the two views.

Availability comes from the ``brainmvp`` block of a converted dataset's ``dataset.json``, never from
pixel values (a missing channel is stored as zeros, but a real channel may be zero in a patch too)::

    "brainmvp": {"format_version": 1, "source": "...",
                 "channel_slots": {"0": "flair", "1": "t1", ...},
                 "available_slots": {"<case id>": ["flair", "t1"], ...},
                 "pretraining": true}

The choice is split TorchIO-style into a random draw (:func:`draw_modality_choices`, which only
produces small parameters) and a deterministic application (:func:`apply_modality_choices`), so the
draw can be logged, replayed and tested independently of the tensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from brainmvp_nnunet.data.modalities import SLOTS, slot_of
from brainmvp_nnunet.errors import PretrainingError, UnknownModalityError
from brainmvp_nnunet.pretraining._random import RandomSource, randint

FORMAT_VERSION = 1


@dataclass(frozen=True)
class BrainMVPBlock:
    """The parsed ``brainmvp`` block of a dataset.json.

    Attributes:
        channel_slots: canonical slot of every nnU-Net input channel, in channel order.
        available_slots: per case identifier, its available slots (canonical names, channel order).
        source: free-text provenance written by the converter.
        pretraining: whether the dataset was converted for pre-training.
    """

    channel_slots: tuple[str, ...]
    available_slots: Mapping[str, tuple[str, ...]]
    source: str
    pretraining: bool

    def channels(self, case: str) -> tuple[int, ...]:
        """Channel indices of the modalities available in ``case`` (ascending)."""
        return tuple(self.channel_slots.index(s) for s in self._slots(case))

    def slot_indices(self, case: str) -> tuple[int, ...]:
        """Template slot indices (positions in :data:`SLOTS`) of the modalities available in ``case``."""
        return tuple(SLOTS.index(s) for s in self._slots(case))

    def channel_slot_indices(self) -> tuple[int, ...]:
        """Template slot index of every channel: maps a chosen channel to its template."""
        return tuple(SLOTS.index(s) for s in self.channel_slots)

    def _slots(self, case: str) -> tuple[str, ...]:
        if case not in self.available_slots:
            raise PretrainingError(f"case {case}: not listed in dataset.json brainmvp.available_slots")
        return self.available_slots[case]


def parse_brainmvp_block(dataset_json: Mapping[str, Any]) -> BrainMVPBlock:
    """Parse and validate the ``brainmvp`` block of a dataset.json (passed as the whole dict).

    Slot names are normalised through the alias table; available slots are returned in channel order.

    Raises:
        PretrainingError: missing block, unknown format version, channels not numbered 0..C-1,
            unknown or repeated slots, or a case whose slots are empty or not among the channels.
    """
    block = dataset_json.get("brainmvp")
    if not isinstance(block, Mapping):
        raise PretrainingError("dataset.json has no 'brainmvp' block: convert the dataset with brainmvp first")
    if block.get("format_version") != FORMAT_VERSION:
        raise PretrainingError(
            f"dataset.json brainmvp.format_version is {block.get('format_version')!r}, expected {FORMAT_VERSION}"
        )
    raw_channels = block.get("channel_slots")
    if not isinstance(raw_channels, Mapping) or not raw_channels:
        raise PretrainingError("dataset.json brainmvp.channel_slots is missing or empty")
    if sorted(raw_channels) != [str(i) for i in range(len(raw_channels))]:
        raise PretrainingError(
            f"dataset.json brainmvp.channel_slots keys must be '0'..'{len(raw_channels) - 1}', "
            f"got {sorted(raw_channels)}"
        )
    try:
        channel_slots = tuple(slot_of(raw_channels[str(i)]) for i in range(len(raw_channels)))
    except UnknownModalityError as e:
        raise PretrainingError(f"dataset.json brainmvp.channel_slots: {e}") from None
    if len(set(channel_slots)) != len(channel_slots):
        raise PretrainingError(f"dataset.json brainmvp.channel_slots repeats a slot: {list(channel_slots)}")

    raw_available = block.get("available_slots")
    if not isinstance(raw_available, Mapping):
        raise PretrainingError("dataset.json brainmvp.available_slots is missing")
    available: dict[str, tuple[str, ...]] = {}
    for case, names in raw_available.items():
        try:
            slots = {slot_of(n) for n in names}
        except UnknownModalityError as e:
            raise PretrainingError(f"case {case}: {e}") from None
        if not slots:
            raise PretrainingError(f"case {case}: no available modality in brainmvp.available_slots")
        extra = slots - set(channel_slots)
        if extra:
            raise PretrainingError(f"case {case}: slots {sorted(extra)} are not dataset channels {list(channel_slots)}")
        available[case] = tuple(s for s in channel_slots if s in slots)
    return BrainMVPBlock(channel_slots, available, str(block.get("source", "")), bool(block.get("pretraining", False)))


@dataclass(frozen=True)
class ModalityChoice:
    """The modalities of one sample: the target channel k and the cross-modal partner channel j.

    ``partner_channel`` is ``None`` for a single-modality case: its cross-modal view then falls back
    to the template of the target slot.
    """

    target_channel: int
    partner_channel: int | None


def draw_modality_choice(channels: Sequence[int], rng: RandomSource = None) -> ModalityChoice:
    """Draw k uniformly among ``channels`` (the case's available channels) and j uniformly among the others.

    Raises:
        PretrainingError: when ``channels`` is empty or repeats a channel.
    """
    if not channels or len(set(channels)) != len(channels):
        raise PretrainingError(f"available channels must be non-empty and distinct, got {list(channels)}")
    target = channels[randint(len(channels), rng)]
    others = [c for c in channels if c != target]
    partner = others[randint(len(others), rng)] if others else None
    return ModalityChoice(target, partner)


def draw_modality_choices(batch_channels: Sequence[Sequence[int]], rng: RandomSource = None) -> list[ModalityChoice]:
    """One independent :func:`draw_modality_choice` per sample (upstream draws one k per batch)."""
    return [draw_modality_choice(c, rng) for c in batch_channels]


@dataclass(frozen=True)
class SelectedModalities:
    """The tensors the two views are built from (all on the device of the input batch).

    Attributes:
        target: (B, 1, Z, Y, X) modality k of every sample: the encoder's visible voxels and the
            reconstruction target.
        partner: (B, 1, Z, Y, X) modality j; zeros where ``has_partner`` is False (never used there).
        target_slots: (B,) int64 template slot index of every target.
        has_partner: (B,) bool, False for single-modality cases.
    """

    target: torch.Tensor
    partner: torch.Tensor
    target_slots: torch.Tensor
    has_partner: torch.Tensor


def apply_modality_choices(
    data: torch.Tensor, choices: Sequence[ModalityChoice], channel_slot_indices: Sequence[int]
) -> SelectedModalities:
    """Pick the chosen channels out of a (B, C, Z, Y, X) batch; deterministic given ``choices``.

    Args:
        data: the nnU-Net batch, one channel per dataset channel.
        choices: one :class:`ModalityChoice` per sample.
        channel_slot_indices: template slot index of every channel
            (:meth:`BrainMVPBlock.channel_slot_indices`).

    Raises:
        PretrainingError: when the batch size, channel count or a chosen channel does not fit.
    """
    if data.ndim != 5:
        raise PretrainingError(f"expected a (B, C, Z, Y, X) batch, got shape {tuple(data.shape)}")
    b, c = data.shape[:2]
    if len(choices) != b or len(channel_slot_indices) != c:
        raise PretrainingError(
            f"batch of {b} samples x {c} channels, but {len(choices)} choices "
            f"and {len(channel_slot_indices)} channel slots"
        )
    for ch in choices:
        if not 0 <= ch.target_channel < c or (ch.partner_channel is not None and not 0 <= ch.partner_channel < c):
            raise PretrainingError(f"choice {ch} outside the {c} channels of the batch")
    rows = torch.arange(b, device=data.device)
    k = torch.tensor([ch.target_channel for ch in choices], device=data.device)
    # A missing partner indexes the target channel and is zeroed below, keeping one gather for the batch.
    j = torch.tensor([ch.target_channel if ch.partner_channel is None else ch.partner_channel for ch in choices],
                     device=data.device)
    has_partner = torch.tensor([ch.partner_channel is not None for ch in choices], device=data.device)
    target = data[rows, k].unsqueeze(1)
    partner = data[rows, j].unsqueeze(1) * has_partner.view(b, 1, 1, 1, 1).to(data.dtype)
    slots = torch.tensor([channel_slot_indices[ch.target_channel] for ch in choices], dtype=torch.int64,
                         device=data.device)
    return SelectedModalities(target, partner, slots, has_partner)
