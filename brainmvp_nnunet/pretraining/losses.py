"""Pre-training losses (reconstruction MSE, InfoNCE across DDP ranks) and the method's settings.

Two presets follow the two published settings (reference spec sections 4 and 5); ``paper()`` adds
our two departures (projection head, skip reconstruction head), ``release_code()`` has none:

===================  ==================  =======================
setting              ``paper()``         ``release_code()``
===================  ==================  =======================
loss weights MD/CMR/CL   1 / 1 / 1       10 / 1 / 1
mask ratio            0.875               0.8
contrastive features  pooled + projected  flattened bottleneck
temperature           0.1                 1.0
reconstruction head   skip (U-Net)        linear (published)
===================  ==================  =======================

Temperature: upstream compares raw 110 592-d bottlenecks at tau = 1, so the B x B logits are
cosines in [-1, 1]; with B = 3 the loss can only move between ~0.24 and ~2.76 (chance 1.10), a weak
signal (spec section 4, item 6). With a projection head we follow SimCLR/MoCo practice and use
tau = 0.1, which lets the logits span [-10, 10].

Reconstruction head: the published head rebuilds from the bottleneck alone and learns the proxy
tasks slowly and noisily; a U-Net head over all encoder features learns them within a hundred steps
at the test scale (measurements in ``docs/architecture.md``, section "Departures").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from brainmvp_nnunet.errors import PretrainingError
from brainmvp_nnunet.networks.reconstruction import RECONSTRUCTION_HEADS


def reconstruction_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all voxels (masked and visible, as upstream), computed in fp32."""
    return F.mse_loss(prediction.float(), target.float())


class ProjectionHead(nn.Module):
    """Global average pooling of a (B, C, z, y, x) feature map, then a 2-layer MLP (SimCLR-style).

    Args:
        in_channels: bottleneck channels (512 for UniFormer-S).
        hidden_dim: width of the hidden layer.
        out_dim: embedding size.
    """

    def __init__(self, in_channels: int = 512, hidden_dim: int = 512, out_dim: int = 128) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_channels, hidden_dim), nn.ReLU(inplace=True),
                                 nn.Linear(hidden_dim, out_dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C, z, y, x) -> (B, out_dim) embeddings (not normalised)."""
        return self.mlp(features.float().mean(dim=(2, 3, 4)))


def contrastive_embedding(features: torch.Tensor, head: ProjectionHead | None) -> torch.Tensor:
    """Embed bottleneck features for InfoNCE: through ``head``, or flattened when ``head`` is None (upstream)."""
    return head(features) if head is not None else features.float().flatten(1)


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 whose backward returns to each rank the summed gradient of its own slice.

    Every rank's loss uses every rank's embeddings, so the gradient of a local slice is the sum of
    the gradients that all ranks' losses send to it: all-reduce, then keep the local rows. Unlike
    torch.distributed.nn's all_gather this needs only all_reduce (gloo has no reduce_scatter).
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        tensor = tensor.contiguous()
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor)
        ctx.rows, ctx.rank = tensor.shape[0], dist.get_rank()
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def gather_with_grad(tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate ``tensor`` over all DDP ranks (dim 0) keeping gradients; also the offset of the local rows.

    Without an initialised process group (or with one rank) returns the tensor itself and offset 0.
    All ranks must pass the same number of rows.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor, 0
    return _GatherWithGrad.apply(tensor), dist.get_rank() * tensor.shape[0]


def info_nce(f: torch.Tensor, g: torch.Tensor, temperature: float = 0.1, gather: bool = True) -> torch.Tensor:
    """Symmetric InfoNCE between paired embeddings ``f[i]`` and ``g[i]`` (positives), others negatives.

    Embeddings are L2-normalised; with ``gather`` the negatives of all DDP ranks are used. For the
    local rows i and all (gathered) rows n: ``logits_fg[i, n] = <f_i, g_n> / T`` and
    ``logits_gf[i, n] = <g_i, f_n> / T``; loss = (CE(logits_fg, i) + CE(logits_gf, i)) / 2, averaged
    over local rows. On one process this is ``(CE(L, diag) + CE(L^T, diag)) / 2`` with ``L = f g^T / T``;
    the mean over ranks of the per-rank loss equals it on the global batch (equal per-rank batches).

    Raises:
        PretrainingError: on mismatched shapes or a non-positive temperature.
    """
    if f.shape != g.shape or f.ndim != 2:
        raise PretrainingError(f"InfoNCE needs two (B, D) embeddings of equal shape, got {f.shape} and {g.shape}")
    if temperature <= 0:
        raise PretrainingError(f"temperature must be positive, got {temperature}")
    # fp32 even under AMP: with tau = 0.1 the logits span [-10, 10], too coarse in bf16.
    with torch.autocast(device_type=f.device.type, enabled=False):
        f, g = F.normalize(f.float(), dim=1), F.normalize(g.float(), dim=1)
        f_all, offset = gather_with_grad(f) if gather else (f, 0)
        g_all, _ = gather_with_grad(g) if gather else (g, 0)
        labels = torch.arange(f.shape[0], device=f.device) + offset
        return 0.5 * (F.cross_entropy(f @ g_all.T / temperature, labels)
                      + F.cross_entropy(g @ f_all.T / temperature, labels))


@dataclass(frozen=True)
class PretrainLossWeights:
    """Weights of the three proxy losses.

    Attributes:
        template: modality-template distillation, reconstruction from the template-filled view A.
        cross_modal: cross-modal reconstruction from view B (partner- or, early on, template-filled).
        contrastive: InfoNCE between the two views.
    """

    template: float = 1.0
    cross_modal: float = 1.0
    contrastive: float = 1.0

    @classmethod
    def paper(cls) -> PretrainLossWeights:
        """1 / 1 / 1, the paper's lambda_MD = lambda_CL = 1."""
        return cls(1.0, 1.0, 1.0)

    @classmethod
    def release(cls) -> PretrainLossWeights:
        """10 / 1 / 1, the release code (``Uniformer.py``: template-view MSE times 10)."""
        return cls(10.0, 1.0, 1.0)


@dataclass(frozen=True)
class PretrainConfig:
    """The method's settings; the defaults are the paper's (:meth:`paper`).

    Attributes:
        block_size: mask block edge in voxels (patch dimensions must be multiples).
        mask_ratio: fraction of blocks masked (see :mod:`.masking` for the exact count).
        template_phase_fraction: view B uses the template during the first fraction of the epochs.
        contrastive_start_fraction: InfoNCE is on from this fraction of the epochs.
        temperature: InfoNCE temperature.
        projection: True: pooled features through a :class:`ProjectionHead`; False: flattened
            bottleneck, as upstream.
        projection_dim: projection head output size.
        weights: loss weights.
        reconstruction_head: "linear", the published head from the bottleneck alone, or "skip", a
            U-Net decoder over every encoder feature (see :mod:`brainmvp_nnunet.networks.reconstruction`).
    """

    block_size: int = 8
    mask_ratio: float = 0.875
    template_phase_fraction: float = 0.2
    contrastive_start_fraction: float = 2.0 / 3.0
    temperature: float = 0.1
    projection: bool = True
    projection_dim: int = 128
    weights: PretrainLossWeights = field(default_factory=PretrainLossWeights.paper)
    reconstruction_head: str = "skip"

    def __post_init__(self) -> None:
        if self.reconstruction_head not in RECONSTRUCTION_HEADS:
            raise PretrainingError(f"reconstruction_head must be one of {RECONSTRUCTION_HEADS}, "
                                   f"got {self.reconstruction_head!r}")
        if self.block_size < 1:
            raise PretrainingError(f"block_size must be >= 1, got {self.block_size}")
        for name in ("mask_ratio", "template_phase_fraction", "contrastive_start_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise PretrainingError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.temperature <= 0:
            raise PretrainingError(f"temperature must be positive, got {self.temperature}")

    @classmethod
    def paper(cls) -> PretrainConfig:
        """The paper's settings plus our projection head and skip reconstruction head (see the module table)."""
        return cls()

    @classmethod
    def release_code(cls) -> PretrainConfig:
        """The release script's settings: weights 10/1/1, mask 0.8, flattened features, tau 1.0, linear head.

        Its epoch switches (template for view B up to epoch 300, contrastive from epoch 1000, of 1500)
        are the default fractions 0.2 and 2/3; view B switches to the partner one epoch earlier
        (epoch 300 instead of 301).
        """
        return cls(mask_ratio=0.8, temperature=1.0, projection=False, weights=PretrainLossWeights.release(),
                   reconstruction_head="linear")


def _start_epoch(fraction: float, num_epochs: int) -> int:
    return math.floor(fraction * num_epochs + 0.5)


def cross_modal_active(epoch: int, num_epochs: int, config: PretrainConfig) -> bool:
    """Whether view B is filled from the partner modality (else from the template) at ``epoch`` (0-based).

    True from epoch ``round(template_phase_fraction * num_epochs)`` on.
    """
    return epoch >= _start_epoch(config.template_phase_fraction, num_epochs)


def contrastive_active(epoch: int, num_epochs: int, config: PretrainConfig) -> bool:
    """Whether InfoNCE is on at ``epoch`` (0-based): from ``round(contrastive_start_fraction * num_epochs)``."""
    return epoch >= _start_epoch(config.contrastive_start_fraction, num_epochs)
