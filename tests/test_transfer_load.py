"""Loading encoder weights into fine-tuning networks: equivalence, the official layout, refusals, report."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from transfer_fakes import (
    DEEPER,
    WIDER,
    nnunet_checkpoint,
    official_checkpoint,
    save,
    tiny_resenc_encoder,
    tiny_resenc_unet,
    tiny_segnet,
    tiny_uniformer,
)

from brainmvp_nnunet.errors import CheckpointError
from brainmvp_nnunet.transfer import (
    EncoderWeights,
    TransferReport,
    encoder_of,
    load_encoder_into,
    read_encoder_weights,
)

UNIFORMER_STEM = "patch_embed1.proj.weight"
RESENC_STEMS = ("stem.convs.0.conv.weight", "stem.convs.0.all_modules.0.weight")


def _weights(encoder: nn.Module) -> EncoderWeights:
    state = encoder.state_dict()
    return EncoderWeights(state_dict=state, in_channels=next(t for t in state.values() if t.ndim == 5).shape[1],
                          source_kind="pretrain")


@pytest.mark.parametrize(("build_source", "build_target", "prefix", "stems", "channels"), [
    (tiny_uniformer, lambda c: tiny_uniformer(c, seed=7), "", (UNIFORMER_STEM,), 4),
    (tiny_uniformer, lambda c: tiny_segnet(c), "encoder.", (UNIFORMER_STEM,), 4),
    (tiny_uniformer, lambda c: tiny_segnet(c), "encoder.", (UNIFORMER_STEM,), 2),
    (tiny_resenc_encoder, lambda c: tiny_resenc_encoder(c, seed=7), "", RESENC_STEMS, 4),
    (tiny_resenc_encoder, lambda c: tiny_resenc_unet(c), "encoder.", RESENC_STEMS, 4),
])
def test_repeat_adapted_encoder_reproduces_the_one_channel_features(build_source, build_target, prefix, stems,
                                                                    channels):
    source = build_source(1)
    target = build_target(channels)
    report = load_encoder_into(target, _weights(source), stem_mode="repeat", encoder_prefix=prefix)
    assert report.fraction == 1.0 and not report.missing and not report.skipped
    assert [key for key, _ in report.adapted] == list(stems)
    encoder = encoder_of(target, prefix).eval()
    x = torch.randn(2, 1, 32, 32, 32)
    with torch.no_grad():
        expected = source(x)
        got = encoder(x.expand(-1, channels, -1, -1, -1))
    assert len(got) == len(expected) >= 3  # every stage
    for stage, (a, b) in enumerate(zip(got, expected, strict=True)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0, msg=f"stage {stage}")


def test_official_layout_maps_every_encoder_tensor_into_a_four_channel_segnet(tmp_path):
    source = tiny_uniformer(1)
    path = save(official_checkpoint(source.state_dict()), tmp_path / "BrainMVP_uniformer.pt")
    network = tiny_segnet(4)
    decoder_before = {k: v.clone() for k, v in network.decoder.state_dict().items()}
    report = load_encoder_into(network, read_encoder_weights(path))
    assert report.source_kind == "official"
    assert report.fraction == 1.0 and report.n_transferred == report.n_target == len(source.state_dict())
    assert report.adapted == ((UNIFORMER_STEM, "stem 1 -> 4 input channels (repeat)"),)
    assert not report.missing and not report.skipped and not report.reinitialised
    loaded = network.encoder.state_dict()
    for key, tensor in source.state_dict().items():
        if key != UNIFORMER_STEM:
            assert torch.equal(loaded[key], tensor), key
    torch.testing.assert_close(loaded[UNIFORMER_STEM], source.state_dict()[UNIFORMER_STEM].expand(-1, 4, -1, -1, -1)
                               / 4)
    for key, tensor in network.decoder.state_dict().items():  # the decoder is not the encoder's business
        assert torch.equal(tensor, decoder_before[key]), key


def test_reinit_keeps_the_fresh_stem_and_loads_the_rest():
    source = tiny_uniformer(1)
    network = tiny_segnet(4)
    fresh_stem = network.encoder.patch_embed1.proj.weight.detach().clone()
    report = load_encoder_into(network, _weights(source), stem_mode="reinit")
    assert report.reinitialised == (UNIFORMER_STEM,) and not report.adapted
    assert report.fraction == 1.0 and report.n_transferred == report.n_target - 1
    assert torch.equal(network.encoder.patch_embed1.proj.weight, fresh_stem)
    assert torch.equal(network.encoder.patch_embed1.proj.bias, source.patch_embed1.proj.bias)


def test_resenc_nnunet_checkpoint_loads_both_stem_registrations_and_the_decoder_copy(tmp_path):
    source = tiny_resenc_unet(1, seed=3)
    path = save(nnunet_checkpoint({f"module.{k}": v for k, v in source.state_dict().items()}), tmp_path / "c.pth")
    target = tiny_resenc_unet(4)
    report = load_encoder_into(target, read_encoder_weights(path))
    assert sorted(key for key, _ in report.adapted) == sorted(RESENC_STEMS)
    assert report.fraction == 1.0
    # the decoder holds a reference to the same encoder, so its view of the weights changed too
    stem = target.state_dict()["decoder.encoder.stem.convs.0.conv.weight"]
    torch.testing.assert_close(stem, source.encoder.stem.convs[0].conv.weight.expand(-1, 4, -1, -1, -1) / 4)


@pytest.mark.parametrize(("arch", "expected_in_message"), [
    (WIDER, ["patch_embed1.proj.weight: shape 8x1x2x2x2 in the checkpoint, 16x4x2x2x2 in the network",
             "blocks1.0.pos_embed.weight: shape 8x1x3x3x3 in the checkpoint, 16x1x3x3x3 in the network",
             "only 5 of 93 encoder tensors", "... and 68 more"]),
    (DEEPER, ["missing blocks2.1.pos_embed.weight: not in the checkpoint", "only 93 of 129", "... and 16 more"]),
])
def test_a_different_architecture_is_refused_listing_the_mismatches(arch, expected_in_message):
    network = tiny_segnet(4, arch=arch)
    before = {k: v.clone() for k, v in network.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_encoder_into(network, _weights(tiny_uniformer(1)))
    message = str(info.value)
    assert "refusing to fine-tune" in message and "95 % are required" in message
    for expected in expected_in_message:
        assert expected in message
    for key, tensor in network.state_dict().items():  # refused means untouched
        assert torch.equal(tensor, before[key]), key


def test_min_fraction_is_the_threshold():
    weights = _weights(tiny_uniformer(1))
    partial = EncoderWeights({k: v for i, (k, v) in enumerate(weights.state_dict.items()) if i % 10},
                             weights.in_channels, "pretrain")
    report = load_encoder_into(tiny_segnet(4), partial, min_fraction=0.5)
    assert 0.85 < report.fraction < 0.95 and len(report.missing) == report.n_target - report.n_transferred
    with pytest.raises(CheckpointError, match="only"):
        load_encoder_into(tiny_segnet(4), partial)


def test_wrapped_networks_and_unknown_options():
    weights = _weights(tiny_uniformer(1))
    wrapped = nn.DataParallel(tiny_segnet(4))
    assert load_encoder_into(wrapped, weights).fraction == 1.0
    assert torch.equal(wrapped.module.encoder.norm.running_var, weights.state_dict["norm.running_var"])
    with pytest.raises(CheckpointError, match="no sub-module 'backbone'"):
        load_encoder_into(tiny_segnet(4), weights, encoder_prefix="backbone.")
    with pytest.raises(CheckpointError, match="stem_mode must be one of"):
        load_encoder_into(tiny_segnet(4), weights, stem_mode="zeros")


def test_report_summary_and_dict():
    weights = _weights(tiny_uniformer(1))
    weights.state_dict["head.extra"] = torch.zeros(1)
    report = load_encoder_into(tiny_segnet(4), weights)
    assert isinstance(report, TransferReport)
    first = report.summary().splitlines()[0]
    assert f"{report.n_target}/{report.n_target} tensors loaded (100.0 %), 1 adapted" in first
    assert "skipped head.extra: not in the network's encoder" in report.summary()
    as_dict = json.loads(json.dumps(report.to_dict()))
    assert as_dict["fraction"] == 1.0 and as_dict["adapted"][0][0] == UNIFORMER_STEM
    assert as_dict["skipped"] == [["head.extra", "not in the network's encoder"]]
