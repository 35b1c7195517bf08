"""Transfer of pre-trained weights: checkpoint formats, key mapping and stem adaptation (pure functions).

Typical use (a fine-tuning trainer, before DDP/compile)::

    weights = read_encoder_weights(path)                  # any supported file, weights_only=True
    report = load_encoder_into(network, weights)          # refuses under 95 % of encoder tensors
    log(report.summary())
"""

from brainmvp_nnunet.transfer.artefact import (
    ARTEFACT_NAME,
    PretrainedArtefact,
    artefact_from_dict,
    load_artefact,
    save_artefact,
)
from brainmvp_nnunet.transfer.formats import (
    SOURCE_KINDS,
    EncoderWeights,
    detect_source_kind,
    encoder_weights_from_artefact,
    encoder_weights_from_nnunet_checkpoint,
    encoder_weights_from_object,
    encoder_weights_from_official,
    encoder_weights_from_pretrain_checkpoint,
    official_templates_to_nnunet,
    read_encoder_weights,
)
from brainmvp_nnunet.transfer.keys import (
    detect_encoder_prefix,
    input_channels,
    strip_state_dict_prefixes,
    strip_wrapper_prefixes,
    sub_state_dict,
)
from brainmvp_nnunet.transfer.load import (
    DEFAULT_MIN_FRACTION,
    TransferReport,
    encoder_of,
    load_encoder_into,
    plan_encoder_transfer,
    unwrap_network,
)
from brainmvp_nnunet.transfer.safeload import safe_torch_load
from brainmvp_nnunet.transfer.stem import STEM_MODES, adapt_stem

__all__ = [
    "ARTEFACT_NAME",
    "DEFAULT_MIN_FRACTION",
    "SOURCE_KINDS",
    "STEM_MODES",
    "EncoderWeights",
    "PretrainedArtefact",
    "TransferReport",
    "adapt_stem",
    "artefact_from_dict",
    "detect_encoder_prefix",
    "detect_source_kind",
    "encoder_of",
    "encoder_weights_from_artefact",
    "encoder_weights_from_nnunet_checkpoint",
    "encoder_weights_from_object",
    "encoder_weights_from_official",
    "encoder_weights_from_pretrain_checkpoint",
    "input_channels",
    "load_artefact",
    "load_encoder_into",
    "official_templates_to_nnunet",
    "plan_encoder_transfer",
    "read_encoder_weights",
    "safe_torch_load",
    "save_artefact",
    "strip_state_dict_prefixes",
    "strip_wrapper_prefixes",
    "sub_state_dict",
    "unwrap_network",
]
