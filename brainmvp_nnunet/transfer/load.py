"""Loading :class:`~.formats.EncoderWeights` into a network's encoder, with a report of what happened.

Every tensor is matched by name and shape. The stem (input convolution) is the only tensor whose
shape may differ, in its input-channel dimension; it is recognised generically (not by name) as a
kernel whose input channels are the source's on one side and the target's on the other, everything
else equal: ``patch_embed1.proj.weight`` for UniFormer, ``stem.convs.0.conv.weight`` and its duplicate
registration ``stem.convs.0.all_modules.0.weight`` for nnU-Net's residual encoder.

The network is left untouched when the transfer is refused (fewer than ``min_fraction`` of the
encoder's tensors would load): a half-loaded encoder must never be trained by accident.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from brainmvp_nnunet.errors import CheckpointError
from brainmvp_nnunet.transfer.formats import EncoderWeights
from brainmvp_nnunet.transfer.keys import input_channels
from brainmvp_nnunet.transfer.stem import adapt_stem, check_stem_mode

DEFAULT_MIN_FRACTION = 0.95
_LISTED = 20  # entries per list in messages; the report's lists stay complete


@dataclass(frozen=True)
class TransferReport:
    """What :func:`load_encoder_into` did, tensor by tensor (keys relative to the encoder).

    Attributes:
        source, source_kind: where the weights came from.
        stem_mode: the stem option used.
        n_target: tensors in the target encoder's state dict (parameters and buffers).
        loaded: target tensors copied unchanged.
        adapted: (key, how) for stem tensors converted to the target's input channels.
        reinitialised: stem tensors deliberately left at their fresh initialisation (``reinit``).
        skipped: (key, reason) for source tensors that were not used.
        missing: target tensors with no tensor of that name in the checkpoint (kept at initialisation);
            tensors present with another shape are listed in ``skipped`` instead.
    """

    source: str
    source_kind: str
    stem_mode: str
    n_target: int
    loaded: tuple[str, ...]
    adapted: tuple[tuple[str, str], ...]
    reinitialised: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]
    missing: tuple[str, ...]

    @property
    def n_transferred(self) -> int:
        """Target tensors that received pre-trained values (copied or adapted)."""
        return len(self.loaded) + len(self.adapted)

    @property
    def fraction(self) -> float:
        """Transferred / target tensors, not counting a stem re-initialised on purpose.

        ``reinit`` is a choice, not a mismatch: it must not push a good checkpoint under the threshold.
        """
        expected = self.n_target - len(self.reinitialised)
        return self.n_transferred / expected if expected else 0.0

    def summary(self) -> str:
        """Human-readable lines for the training log: the counts, then every non-loaded tensor (capped)."""
        lines = [f"encoder weights from {self.source_kind} checkpoint {self.source}: "
                 f"{self.n_transferred}/{self.n_target - len(self.reinitialised)} tensors loaded "
                 f"({100 * self.fraction:.1f} %), {len(self.adapted)} adapted, "
                 f"{len(self.reinitialised)} re-initialised (stem_mode={self.stem_mode}), "
                 f"{len(self.skipped)} skipped, {len(self.missing)} missing"]
        lines += [f"  adapted {key}: {how}" for key, how in self.adapted]
        lines += [f"  re-initialised {key}" for key in self.reinitialised]
        lines += _capped([f"  skipped {key}: {reason}" for key, reason in self.skipped])
        lines += _capped([f"  missing {key}: not in the checkpoint" for key in self.missing])
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for a training log or a results folder)."""
        return {"source": self.source, "source_kind": self.source_kind, "stem_mode": self.stem_mode,
                "n_target": self.n_target, "n_transferred": self.n_transferred, "fraction": self.fraction,
                "loaded": list(self.loaded), "adapted": [list(a) for a in self.adapted],
                "reinitialised": list(self.reinitialised), "skipped": [list(s) for s in self.skipped],
                "missing": list(self.missing)}


def _capped(lines: list[str]) -> list[str]:
    """At most :data:`_LISTED` lines plus a count of the rest."""
    return lines[:_LISTED] + ([f"  ... and {len(lines) - _LISTED} more"] if len(lines) > _LISTED else [])


def unwrap_network(network: nn.Module) -> nn.Module:
    """The plain module inside DataParallel / DistributedDataParallel / ``torch.compile`` wrappers."""
    while True:
        if isinstance(network, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            network = network.module
        elif isinstance(getattr(network, "_orig_mod", None), nn.Module):
            network = network._orig_mod
        else:
            return network


def encoder_of(network: nn.Module, encoder_prefix: str = "encoder.") -> nn.Module:
    """The sub-module at ``encoder_prefix`` (``""``: the network itself is the encoder).

    Raises:
        CheckpointError: when the network has no such sub-module.
    """
    network = unwrap_network(network)
    if not encoder_prefix:
        return network
    name = encoder_prefix.rstrip(".")
    try:
        return network.get_submodule(name)
    except AttributeError as exc:
        raise CheckpointError(f"{type(network).__name__} has no sub-module {name!r} to load encoder weights into")\
            from exc


def _is_stem_pair(source: torch.Tensor, target: torch.Tensor, source_in: int | None, target_in: int | None) -> bool:
    """Whether ``source`` is the stem kernel of ``target`` for another number of input channels."""
    return (source_in is not None and target_in is not None and source_in != target_in
            and source.ndim == target.ndim >= 3
            and source.shape[1] == source_in and target.shape[1] == target_in
            and source.shape[:1] + source.shape[2:] == target.shape[:1] + target.shape[2:])


def _shape(t: torch.Tensor) -> str:
    return "x".join(str(s) for s in t.shape) or "scalar"


def plan_encoder_transfer(target: dict[str, torch.Tensor], weights: EncoderWeights, stem_mode: str = "repeat"
                          ) -> tuple[dict[str, torch.Tensor], TransferReport]:
    """Match ``weights`` against a target encoder state dict without loading anything.

    Returns the tensors to load (stem adapted) and the report; pure, so the decision can be tested
    and logged before the network is touched.
    """
    stem_mode = check_stem_mode(stem_mode)
    target_in = input_channels(target)
    to_load: dict[str, torch.Tensor] = {}
    loaded, adapted, reinitialised, skipped = [], [], [], []
    for key, tensor in weights.state_dict.items():
        if key not in target:
            skipped.append((key, "not in the network's encoder"))
        elif tensor.shape == target[key].shape:
            to_load[key] = tensor
            loaded.append(key)
        elif _is_stem_pair(tensor, target[key], weights.in_channels, target_in):
            new = adapt_stem(tensor, target_in, stem_mode)  # type: ignore[arg-type]
            if new is None:
                reinitialised.append(key)
            else:
                to_load[key] = new
                adapted.append((key, f"stem {weights.in_channels} -> {target_in} input channels ({stem_mode})"))
        else:
            skipped.append((key, f"shape {_shape(tensor)} in the checkpoint, {_shape(target[key])} in the network"))
    report = TransferReport(source=weights.source, source_kind=weights.source_kind, stem_mode=stem_mode,
                            n_target=len(target), loaded=tuple(loaded), adapted=tuple(adapted),
                            reinitialised=tuple(reinitialised), skipped=tuple(skipped),
                            missing=tuple(k for k in target if k not in weights.state_dict))
    return to_load, report


def load_encoder_into(network: nn.Module, weights: EncoderWeights, stem_mode: str = "repeat",
                      min_fraction: float = DEFAULT_MIN_FRACTION, encoder_prefix: str = "encoder.") -> TransferReport:
    """Load pre-trained encoder weights into ``network``'s encoder and report what loaded.

    Args:
        network: the fine-tuning network (wrappers are looked through) or a bare encoder.
        weights: from :func:`.formats.read_encoder_weights`.
        stem_mode: ``"repeat"`` (adapt the stem, see :func:`.stem.adapt_stem`) or ``"reinit"``.
        min_fraction: refuse when fewer of the encoder's tensors load (see :attr:`TransferReport.fraction`).
        encoder_prefix: where the encoder sits in ``network`` (``""``: ``network`` is the encoder).

    Raises:
        CheckpointError: when under ``min_fraction`` would load; the message lists what did not
            match and the network is not modified.
    """
    encoder = encoder_of(network, encoder_prefix)
    to_load, report = plan_encoder_transfer(encoder.state_dict(), weights, stem_mode)
    if report.fraction < min_fraction:
        raise CheckpointError(f"refusing to fine-tune from {weights.source}: only {report.n_transferred} of "
                              f"{report.n_target - len(report.reinitialised)} encoder tensors "
                              f"({100 * report.fraction:.1f} %) match the network, {100 * min_fraction:.0f} % "
                              f"are required (a different architecture or width?)\n{report.summary()}")
    # strict=False: the missing tensors were counted above and keep their initialisation
    encoder.load_state_dict(to_load, strict=False)
    return report
