"""Stem adaptation and key mapping: pure functions on tensors and names."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from brainmvp_nnunet.errors import CheckpointError
from brainmvp_nnunet.transfer import (
    adapt_stem,
    detect_encoder_prefix,
    input_channels,
    strip_state_dict_prefixes,
    strip_wrapper_prefixes,
    sub_state_dict,
)


@pytest.mark.parametrize(("c_src", "c_dst"), [(1, 4), (1, 1), (1, 2), (2, 3), (4, 1), (3, 3)])
def test_repeat_gives_the_source_output_for_identical_input_channels(c_src, c_dst):
    torch.manual_seed(0)
    weight = torch.randn(6, c_src, 2, 2, 2)
    before = weight.clone()
    adapted = adapt_stem(weight, c_dst, "repeat")
    x = torch.randn(1, 1, 8, 8, 8)
    expected = F.conv3d(x.expand(-1, c_src, -1, -1, -1), weight)
    assert adapted.shape == (6, c_dst, 2, 2, 2)
    torch.testing.assert_close(F.conv3d(x.expand(-1, c_dst, -1, -1, -1), adapted), expected, atol=1e-5, rtol=0)
    assert torch.equal(weight, before)  # the input is never modified
    assert adapted.data_ptr() != weight.data_ptr()


def test_repeat_of_a_one_channel_kernel_is_the_kernel_divided_by_c():
    weight = torch.randn(3, 1, 3, 3, 3)
    adapted = adapt_stem(weight, 4)
    for channel in range(4):
        torch.testing.assert_close(adapted[:, channel], weight[:, 0] / 4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_repeat_keeps_the_dtype(dtype):
    weight = torch.randn(4, 1, 2, 2, 2).to(dtype)
    adapted = adapt_stem(weight, 3)
    assert adapted.dtype == dtype
    torch.testing.assert_close(adapted.float(), (weight.float() / 3).expand(-1, 3, -1, -1, -1),
                               atol=1e-2, rtol=1e-2)


def test_reinit_returns_none_and_leaves_the_weight_alone():
    weight = torch.randn(4, 1, 2, 2, 2)
    before = weight.clone()
    assert adapt_stem(weight, 4, "reinit") is None
    assert torch.equal(weight, before)


@pytest.mark.parametrize(("shape", "channels", "mode", "message"), [
    ((4, 1, 2, 2, 2), 4, "mean", "stem_mode must be one of"),
    ((4, 1, 2, 2, 2), 0, "repeat", "at least one input channel"),
    ((4,), 4, "repeat", "(out, in, *spatial)"),
])
def test_adapt_stem_rejects_bad_arguments(shape, channels, mode, message):
    with pytest.raises(CheckpointError, match=re.escape(message)):
        adapt_stem(torch.zeros(shape), channels, mode)


@pytest.mark.parametrize(("key", "expected"), [
    ("encoder.patch_embed1.proj.weight", "encoder.patch_embed1.proj.weight"),
    ("module.encoder.uniformer.norm.weight", "encoder.uniformer.norm.weight"),
    ("_orig_mod.encoder.stem.convs.0.conv.weight", "encoder.stem.convs.0.conv.weight"),
    ("module._orig_mod.encoder.x", "encoder.x"),
    ("_orig_mod.module.encoder.x", "encoder.x"),
    ("module.module._orig_mod.x", "x"),
    ("encoder.module.weight", "encoder.module.weight"),  # only at the front
    ("modules.0.weight", "modules.0.weight"),  # a name that merely starts like a wrapper
    ("rep_template", "rep_template"),
])
def test_wrapper_prefixes_are_stripped_at_the_front_only(key, expected):
    assert strip_wrapper_prefixes(key) == expected


def test_stripping_a_state_dict_refuses_colliding_keys():
    tensor = torch.zeros(1)
    assert list(strip_state_dict_prefixes({"module.a": tensor, "_orig_mod.b": tensor})) == ["a", "b"]
    with pytest.raises(CheckpointError, match="'module.a' and 'a' both map to 'a'"):
        strip_state_dict_prefixes({"module.a": tensor, "a": tensor})


@pytest.mark.parametrize(("keys", "expected"), [
    (["encoder.stem.w", "encoder.stages.0.w", "decoder.encoder.stem.w", "decoder.encoder.stages.0.w",
      "decoder.seg_layers.0.w"], "encoder."),  # nnU-Net UNets: decoder.encoder duplicates encoder
    (["encoder.a", "head.upsamples.0.weight", "templates.templates"], "encoder."),
    (["network.encoder.a", "network.encoder.b", "head.c"], "network.encoder."),
    (["encoder.uniformer.a", "decoder.out_1.weight"], "encoder."),
    (["conv1a.weight", "out.weight"], None),
    (["encoder"], None),  # a tensor named encoder is not a sub-module
])
def test_encoder_prefix_detection(keys, expected):
    assert detect_encoder_prefix(keys) == expected


def test_sub_state_dict_and_input_channels():
    state = {"encoder.norm.weight": torch.zeros(3), "encoder.stem.weight": torch.zeros(8, 5, 3, 3, 3),
             "head.weight": torch.zeros(1, 8, 1, 1, 1)}
    assert list(sub_state_dict(state, "encoder.")) == ["norm.weight", "stem.weight"]
    assert sub_state_dict(state, "") == state
    assert input_channels(sub_state_dict(state, "encoder.")) == 5
    assert input_channels({"norm.weight": torch.zeros(3)}) is None
