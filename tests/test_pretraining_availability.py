"""Availability block parsing and the per-sample modality choice."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from brainmvp_nnunet.errors import PretrainingError
from brainmvp_nnunet.pretraining.availability import (
    ModalityChoice,
    apply_modality_choices,
    draw_modality_choice,
    draw_modality_choices,
    parse_brainmvp_block,
)


def _dataset_json(**overrides: object) -> dict:
    block = {
        "format_version": 1,
        "source": "synthetic",
        "channel_slots": {"0": "flair", "1": "t1", "2": "t1c", "3": "t2"},
        "available_slots": {"a": ["t2", "flair", "t1", "t1c"], "b": ["T1"], "c": ["t2", "flair"]},
        "pretraining": True,
    }
    block.update(overrides)
    return {"name": "x", "brainmvp": block}


def test_parse_block() -> None:
    block = parse_brainmvp_block(_dataset_json())
    assert block.channel_slots == ("flair", "t1", "t1c", "t2")
    assert block.available_slots["a"] == ("flair", "t1", "t1c", "t2")  # channel order
    assert block.channels("b") == (1,) and block.channels("c") == (0, 3)
    assert block.slot_indices("c") == (0, 3)
    assert block.pretraining and block.source == "synthetic"


def test_channel_slot_indices_follow_template_order() -> None:
    block = parse_brainmvp_block(_dataset_json(channel_slots={"0": "t2", "1": "adc"}, available_slots={"a": ["adc"]}))
    assert block.channel_slot_indices() == (3, 7)
    assert block.slot_indices("a") == (7,)


@pytest.mark.parametrize(
    ("dataset_json", "message"),
    [
        ({"name": "x"}, "no 'brainmvp' block"),
        (_dataset_json(format_version=2), "format_version"),
        (_dataset_json(channel_slots={"0": "flair", "2": "t1"}), "keys must be"),
        (_dataset_json(channel_slots={"0": "flair", "1": "xray"}), "unknown modality"),
        (_dataset_json(channel_slots={"0": "flair", "1": "t2f"}), "repeats a slot"),
        (_dataset_json(available_slots={"a": ["adc"]}), "case a: slots ['adc']"),
        (_dataset_json(available_slots={"a": []}), "case a: no available modality"),
        (_dataset_json(available_slots=None), "available_slots is missing"),
    ],
)
def test_parse_block_errors(dataset_json: dict, message: str) -> None:
    with pytest.raises(PretrainingError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_brainmvp_block(dataset_json)


def test_unknown_case() -> None:
    with pytest.raises(PretrainingError, match="case zz"):
        parse_brainmvp_block(_dataset_json()).channels("zz")


@pytest.mark.parametrize("rng_kind", ["torch", "numpy"])
def test_draw_covers_all_ordered_pairs_and_never_repeats(rng_kind: str) -> None:
    rng = torch.Generator().manual_seed(0) if rng_kind == "torch" else np.random.default_rng(0)
    channels = (0, 2, 3)
    seen = set()
    for _ in range(300):
        choice = draw_modality_choice(channels, rng)
        assert choice.target_channel in channels and choice.partner_channel in channels
        assert choice.partner_channel != choice.target_channel
        seen.add((choice.target_channel, choice.partner_channel))
    assert seen == set(itertools.permutations(channels, 2))


def test_single_modality_falls_back_to_template() -> None:
    assert draw_modality_choice((2,)) == ModalityChoice(2, None)


def test_draw_is_reproducible_per_seed() -> None:
    batch = [(0, 1, 2, 3), (1,), (0, 3)]
    a = draw_modality_choices(batch, torch.Generator().manual_seed(5))
    b = draw_modality_choices(batch, torch.Generator().manual_seed(5))
    assert a == b and a[1] == ModalityChoice(1, None)


@pytest.mark.parametrize("channels", [(), (1, 1)])
def test_draw_rejects_bad_channels(channels: tuple[int, ...]) -> None:
    with pytest.raises(PretrainingError):
        draw_modality_choice(channels)


def test_apply_choices_picks_channels() -> None:
    # Channel c of sample b is filled with 10 * b + c.
    data = (torch.arange(2).view(2, 1) * 10 + torch.arange(4).view(1, 4)).float().view(2, 4, 1, 1, 1)
    data = data.expand(2, 4, 2, 2, 2).contiguous()
    sel = apply_modality_choices(data, [ModalityChoice(3, 2), ModalityChoice(1, None)], (0, 1, 2, 3))
    assert sel.target.shape == (2, 1, 2, 2, 2)
    assert sel.target[:, 0, 0, 0, 0].tolist() == [3.0, 11.0]
    assert sel.partner[:, 0, 0, 0, 0].tolist() == [2.0, 0.0]  # sample 1 has no partner: zeros
    assert sel.has_partner.tolist() == [True, False]
    assert sel.target_slots.tolist() == [3, 1]


def test_apply_choices_checks_sizes() -> None:
    data = torch.zeros(2, 2, 1, 1, 1)
    with pytest.raises(PretrainingError, match="2 samples"):
        apply_modality_choices(data, [ModalityChoice(0, 1)], (0, 1))
    with pytest.raises(PretrainingError, match="outside"):
        apply_modality_choices(data, [ModalityChoice(0, 1), ModalityChoice(2, None)], (0, 1))
