"""State-dict key mapping: wrapper prefixes, the encoder's prefix, the official release's names.

Checkpoints written from wrapped networks carry the wrappers' attribute names in front of every key:
``module.`` (DataParallel / DistributedDataParallel) and ``_orig_mod.`` (``torch.compile``), in any
order and number. The official BrainMVP release names the UniFormer encoder ``encoder.uniformer.``;
our networks name it ``encoder.`` with the same attribute names below it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

import torch

from brainmvp_nnunet.errors import CheckpointError

WRAPPER_PREFIXES: tuple[str, ...] = ("module.", "_orig_mod.")
OFFICIAL_ENCODER_PREFIX = "encoder.uniformer."
ENCODER_COMPONENT = "encoder."


def strip_wrapper_prefixes(key: str, prefixes: Iterable[str] = WRAPPER_PREFIXES) -> str:
    """Remove wrapper prefixes repeated at the front of ``key`` (``module._orig_mod.a`` -> ``a``).

    Only the front is touched: a sub-module that happens to be called ``module`` deeper in the
    network keeps its name.
    """
    prefixes = tuple(prefixes)
    stripped = True
    while stripped:
        stripped = False
        for prefix in prefixes:
            if key.startswith(prefix):
                key, stripped = key[len(prefix):], True
    return key


def strip_state_dict_prefixes(state: Mapping[str, torch.Tensor],
                              prefixes: Iterable[str] = WRAPPER_PREFIXES) -> dict[str, torch.Tensor]:
    """A new state dict whose keys have their wrapper prefixes removed (values are shared, not copied).

    Raises:
        CheckpointError: when two keys collapse onto the same name (the file mixes wrapped and
            unwrapped copies of a tensor, so which one to load is ambiguous).
    """
    prefixes = tuple(prefixes)
    out: dict[str, torch.Tensor] = {}
    original: dict[str, str] = {}
    for key, value in state.items():
        new = strip_wrapper_prefixes(key, prefixes)
        if new in out:
            raise CheckpointError(f"keys {original[new]!r} and {key!r} both map to {new!r} after removing the "
                                  f"wrapper prefixes {prefixes}: which one to load is ambiguous")
        out[new], original[new] = value, key
    return out


def sub_state_dict(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under ``prefix``, with the prefix removed (``prefix=""`` returns a shallow copy)."""
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def detect_encoder_prefix(keys: Iterable[str]) -> str | None:
    """The prefix under which a network's state dict holds its encoder, or None when there is none.

    A candidate is everything up to and including the first ``encoder.`` key component
    (``encoder.``, ``network.encoder.``). nnU-Net's UNet decoders keep a reference to their encoder,
    so ``decoder.encoder.*`` duplicates ``encoder.*``: the candidate covering most keys wins and a
    tie goes to the shortest.
    """
    counts: Counter[str] = Counter()
    for key in keys:
        components = key.split(".")
        if "encoder" in components[:-1]:
            counts[".".join(components[:components.index("encoder") + 1]) + "."] += 1
    if not counts:
        return None
    return min(counts, key=lambda prefix: (-counts[prefix], len(prefix)))


def input_channels(state: Mapping[str, torch.Tensor]) -> int | None:
    """Input channels of the first convolution in a (module-ordered) state dict: the stem's.

    ``state_dict()`` lists tensors in registration order and every encoder registers its stem first,
    so the first weight with at least three dimensions (a conv kernel: out, in, *spatial) is the stem.
    """
    for tensor in state.values():
        if tensor.ndim >= 3:
            return int(tensor.shape[1])
    return None
