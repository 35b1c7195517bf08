"""Readers of pre-trained encoder weights, all returning one :class:`EncoderWeights`.

Four source kinds:

* ``artefact``: our ``brainmvp_pretrained.pt`` (see :mod:`.artefact`);
* ``pretrain``: a checkpoint of the pre-training trainer, i.e. an nnU-Net checkpoint dict whose
  ``network_weights`` come from a module with an encoder sub-module (``encoder.*``, ``head.*``) and
  the learnable templates (a 4-D tensor whose key ends in ``templates``); it may carry top-level
  ``template_slots`` and ``template_spacing`` entries;
* ``official``: the BrainMVP release, ``{"state_dict": {"module.encoder.uniformer.<X>": ...,
  "module.decoder....": ..., "module.rep_template": (8, 240, 240, 155)}}``, templates in the slot
  order of :data:`~brainmvp_nnunet.data.modalities.SLOTS` and (x, y, z) axis order;
* ``nnunet``: any other nnU-Net checkpoint (``network_weights``), e.g. a fine-tuned
  ``UniFormerSegNet`` or ``ResidualEncoderUNet``: the encoder is the keys under ``encoder.``.

Files are read with ``weights_only=True`` only (:func:`.safeload.safe_torch_load`); the ``*_from_*``
functions are pure and work on already loaded objects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from brainmvp_nnunet.data.modalities import SLOTS
from brainmvp_nnunet.errors import CheckpointError
from brainmvp_nnunet.transfer.artefact import artefact_from_dict, is_artefact_dict
from brainmvp_nnunet.transfer.keys import (
    OFFICIAL_ENCODER_PREFIX,
    detect_encoder_prefix,
    input_channels,
    strip_state_dict_prefixes,
    sub_state_dict,
)
from brainmvp_nnunet.transfer.safeload import safe_torch_load

SourceKind = Literal["artefact", "pretrain", "official", "nnunet"]
SOURCE_KINDS: tuple[str, ...] = ("artefact", "pretrain", "official", "nnunet")
OFFICIAL_TEMPLATE_KEY = "rep_template"
OFFICIAL_TEMPLATE_SPACING: tuple[float, float, float] = (1.0, 1.0, 1.0)  # the SRI24 grid, 1 mm


@dataclass(frozen=True)
class EncoderWeights:
    """Encoder weights read from any supported file, ready for :func:`.load.load_encoder_into`.

    Attributes:
        state_dict: tensors keyed relative to the encoder (``patch_embed1.proj.weight``, ``stem....``).
        in_channels: input channels of the source stem (None when the state dict holds no conv kernel).
        source_kind: one of :data:`SOURCE_KINDS`.
        source: the file (or ``"<memory>"``), for messages and reports.
        templates: modality templates (slots, Z, Y, X) in nnU-Net's axis order, when the file has them.
        template_slots: slot names of the templates, in template order.
        template_spacing: template grid spacing (z, y, x) in mm.
        metadata: JSON-able facts about the source (network class, arch kwargs, trainer name...).
    """

    state_dict: dict[str, torch.Tensor]
    in_channels: int | None
    source_kind: SourceKind
    source: str = "<memory>"
    templates: torch.Tensor | None = None
    template_slots: tuple[str, ...] | None = None
    template_spacing: tuple[float, float, float] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def _require_state_dict(value: object, what: str, source: str) -> Mapping[str, torch.Tensor]:
    """``value`` if it is a mapping of names to tensors, else a CheckpointError naming the file."""
    if not isinstance(value, Mapping) or not all(isinstance(v, torch.Tensor) for v in value.values()):
        raise CheckpointError(f"file {source}: {what} is not a mapping of names to tensors")
    return value


def _nonempty_encoder(state: dict[str, torch.Tensor], prefix: str, source: str) -> dict[str, torch.Tensor]:
    """The tensors under ``prefix``; an encoder-less file is an error, not an empty transfer."""
    encoder = sub_state_dict(state, prefix)
    if not encoder:
        raise CheckpointError(f"file {source}: no tensor under the encoder prefix {prefix!r} "
                              f"(first keys: {list(state)[:5]})")
    return encoder


def _network_weights(checkpoint: Mapping[str, Any], source: str) -> dict[str, torch.Tensor]:
    """An nnU-Net checkpoint's ``network_weights`` with wrapper prefixes removed."""
    return strip_state_dict_prefixes(_require_state_dict(checkpoint.get("network_weights"),
                                                         "'network_weights'", source))


def _resolve_prefix(state: Mapping[str, torch.Tensor], encoder_prefix: str | None, source: str) -> str:
    """``encoder_prefix`` as given, or detected from the keys (see :func:`.keys.detect_encoder_prefix`)."""
    if encoder_prefix is not None:
        return encoder_prefix
    detected = detect_encoder_prefix(state)
    if detected is None:
        raise CheckpointError(f"file {source}: no 'encoder.' sub-module in the network weights "
                              f"(first keys: {list(state)[:5]}); pass encoder_prefix explicitly")
    return detected


def _template_key(state: Mapping[str, torch.Tensor]) -> str | None:
    """The key of the learnable templates in a pre-training network (a 4-D tensor named ``*templates``)."""
    for key, tensor in state.items():
        if key.split(".")[-1] == "templates" and tensor.ndim == 4:
            return key
    return None


def _checkpoint_metadata(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-able identity of an nnU-Net checkpoint (trainer, epoch, configuration)."""
    init_args = checkpoint.get("init_args") if isinstance(checkpoint.get("init_args"), Mapping) else {}
    meta = {"trainer_name": checkpoint.get("trainer_name"), "current_epoch": checkpoint.get("current_epoch"),
            "configuration": init_args.get("configuration"), "fold": init_args.get("fold")}
    return {k: v for k, v in meta.items() if v is not None}


def encoder_weights_from_artefact(data: Mapping[str, Any], source: str = "<memory>") -> EncoderWeights:
    """Encoder weights and templates of a loaded ``brainmvp_pretrained.pt`` dict."""
    artefact = artefact_from_dict(data, source)
    state = strip_state_dict_prefixes(_require_state_dict(artefact.encoder_state_dict, "'encoder_state_dict'",
                                                          source))
    return EncoderWeights(
        state_dict=state, in_channels=input_channels(state), source_kind="artefact", source=str(source),
        templates=artefact.templates, template_slots=tuple(artefact.template_slots),
        template_spacing=tuple(float(s) for s in artefact.template_spacing),  # type: ignore[arg-type]
        metadata={"network_class": artefact.network_class, "arch_kwargs": artefact.arch_kwargs,
                  "encoder_prefix": artefact.encoder_prefix, "provenance": artefact.provenance})


def encoder_weights_from_pretrain_checkpoint(checkpoint: Mapping[str, Any], source: str = "<memory>",
                                             encoder_prefix: str | None = None) -> EncoderWeights:
    """Encoder weights and templates of a pre-training trainer's nnU-Net checkpoint.

    ``encoder_prefix`` defaults to the detected one (``encoder.`` for our pre-training network).
    Template slot names come from a top-level ``template_slots`` entry, else are the canonical
    :data:`SLOTS` when there are as many templates (the pre-training default), else unknown (None).
    """
    state = _network_weights(checkpoint, source)
    template_key = _template_key(state)
    if template_key is None:
        raise CheckpointError(f"file {source}: no learnable templates (a 4-D '*templates' tensor) in "
                              f"'network_weights': not a pre-training checkpoint")
    prefix = _resolve_prefix(state, encoder_prefix, source)
    encoder = _nonempty_encoder(state, prefix, source)
    templates = state[template_key]
    slots = checkpoint.get("template_slots")
    if slots is None and templates.shape[0] == len(SLOTS):
        slots = SLOTS
    if slots is not None and len(slots) != templates.shape[0]:
        raise CheckpointError(f"file {source}: 'template_slots' names {len(slots)} slots for "
                              f"{templates.shape[0]} templates")
    spacing = checkpoint.get("template_spacing")
    return EncoderWeights(
        state_dict=encoder, in_channels=input_channels(encoder), source_kind="pretrain", source=str(source),
        templates=templates, template_slots=tuple(slots) if slots is not None else None,
        template_spacing=tuple(float(s) for s in spacing) if spacing is not None else None,  # type: ignore[arg-type]
        metadata={**_checkpoint_metadata(checkpoint), "encoder_prefix": prefix})


def official_templates_to_nnunet(rep_template: torch.Tensor) -> torch.Tensor:
    """The release's templates (slots, X, Y, Z) in NIfTI order -> (slots, Z, Y, X), nnU-Net's order."""
    if rep_template.ndim != 4:
        raise CheckpointError(f"'{OFFICIAL_TEMPLATE_KEY}' must have shape (slots, X, Y, Z), "
                              f"got {tuple(rep_template.shape)}")
    return rep_template.permute(0, 3, 2, 1).contiguous()


def encoder_weights_from_official(checkpoint: Mapping[str, Any], source: str = "<memory>") -> EncoderWeights:
    """Encoder weights and templates of the official BrainMVP release checkpoint (spec 6.3 and 10.9).

    ``encoder.uniformer.<X>`` becomes ``<X>`` (our UniFormer uses the published attribute names);
    the decoder's keys are left out (our pre-training head is rebuilt, not loaded, when fine-tuning).
    """
    state = strip_state_dict_prefixes(_require_state_dict(checkpoint.get("state_dict"), "'state_dict'", source))
    encoder = _nonempty_encoder(state, OFFICIAL_ENCODER_PREFIX, source)
    rep_template = state.get(OFFICIAL_TEMPLATE_KEY)
    templates = official_templates_to_nnunet(rep_template) if rep_template is not None else None
    if templates is not None and templates.shape[0] != len(SLOTS):
        raise CheckpointError(f"file {source}: '{OFFICIAL_TEMPLATE_KEY}' has {templates.shape[0]} templates, "
                              f"the release has one per slot {SLOTS}")
    return EncoderWeights(
        state_dict=encoder, in_channels=input_channels(encoder), source_kind="official", source=str(source),
        templates=templates, template_slots=SLOTS if templates is not None else None,
        template_spacing=OFFICIAL_TEMPLATE_SPACING if templates is not None else None,
        metadata={"encoder_prefix": OFFICIAL_ENCODER_PREFIX})


def encoder_weights_from_nnunet_checkpoint(checkpoint: Mapping[str, Any], source: str = "<memory>",
                                           encoder_prefix: str | None = None) -> EncoderWeights:
    """Encoder weights of any nnU-Net checkpoint whose network has an encoder sub-module (no templates)."""
    state = _network_weights(checkpoint, source)
    prefix = _resolve_prefix(state, encoder_prefix, source)
    encoder = _nonempty_encoder(state, prefix, source)
    return EncoderWeights(state_dict=encoder, in_channels=input_channels(encoder), source_kind="nnunet",
                          source=str(source), metadata={**_checkpoint_metadata(checkpoint), "encoder_prefix": prefix})


def detect_source_kind(data: object, source: str = "<memory>") -> SourceKind:
    """Which reader fits an already loaded checkpoint object.

    Raises:
        CheckpointError: naming the file, the expected layouts and the top-level keys found.
    """
    if is_artefact_dict(data):
        return "artefact"
    if isinstance(data, Mapping) and isinstance(data.get("network_weights"), Mapping):
        weights = strip_state_dict_prefixes(_require_state_dict(data["network_weights"], "'network_weights'", source))
        return "pretrain" if _template_key(weights) is not None else "nnunet"
    if isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
        state = strip_state_dict_prefixes(_require_state_dict(data["state_dict"], "'state_dict'", source))
        if any(key.startswith(OFFICIAL_ENCODER_PREFIX) for key in state):
            return "official"
    found = sorted(str(k) for k in data)[:10] if isinstance(data, Mapping) else type(data).__name__
    raise CheckpointError(
        f"file {source}: not a recognised checkpoint; expected a brainmvp_pretrained.pt artefact "
        f"('format': 'brainmvp-pretrained'), an nnU-Net checkpoint ('network_weights' with an "
        f"'encoder.' sub-module) or the official BrainMVP release ('state_dict' with "
        f"'module.{OFFICIAL_ENCODER_PREFIX}*' keys); found {found}")


def encoder_weights_from_object(data: Mapping[str, Any], kind: str = "auto", source: str = "<memory>",
                                encoder_prefix: str | None = None) -> EncoderWeights:
    """:class:`EncoderWeights` of an already loaded checkpoint, of ``kind`` or of the detected kind.

    ``encoder_prefix`` only applies to the ``pretrain`` and ``nnunet`` kinds (the others fix it).
    """
    if not isinstance(data, Mapping):
        raise CheckpointError(f"file {source}: holds a {type(data).__name__}, not a checkpoint dict")
    if kind == "auto":
        kind = detect_source_kind(data, source)
    readers: dict[str, Callable[[], EncoderWeights]] = {
        "artefact": lambda: encoder_weights_from_artefact(data, source),
        "pretrain": lambda: encoder_weights_from_pretrain_checkpoint(data, source, encoder_prefix),
        "official": lambda: encoder_weights_from_official(data, source),
        "nnunet": lambda: encoder_weights_from_nnunet_checkpoint(data, source, encoder_prefix),
    }
    if kind not in readers:
        raise CheckpointError(f"unknown checkpoint kind {kind!r}; choose one of {('auto', *SOURCE_KINDS)}")
    return readers[kind]()


def read_encoder_weights(path: str | Path, kind: str = "auto", map_location: str | torch.device = "cpu",
                         encoder_prefix: str | None = None) -> EncoderWeights:
    """Read a checkpoint file safely (``weights_only=True``) and return its encoder weights.

    Args:
        path: the file.
        kind: ``"auto"`` (detect) or one of :data:`SOURCE_KINDS`.
        map_location: where the tensors are loaded (``"cpu"`` reads GPU-saved files on any machine).
        encoder_prefix: prefix of the encoder in ``pretrain``/``nnunet`` checkpoints (default: detected).

    Raises:
        CheckpointError: missing, corrupt or unsafe file, unknown layout, or no encoder in it.
    """
    return encoder_weights_from_object(safe_torch_load(path, map_location), kind, str(path), encoder_prefix)

