"""3-D UniFormer encoder (BrainMVP's backbone), re-implemented from the published description.

Four stages, each a stride-2 patch embedding followed by blocks: convolutional ``CBlock``s in
stages 1-2 (local relation aggregation), global self-attention ``SABlock``s in stages 3-4, a final
BatchNorm3d. Default = UniFormer-S (depths 3/4/8/3, widths 64/128/320/512, head dim 64), whose
1-channel encoder has 22,038,464 parameters like the published one.

Attribute names follow the published model (``patch_embed1..4``, ``blocks1..4``, ``norm``; inside
blocks ``pos_embed``, ``norm1``, ``conv1``, ``attn``, ``conv2``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``,
``attn.qkv``, ``attn.proj``), so the official checkpoint's ``module.encoder.uniformer.<name>`` keys map
to ``<name>`` by stripping the prefix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from brainmvp_nnunet.errors import NetworkConfigError
from brainmvp_nnunet.networks.base import PretrainableEncoder

UNIFORMER_S_WIDTHS: tuple[int, ...] = (64, 128, 320, 512)
UNIFORMER_S_DEPTHS: tuple[int, ...] = (3, 4, 8, 3)
UNIFORMER_S_PARAMETERS = 22_038_464  # 1-channel encoder, as counted on the published model
N_STAGES = 4
N_CONV_STAGES = 2  # stages 1-2 convolutional, 3-4 attention


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop whole residual branches per sample, rescaling the kept ones."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    """Module wrapper of :func:`drop_path` (identity at rate 0 or in eval mode)."""

    def __init__(self, rate: float = 0.0):
        super().__init__()
        self.rate = float(rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Drop the branch ``x`` for a random subset of samples while training."""
        return drop_path(x, self.rate, self.training)


class PatchEmbed(nn.Module):
    """Conv3d (``proj``) then LayerNorm over channels (``norm``).

    Stride-2 kernel-2 between stages; the segmentation decoder reuses it with kernel 3, stride 1 as
    the full-resolution projection of the input.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2, stride: int = 2, padding: int = 0):
        super().__init__()
        self.proj = nn.Conv3d(in_channels, out_channels, kernel_size, stride, padding)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, Cin, Z, Y, X) -> (B, Cout, Z/s, Y/s, X/s)."""
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)


class ConvMlp(nn.Module):
    """Pointwise MLP on (B, C, Z, Y, X) maps: 1x1x1 conv C -> hC, GELU, 1x1x1 conv hC -> C."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Conv3d(channels, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv3d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP at every voxel."""
        return self.fc2(self.act(self.fc1(x)))


class TokenMlp(nn.Module):
    """Token MLP on (B, N, C): Linear C -> hC, GELU, Linear hC -> C."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(channels, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the MLP to every token."""
        return self.fc2(self.act(self.fc1(x)))


def run_mlp(mlp: nn.Module, x: torch.Tensor, recompute: bool) -> torch.Tensor:
    """``mlp(x)``; with ``recompute`` while autograd records, the MLP's hidden activations (4x the
    block's width, the largest tensors of a block) are recomputed in backward instead of kept."""
    if recompute and torch.is_grad_enabled():
        return checkpoint(mlp, x, use_reentrant=False)
    return mlp(x)


class CBlock(nn.Module):
    """Convolutional UniFormer block: positional DWConv3, local aggregation (DWConv5), MLP.

    ``recompute_mlp`` (default False): see :func:`run_mlp`.
    """

    def __init__(self, channels: int, mlp_ratio: float = 4.0, drop_path_rate: float = 0.0):
        super().__init__()
        self.pos_embed = nn.Conv3d(channels, channels, 3, padding=1, groups=channels)
        self.norm1 = nn.BatchNorm3d(channels)
        self.conv1 = nn.Conv3d(channels, channels, 1)
        self.attn = nn.Conv3d(channels, channels, 5, padding=2, groups=channels)
        self.conv2 = nn.Conv3d(channels, channels, 1)
        self.drop_path = DropPath(drop_path_rate)
        self.norm2 = nn.BatchNorm3d(channels)
        self.mlp = ConvMlp(channels, int(channels * mlp_ratio))
        self.recompute_mlp = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, Z, Y, X) -> same shape."""
        x = x + self.pos_embed(x)
        x = x + self.drop_path(self.conv2(self.attn(self.conv1(self.norm1(x)))))
        # norm2 stays outside the recomputed part: BatchNorm would update its running statistics twice
        return x + self.drop_path(run_mlp(self.mlp, self.norm2(x), self.recompute_mlp))


class Attention(nn.Module):
    """Global multi-head self-attention over all tokens, through the fused SDPA kernel."""

    def __init__(self, channels: int, num_heads: int, attn_drop: float = 0.0):
        super().__init__()
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, N, C); scale head_dim^-0.5 (SDPA's default)."""
        b, n, c = x.shape
        # qkv features are laid out (3, heads, head_dim), the published layout, so weights load as-is
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class SABlock(nn.Module):
    """Attention UniFormer block: positional DWConv3, then pre-norm global MHSA and MLP on tokens.

    ``recompute_mlp`` (default False): see :func:`run_mlp`.
    """

    def __init__(self, channels: int, num_heads: int, mlp_ratio: float = 4.0, drop_path_rate: float = 0.0):
        super().__init__()
        self.pos_embed = nn.Conv3d(channels, channels, 3, padding=1, groups=channels)
        self.norm1 = nn.LayerNorm(channels, eps=1e-6)
        self.attn = Attention(channels, num_heads)
        self.drop_path = DropPath(drop_path_rate)
        self.norm2 = nn.LayerNorm(channels, eps=1e-6)
        self.mlp = TokenMlp(channels, int(channels * mlp_ratio))
        self.recompute_mlp = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, Z, Y, X) -> same shape."""
        x = x + self.pos_embed(x)
        shape = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        tokens = tokens + self.drop_path(self.attn(self.norm1(tokens)))
        tokens = tokens + self.drop_path(run_mlp(self.mlp, self.norm2(tokens), self.recompute_mlp))
        return tokens.transpose(1, 2).reshape(shape)


def validate_uniformer_args(widths: Sequence[int], depths: Sequence[int], head_dim: int) -> None:
    """Raise :class:`NetworkConfigError` for widths/depths/head_dim a UniFormer cannot be built with."""
    if len(widths) != N_STAGES or len(depths) != N_STAGES:
        raise NetworkConfigError(f"UniFormer has {N_STAGES} stages: widths and depths need {N_STAGES} entries each, "
                                 f"got widths={list(widths)} depths={list(depths)}")
    if any(int(w) <= 0 for w in widths) or any(int(d) < 0 for d in depths):
        raise NetworkConfigError(f"widths must be positive and depths non-negative, got {list(widths)} {list(depths)}")
    bad = [w for w in widths[N_CONV_STAGES:] if head_dim <= 0 or w % head_dim]
    if bad:
        raise NetworkConfigError(f"attention-stage widths {bad} are not multiples of head_dim={head_dim}")


class UniFormerEncoder(PretrainableEncoder):
    """UniFormer 3-D encoder returning features at strides 2, 4, 8 and 16.

    Args:
        in_channels: input channels (1 in pre-training, the modality count when fine-tuning).
        widths: channels of the four stages.
        depths: blocks per stage (CBlocks in stages 1-2, SABlocks in 3-4).
        head_dim: channels per attention head (heads = width / head_dim).
        mlp_ratio: hidden/width ratio of every MLP.
        drop_path_rate: stochastic depth, increasing linearly from 0 over all blocks to this value.
    """

    def __init__(self, in_channels: int = 1, widths: Sequence[int] = UNIFORMER_S_WIDTHS,
                 depths: Sequence[int] = UNIFORMER_S_DEPTHS, head_dim: int = 64, mlp_ratio: float = 4.0,
                 drop_path_rate: float = 0.0):
        super().__init__()
        validate_uniformer_args(widths, depths, head_dim)
        widths, depths = tuple(int(w) for w in widths), tuple(int(d) for d in depths)
        self.out_channels = widths
        self.feature_strides = tuple((2 ** s,) * 3 for s in range(1, N_STAGES + 1))
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        first = 0
        previous = in_channels
        for stage, (width, depth) in enumerate(zip(widths, depths, strict=True)):
            setattr(self, f"patch_embed{stage + 1}", PatchEmbed(previous, width))
            if stage < N_CONV_STAGES:
                blocks = [CBlock(width, mlp_ratio, rates[first + i]) for i in range(depth)]
            else:
                blocks = [SABlock(width, width // head_dim, mlp_ratio, rates[first + i]) for i in range(depth)]
            setattr(self, f"blocks{stage + 1}", nn.ModuleList(blocks))
            first += depth
            previous = width
        self.norm = nn.BatchNorm3d(widths[-1])
        self.apply(_init_conv)

    def set_activation_checkpointing(self, enabled: bool) -> None:
        """Recompute every block's MLP in backward (:func:`run_mlp`): numerically the same, less memory."""
        for stage in range(1, N_STAGES + 1):
            for block in getattr(self, f"blocks{stage}"):
                block.recompute_mlp = bool(enabled)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C, Z, Y, X) with every axis divisible by 16 -> [x1, x2, x3, x4] at strides 2, 4, 8, 16."""
        self.check_input_shape(x.shape[2:])
        features = []
        for stage in range(1, N_STAGES + 1):
            x = getattr(self, f"patch_embed{stage}")(x)
            for block in getattr(self, f"blocks{stage}"):
                x = block(x)
            features.append(x)
        features[-1] = self.norm(features[-1])
        return features

    def compute_conv_feature_map_size(self, patch_size: Sequence[int]) -> int:
        """Elements of the layer outputs kept for backward, per sample (nnU-Net's planner unit).

        Counts one tensor per conv/linear output (as dynamic_network_architectures does for
        convolutions): patch embedding 1C, CBlock 9C (pos, conv1, dwconv5, conv2, MLP 4C + 1C),
        SABlock 11C (pos, qkv 3C, attention, proj, MLP 4C + 1C) per voxel of the stage.
        """
        voxels = math.prod(int(p) for p in patch_size)
        total = 0
        for stage, (width, stride) in enumerate(zip(self.out_channels, self.feature_strides, strict=True)):
            n = voxels // (stride[0] * stride[1] * stride[2])
            per_block = 9 if stage < N_CONV_STAGES else 11
            total += width * n * (1 + per_block * len(getattr(self, f"blocks{stage + 1}")))
        return total


def _init_conv(module: nn.Module) -> None:
    """Published init: Conv3d kaiming-normal (fan_out, relu), bias 0; Linear/LayerNorm keep PyTorch defaults."""
    if isinstance(module, nn.Conv3d):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
