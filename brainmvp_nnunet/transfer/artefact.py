"""``brainmvp_pretrained.pt``: the exported result of pre-training.

A plain dict of tensors, numbers, strings, lists and dicts only, so that it loads with
``torch.load(..., weights_only=True)`` (never unpickle arbitrary objects from a file someone sent).

Keys (format version 1):

* ``format`` = ``"brainmvp-pretrained"``, ``format_version`` = 1;
* ``network_class`` (dotted path of the fine-tuning network), ``arch_kwargs`` (its plans kwargs),
  ``encoder_prefix`` (``"encoder."``: where the encoder sits inside the fine-tuning network);
* ``encoder_state_dict`` (keys relative to the encoder, 1 input channel),
  ``reconstruction_head_state_dict``;
* ``templates`` (slots x Z x Y x X), ``template_slots``, ``template_spacing`` (z, y, x mm);
* ``normalization`` (the plans' normalisation schemes), ``spacing``, ``patch_size``;
* ``provenance``: JSON-able dict (dataset, plans, trainer, epochs, configuration, version, date).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import torch

from brainmvp_nnunet.atomic import atomic_write_bytes
from brainmvp_nnunet.errors import CheckpointError
from brainmvp_nnunet.transfer.safeload import safe_torch_load

FORMAT = "brainmvp-pretrained"
FORMAT_VERSION = 1
ARTEFACT_NAME = "brainmvp_pretrained.pt"


@dataclass
class PretrainedArtefact:
    """In-memory form of ``brainmvp_pretrained.pt``."""

    network_class: str
    arch_kwargs: dict
    encoder_state_dict: dict[str, torch.Tensor]
    reconstruction_head_state_dict: dict[str, torch.Tensor]
    templates: torch.Tensor
    template_slots: list[str]
    template_spacing: list[float]
    normalization: list[str]
    spacing: list[float]
    patch_size: list[int]
    encoder_prefix: str = "encoder."
    provenance: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The plain dict that is saved (tensors detached and moved to the CPU)."""
        def cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {k: v.detach().cpu().clone() for k, v in state.items()}

        return {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "network_class": self.network_class, "arch_kwargs": self.arch_kwargs,
            "encoder_prefix": self.encoder_prefix,
            "encoder_state_dict": cpu(self.encoder_state_dict),
            "reconstruction_head_state_dict": cpu(self.reconstruction_head_state_dict),
            "templates": self.templates.detach().cpu().clone(),
            "template_slots": list(self.template_slots), "template_spacing": [float(s) for s in self.template_spacing],
            "normalization": list(self.normalization), "spacing": [float(s) for s in self.spacing],
            "patch_size": [int(p) for p in self.patch_size], "provenance": self.provenance,
        }


def save_artefact(artefact: PretrainedArtefact, path: Path) -> Path:
    """Write the artefact atomically (a killed process never leaves a truncated file)."""
    buffer = io.BytesIO()
    torch.save(artefact.to_dict(), buffer)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def load_artefact(path: Path, map_location: str | torch.device = "cpu") -> PretrainedArtefact:
    """Read ``brainmvp_pretrained.pt`` safely (``weights_only=True``) and check its format."""
    path = Path(path)
    data = safe_torch_load(path, map_location)
    return artefact_from_dict(data, path)


def is_artefact_dict(data: object) -> bool:
    """Whether an already loaded object claims to be a ``brainmvp_pretrained.pt`` artefact."""
    return isinstance(data, dict) and data.get("format") == FORMAT


def artefact_from_dict(data: object, source: str | Path = "<memory>") -> PretrainedArtefact:
    """Check the format of an already loaded artefact dict and build the dataclass.

    ``source`` only names the file in error messages.
    """
    if not is_artefact_dict(data):
        raise CheckpointError(f"file {source}: not a {ARTEFACT_NAME} artefact (format key missing or different)")
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"file {source}: format version {data.get('format_version')} is not supported "
                              f"(this version reads {FORMAT_VERSION})")
    fields = {k: data[k] for k in PretrainedArtefact.__dataclass_fields__ if k in data}
    missing = set(PretrainedArtefact.__dataclass_fields__) - set(fields) - {"encoder_prefix", "provenance"}
    if missing:
        raise CheckpointError(f"file {source}: missing keys {sorted(missing)}")
    return PretrainedArtefact(**fields)
