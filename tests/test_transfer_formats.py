"""Readers: every checkpoint layout is detected, mapped to encoder keys, and read with weights_only=True."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from transfer_fakes import (
    TEMPLATE_GRID,
    coordinate_templates_xyz,
    nnunet_checkpoint,
    official_checkpoint,
    pretrain_network,
    save,
    tiny_resenc_encoder,
    tiny_resenc_unet,
    tiny_segnet,
    tiny_uniformer,
    write_artefact,
)

from brainmvp_nnunet.data.modalities import SLOTS
from brainmvp_nnunet.errors import CheckpointError
from brainmvp_nnunet.transfer import (
    EncoderWeights,
    detect_source_kind,
    load_artefact,
    read_encoder_weights,
    safe_torch_load,
)


class EmbeddedObject:
    """Stands for anything a malicious pickle could carry: unpickling it would import and build it."""

    def __init__(self):
        self.payload = "not data"


def _artefact(path: Path) -> tuple[Path, nn.Module]:
    encoder = tiny_uniformer(1)
    return write_artefact(path, encoder), encoder


def _pretrain(path: Path) -> tuple[Path, nn.Module]:
    encoder = tiny_uniformer(1)
    return save(nnunet_checkpoint(pretrain_network(encoder).state_dict()), path), encoder


def _pretrain_resenc_compiled(path: Path) -> tuple[Path, nn.Module]:
    encoder = tiny_resenc_encoder(1)
    state = {f"_orig_mod.{k}": v for k, v in pretrain_network(encoder).state_dict().items()}
    return save(nnunet_checkpoint(state), path), encoder


def _official(path: Path) -> tuple[Path, nn.Module]:
    encoder = tiny_uniformer(1)
    return save(official_checkpoint(encoder.state_dict()), path), encoder


def _nnunet_uniformer(path: Path) -> tuple[Path, nn.Module]:
    network = tiny_segnet(4)
    return save(nnunet_checkpoint(network.state_dict()), path), network.encoder


def _nnunet_resenc_ddp(path: Path) -> tuple[Path, nn.Module]:
    network = tiny_resenc_unet(2)
    state = {f"module.{k}": v for k, v in network.state_dict().items()}
    return save(nnunet_checkpoint(state), path), network.encoder


@pytest.mark.parametrize(("build", "kind", "in_channels", "has_templates"), [
    (_artefact, "artefact", 1, True),
    (_pretrain, "pretrain", 1, True),
    (_pretrain_resenc_compiled, "pretrain", 1, True),
    (_official, "official", 1, True),
    (_nnunet_uniformer, "nnunet", 4, False),
    (_nnunet_resenc_ddp, "nnunet", 2, False),
])
def test_each_layout_is_detected_and_yields_the_encoder_state_dict(tmp_path, build, kind, in_channels, has_templates):
    path, encoder = build(tmp_path / "checkpoint.pt")
    weights = read_encoder_weights(path)
    assert isinstance(weights, EncoderWeights)
    assert weights.source_kind == kind and weights.source == str(path)
    assert weights.in_channels == in_channels
    expected = encoder.state_dict()
    assert list(weights.state_dict) == list(expected)  # exactly the encoder, in module order
    for key, tensor in expected.items():
        assert torch.equal(weights.state_dict[key], tensor), key
    assert (weights.templates is not None) == has_templates
    assert read_encoder_weights(path, kind=kind).state_dict.keys() == weights.state_dict.keys()


def test_official_templates_come_out_in_zyx_order_with_the_canonical_slots(tmp_path):
    path, _ = _official(tmp_path / "BrainMVP_uniformer.pt")
    weights = read_encoder_weights(path)
    z, y, x = TEMPLATE_GRID
    assert weights.templates.shape == (len(SLOTS), z, y, x)
    assert weights.template_slots == SLOTS and weights.template_spacing == (1.0, 1.0, 1.0)
    s_i, z_i, y_i, x_i = torch.meshgrid(torch.arange(8), torch.arange(z), torch.arange(y), torch.arange(x),
                                        indexing="ij")
    assert torch.equal(weights.templates, (1000 * s_i + 100 * x_i + 10 * y_i + z_i).float())
    assert weights.templates.is_contiguous()


def test_official_decoder_keys_are_left_out_and_a_wrong_template_count_is_refused(tmp_path):
    encoder = tiny_uniformer(1)
    weights = read_encoder_weights(save(official_checkpoint(encoder.state_dict()), tmp_path / "a.pt"))
    assert not any(k.startswith(("decoder", "rep_template", "uniformer")) for k in weights.state_dict)
    bad = official_checkpoint(encoder.state_dict(), rep_template=coordinate_templates_xyz(slots=4))
    with pytest.raises(CheckpointError, match="has 4 templates"):
        read_encoder_weights(save(bad, tmp_path / "b.pt"))


def test_pretrain_templates_slots_and_spacing(tmp_path):
    encoder = tiny_uniformer(1)
    state = pretrain_network(encoder).state_dict()
    plain = read_encoder_weights(save(nnunet_checkpoint(state), tmp_path / "a.pt"))
    assert plain.template_slots == SLOTS and plain.template_spacing is None
    assert plain.templates.shape == (8, *TEMPLATE_GRID)
    assert plain.metadata["trainer_name"] == "nnUNetTrainer" and plain.metadata["encoder_prefix"] == "encoder."
    named = nnunet_checkpoint(state, template_slots=["t1", "t2", "pd", "mra"] * 2, template_spacing=[2, 2, 2])
    weights = read_encoder_weights(save(named, tmp_path / "b.pt"))
    assert weights.template_slots[:2] == ("t1", "t2") and weights.template_spacing == (2.0, 2.0, 2.0)
    with pytest.raises(CheckpointError, match="names 2 slots for 8 templates"):
        read_encoder_weights(save(nnunet_checkpoint(state, template_slots=["t1", "t2"]), tmp_path / "c.pt"))


def test_artefact_reader_keeps_the_artefact_metadata(tmp_path):
    path, _ = _artefact(tmp_path / "brainmvp_pretrained.pt")
    weights = read_encoder_weights(path)
    assert weights.template_slots == ("flair", "t1")
    assert weights.metadata["network_class"].endswith("UniFormerSegNet")
    assert load_artefact(path).template_slots == ["flair", "t1"]


def test_encoder_prefix_is_configurable_and_detected(tmp_path):
    encoder = tiny_uniformer(1)
    nested = {f"net.{k}": v for k, v in pretrain_network(encoder).state_dict().items()}
    path = save(nnunet_checkpoint(nested), tmp_path / "nested.pt")
    assert read_encoder_weights(path).metadata["encoder_prefix"] == "net.encoder."
    assert list(read_encoder_weights(path, encoder_prefix="net.encoder.").state_dict) == list(encoder.state_dict())
    with pytest.raises(CheckpointError, match="no tensor under the encoder prefix 'backbone.'"):
        read_encoder_weights(path, encoder_prefix="backbone.")


def test_a_pickle_with_an_embedded_object_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"network_weights": {"encoder.w": torch.zeros(1, 1, 1)}, "extra": EmbeddedObject()}, path)
    with pytest.raises(CheckpointError) as info:
        read_encoder_weights(path)
    message = str(info.value)
    assert str(path) in message and "refused" in message and "EmbeddedObject" in message
    with pytest.raises(CheckpointError, match="refused"):
        load_artefact(path)


def test_nnunet_checkpoints_with_numpy_log_entries_are_data_not_code(tmp_path):
    data = safe_torch_load(save(nnunet_checkpoint({"encoder.w": torch.zeros(1)}), tmp_path / "c.pth"))
    assert float(data["_best_ema"]) == 0.5 and data["init_args"]["device"] == torch.device("cpu")


@pytest.mark.parametrize(("content", "kind", "message"), [
    ({"weights": {"encoder.a": torch.zeros(1)}}, "auto", "not a recognised checkpoint"),
    ({"state_dict": {"module.backbone.a": torch.zeros(1)}}, "auto", "found ['state_dict']"),
    ({"network_weights": {"conv.weight": torch.zeros(2, 1, 3, 3, 3)}}, "auto", "no 'encoder.' sub-module"),
    ({"network_weights": {"encoder.a": "text"}}, "auto", "not a mapping of names to tensors"),
    ({"network_weights": {"encoder.a": torch.zeros(1)}}, "official", "'state_dict' is not a mapping"),
    ({"network_weights": {"encoder.a": torch.zeros(1)}}, "pretrain", "no learnable templates"),
    ({"network_weights": {"encoder.a": torch.zeros(1)}}, "artefact", "not a brainmvp_pretrained.pt"),
    ({"network_weights": {"encoder.a": torch.zeros(1)}}, "onnx", "unknown checkpoint kind 'onnx'"),
    ([torch.zeros(1)], "auto", "holds a list"),
])
def test_unusable_files_are_refused_with_a_message(tmp_path, content, kind, message):
    path = save(content, tmp_path / "x.pt")
    with pytest.raises(CheckpointError) as info:
        read_encoder_weights(path, kind=kind)
    assert message in str(info.value)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        read_encoder_weights(tmp_path / "absent.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="cannot be read"):
        read_encoder_weights(tmp_path / "corrupt.pt")


def test_detection_on_loaded_objects():
    encoder_state = tiny_uniformer(1).state_dict()
    assert detect_source_kind(official_checkpoint(encoder_state)) == "official"
    assert detect_source_kind(nnunet_checkpoint({f"encoder.{k}": v for k, v in encoder_state.items()})) == "nnunet"
