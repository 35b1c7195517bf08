"""UniFormer encoder, segmentation network, reconstruction head and residual-encoder adapter.

Tiny widths (UniFormer-S / 8, head dim 8 so the head counts stay 5 and 8) and 32-64 voxel patches
keep these fast; only the parameter-count test builds the full-size encoder (no forward).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from brainmvp_nnunet.errors import NetworkConfigError
from brainmvp_nnunet.networks import (
    SEG_STRIDES,
    UNIFORMER_S_PARAMETERS,
    PretrainableEncoder,
    ReconstructionHead,
    ReconstructionNetwork,
    ResidualEncoderAdapter,
    SkipReconstructionHead,
    UniFormerEncoder,
    UniFormerSegNet,
    build_reconstruction_head,
    residual_encoder_from_arch_kwargs,
    uniformer_arch_kwargs,
)

TINY = {"widths": [8, 16, 40, 64], "depths": [1, 2, 2, 1], "head_dim": 8}
SEG_CLASS = "brainmvp_nnunet.networks.segmentation.UniFormerSegNet"
RESENC_CLASS = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"


def resenc_arch_kwargs(strides: list[list[int]]) -> dict:
    """A small ResidualEncoderUNet plan, written the way nnU-Net's ResEnc planner writes it."""
    n = len(strides)
    return {"n_stages": n, "features_per_stage": [8 * 2 ** i for i in range(n)],
            "conv_op": "torch.nn.modules.conv.Conv3d", "kernel_sizes": [[3, 3, 3]] * n, "strides": strides,
            "n_blocks_per_stage": [1] * n, "n_conv_per_stage_decoder": [1] * (n - 1), "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
            "norm_op_kwargs": {"eps": 1e-5, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}


def nnunet_ds_shapes(patch: tuple[int, ...], strides: list[list[int]]) -> list[tuple[int, ...]]:
    """Target shapes nnU-Net derives for deep supervision (nnUNetTrainer._get_deep_supervision_scales)."""
    scales = list(list(i) for i in 1 / np.cumprod(np.vstack(strides), axis=0))[:-1]
    return [tuple(int(round(p * s)) for p, s in zip(patch, scale, strict=True)) for scale in scales]


def test_uniformer_s_encoder_has_the_published_parameter_count():
    encoder = UniFormerEncoder(in_channels=1)
    assert sum(p.numel() for p in encoder.parameters()) == UNIFORMER_S_PARAMETERS == 22_038_464


def test_encoder_keys_mirror_the_published_names():
    # spec 6.3: the published UniUnet holds 355 tensors, 26 of them decoder/DS heads -> 329 encoder tensors
    assert len(UniFormerEncoder(1, widths=TINY["widths"], head_dim=8).state_dict()) == 329
    keys = set(UniFormerEncoder(1, **TINY).state_dict())
    expected = {"patch_embed1.proj.weight", "patch_embed1.norm.weight", "patch_embed4.proj.bias",
                "blocks1.0.pos_embed.weight", "blocks1.0.norm1.running_mean", "blocks1.0.conv1.weight",
                "blocks1.0.attn.weight", "blocks1.0.conv2.weight", "blocks2.1.mlp.fc1.weight",
                "blocks3.0.attn.qkv.weight", "blocks3.1.attn.proj.bias", "blocks4.0.mlp.fc2.weight",
                "blocks4.0.norm2.weight", "norm.running_var"}
    assert expected <= keys


@pytest.mark.parametrize("patch", [(32, 32, 32), (32, 48, 64), (64, 32, 32)])
def test_encoder_returns_four_features_at_strides_2_to_16(patch):
    encoder = UniFormerEncoder(2, **TINY)
    features = encoder(torch.randn(1, 2, *patch))
    assert isinstance(encoder, PretrainableEncoder)
    assert encoder.total_stride == (16, 16, 16)
    assert [f.shape[1] for f in features] == list(encoder.out_channels) == TINY["widths"]
    for feature, stride in zip(features, encoder.feature_strides, strict=True):
        assert tuple(feature.shape[2:]) == tuple(p // s for p, s in zip(patch, stride, strict=True))


@pytest.mark.parametrize("axis_order", ["nnunet", "upstream"])
@pytest.mark.parametrize("patch", [(32, 32, 32), (32, 48, 64), (64, 32, 32)])
def test_segmentation_deep_supervision_matches_nnunet_target_scales(patch, axis_order):
    net = UniFormerSegNet(4, 3, True, axis_order=axis_order, **TINY)
    outputs = net(torch.randn(2, 4, *patch))
    assert isinstance(outputs, list) and len(outputs) == len(SEG_STRIDES) - 1
    assert [tuple(o.shape[2:]) for o in outputs] == nnunet_ds_shapes(patch, net.strides)
    assert all(o.shape[:2] == (2, 3) for o in outputs)
    net.decoder.deep_supervision = False  # what nnUNetTrainer.set_deep_supervision_enabled does
    assert net(torch.randn(1, 4, *patch)).shape == (1, 3, *patch)


@pytest.mark.parametrize("build", [
    lambda: UniFormerSegNet(1, 2, **TINY),
    lambda: UniFormerEncoder(1, **TINY),
    lambda: ReconstructionNetwork(UniFormerEncoder(1, **TINY)),
])
def test_patch_not_divisible_by_16_is_a_clear_error(build):
    with pytest.raises(NetworkConfigError, match=r"\(40, 40, 40\) is not divisible by the total stride \(16, 16"):
        build()(torch.randn(1, 1, 40, 40, 40))


@pytest.mark.parametrize("kwargs, message", [
    ({"strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]]}, "fixed strides"),
    ({"widths": [8, 16, 40]}, "4 stages"),
    ({"head_dim": 16}, "not multiples of head_dim"),
    ({"axis_order": "ras"}, "axis_order"),
])
def test_bad_arguments_are_config_errors(kwargs, message):
    with pytest.raises(NetworkConfigError, match=message):
        UniFormerSegNet(1, 2, **{**TINY, **kwargs})


def test_conv_feature_map_size_is_positive_and_grows_with_the_patch():
    net = UniFormerSegNet(4, 3, False, **TINY)
    sizes = [net.compute_conv_feature_map_size(p) for p in [(32, 32, 32), (32, 32, 48), (64, 64, 64), (96,) * 3]]
    assert sizes[0] > 0 and sizes == sorted(set(sizes))
    net.decoder.deep_supervision = True
    assert net.compute_conv_feature_map_size((32, 32, 32)) > sizes[0]


@pytest.mark.parametrize("arch_kwargs", [uniformer_arch_kwargs(**TINY),
                                         uniformer_arch_kwargs(**TINY, axis_order="upstream")])
def test_nnunet_builds_and_runs_it_from_plans(arch_kwargs):
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    arch_kwargs = json.loads(json.dumps(arch_kwargs))  # exactly what a plans file gives back
    net = get_network_from_plans(arch_class_name=SEG_CLASS, arch_kwargs=arch_kwargs, arch_kwargs_req_import=[],
                                 input_channels=4, output_channels=3, allow_init=True, deep_supervision=True)
    assert isinstance(net, UniFormerSegNet) and net.decoder.deep_supervision
    outputs = net(torch.randn(1, 4, 32, 32, 64))
    assert [tuple(o.shape[2:]) for o in outputs] == nnunet_ds_shapes((32, 32, 64), arch_kwargs["strides"])
    assert all(k.startswith(("encoder.", "decoder.")) for k in net.state_dict())


def test_upstream_axis_order_equals_swapping_the_last_two_axes_by_hand():
    torch.manual_seed(0)
    plain = UniFormerSegNet(2, 3, True, **TINY).eval()
    upstream = UniFormerSegNet(2, 3, True, axis_order="upstream", **TINY).eval()
    upstream.load_state_dict(plain.state_dict())
    x = torch.randn(1, 2, 32, 48, 64)
    with torch.no_grad():
        expected = [o.transpose(-1, -2) for o in plain(x.transpose(-1, -2))]
        got = upstream(x)
    for e, g in zip(expected, got, strict=True):
        assert g.shape == e.shape
        torch.testing.assert_close(g, e)


def test_uniformer_s_reconstruction_head_is_the_published_one():
    head = ReconstructionHead((64, 128, 320, 512), [(2,) * 3, (4,) * 3, (8,) * 3, (16,) * 3])
    assert [tuple(u.weight.shape[:2]) for u in head.upsamples] == [(512, 320), (320, 128), (128, 64), (64, 64)]
    assert all(u.bias is None and u.stride == (2, 2, 2) for u in head.upsamples)
    assert tuple(head.out.weight.shape) == (1, 64, 1, 1, 1)


@pytest.mark.parametrize("make_encoder, patch", [
    (lambda: UniFormerEncoder(1, **TINY), (32, 48, 64)),
    (lambda: residual_encoder_from_arch_kwargs(1, resenc_arch_kwargs([[1, 1, 1]] + [[2, 2, 2]] * 3)), (16, 24, 32)),
    (lambda: residual_encoder_from_arch_kwargs(1, resenc_arch_kwargs([[1, 1, 1], [1, 2, 2], [2, 2, 2]])), (8, 16, 12)),
])
@pytest.mark.parametrize("axis_order", ["nnunet", "upstream"])
@pytest.mark.parametrize("kind", ["linear", "skip"])
def test_reconstruction_restores_the_input_shape_for_any_encoder(make_encoder, patch, axis_order, kind):
    encoder = make_encoder()
    net = ReconstructionNetwork(encoder, build_reconstruction_head(encoder, kind), axis_order=axis_order)
    reconstruction, bottleneck = net(torch.randn(2, 1, *patch))
    assert reconstruction.shape == (2, 1, *patch)
    assert bottleneck.shape[1] == encoder.out_channels[-1]


@pytest.mark.parametrize(("kind", "reads_every_feature"), [("linear", False), ("skip", True)])
def test_which_encoder_features_a_reconstruction_head_reads(kind, reads_every_feature):
    """The published head reads the bottleneck alone; the skip head reads every feature."""
    torch.manual_seed(0)
    encoder = UniFormerEncoder(1, **TINY)
    head = build_reconstruction_head(encoder, kind)
    features = [f.detach().requires_grad_() for f in encoder(torch.randn(1, 1, 32, 32, 32))]
    head(features).square().sum().backward()
    read = [f.grad is not None and bool(f.grad.abs().sum() > 0) for f in features]
    assert read == [reads_every_feature] * (len(features) - 1) + [True]


def test_skip_head_levels_follow_the_encoder_features():
    head = SkipReconstructionHead((64, 128, 320, 512), [(2,) * 3, (4,) * 3, (8,) * 3, (16,) * 3])
    assert [(b.transp_conv.in_channels, b.transp_conv.out_channels) for b in head.up_blocks] == \
        [(512, 320), (320, 128), (128, 64)]
    assert head.to_full_resolution.stride == (2, 2, 2) and tuple(head.out.weight.shape) == (1, 64, 1, 1, 1)
    # an anisotropic first step and a feature already at full resolution (nnU-Net's ResEnc stem)
    head = SkipReconstructionHead((8, 16, 32), [(1, 1, 1), (1, 2, 2), (2, 4, 4)])
    assert [b.transp_conv.stride for b in head.up_blocks] == [(2, 2, 2), (1, 2, 2)]
    assert isinstance(head.to_full_resolution, torch.nn.Identity)


def test_recomputed_mlps_give_the_same_numbers_and_keep_less_for_backward():
    """Activation checkpointing (on in pre-training): identical features and gradients, fewer saved bytes."""
    torch.manual_seed(0)
    encoder = UniFormerEncoder(1, **TINY)
    x = torch.randn(2, 1, 32, 32, 32)

    def run(recompute: bool) -> tuple[list[torch.Tensor], dict[str, torch.Tensor], int]:
        encoder.zero_grad(set_to_none=True)
        encoder.set_activation_checkpointing(recompute)
        saved: list[int] = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel() * t.element_size()) or t,
                                                      lambda t: t):
            features = encoder(x)
        sum(f.square().sum() for f in features).backward()
        return [f.detach() for f in features], {n: p.grad for n, p in encoder.named_parameters()}, sum(saved)

    kept_features, kept_grads, kept_bytes = run(False)
    features, grads, saved_bytes = run(True)
    for a, b in zip(kept_features, features, strict=True):
        torch.testing.assert_close(a, b)
    for name, grad in kept_grads.items():
        torch.testing.assert_close(grads[name], grad, msg=name)
    assert saved_bytes < 0.7 * kept_bytes
    with torch.no_grad():  # nothing to recompute without autograd
        torch.testing.assert_close(encoder(x)[-1], kept_features[-1])


def test_unknown_reconstruction_head_is_refused():
    with pytest.raises(NetworkConfigError, match="linear"):
        build_reconstruction_head(UniFormerEncoder(1, **TINY), "unet")


def test_residual_encoder_adapter_has_the_keys_of_resenc_unet_encoder():
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    arch_kwargs = resenc_arch_kwargs([[1, 1, 1]] + [[2, 2, 2]] * 3)
    unet = get_network_from_plans(RESENC_CLASS, arch_kwargs, ["conv_op", "norm_op", "dropout_op", "nonlin"],
                                  input_channels=1, output_channels=2, allow_init=True, deep_supervision=True)
    adapter = residual_encoder_from_arch_kwargs(1, arch_kwargs)
    unet_encoder_keys = {k.removeprefix("encoder.") for k in unet.state_dict() if k.startswith("encoder.")}
    assert set(adapter.state_dict()) == unet_encoder_keys
    adapter.load_state_dict({k: unet.state_dict()[f"encoder.{k}"] for k in adapter.state_dict()})
    assert adapter.total_stride == (8, 8, 8) and adapter.out_channels == (8, 16, 32, 64)
    wrapped = ResidualEncoderAdapter(unet.encoder)  # the adapter also wraps an existing instance
    assert set(wrapped.state_dict()) == unet_encoder_keys


def test_resenc_arch_kwargs_that_do_not_fit_are_config_errors():
    with pytest.raises(NetworkConfigError, match="ResidualEncoder"):
        residual_encoder_from_arch_kwargs(1, {**resenc_arch_kwargs([[1, 1, 1], [2, 2, 2]]), "n_stages": 3})


def test_drop_path_is_active_only_while_training():
    encoder = UniFormerEncoder(1, **TINY, drop_path_rate=0.5)
    assert encoder.blocks4[-1].drop_path.rate == pytest.approx(0.5)
    x = torch.randn(2, 1, 32, 32, 32)
    encoder.eval()
    with torch.no_grad():
        torch.testing.assert_close(encoder(x)[-1], encoder(x)[-1])
    encoder.train()
    assert encoder(x)[-1].shape == (2, 64, 2, 2, 2)
