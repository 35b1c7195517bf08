"""Reconstruction and InfoNCE losses, the projection head, the presets and the phase switches."""

from __future__ import annotations

import math

import pytest
import torch

from brainmvp_nnunet.errors import PretrainingError
from brainmvp_nnunet.pretraining.losses import (
    PretrainConfig,
    PretrainLossWeights,
    ProjectionHead,
    contrastive_active,
    contrastive_embedding,
    cross_modal_active,
    gather_with_grad,
    info_nce,
    reconstruction_loss,
)


def test_reconstruction_loss_is_mse_over_all_voxels() -> None:
    pred, target = torch.zeros(2, 1, 2, 2, 2), torch.zeros(2, 1, 2, 2, 2)
    target[0, 0, 0, 0, 0] = 4.0
    assert reconstruction_loss(pred, target).item() == pytest.approx(16.0 / 16)


def test_info_nce_2x2_by_hand() -> None:
    f = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # normalised: (1, 0), (0, 1)
    g = torch.tensor([[5.0, 0.0], [3.0, 4.0]])  # normalised: (1, 0), (0.6, 0.8)
    # logits = f g^T / 0.5 = [[2, 1.2], [0, 1.6]]; CE with labels on the diagonal, rows then columns:
    rows = math.log(1 + math.exp(1.2 - 2)) + math.log(1 + math.exp(0 - 1.6))
    cols = math.log(1 + math.exp(0 - 2)) + math.log(1 + math.exp(1.2 - 1.6))
    expected = 0.5 * (rows / 2 + cols / 2)
    assert info_nce(f, g, temperature=0.5).item() == pytest.approx(expected, abs=1e-6)


def test_info_nce_3x3_by_hand() -> None:
    f = torch.eye(3)
    g = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    # tau = 1: L = [[1, 0, 1], [0, 1, 0], [0, 0, 0]]. Rows: -log(e/(2e+1)), -log(e/(e+2)), -log(1/3).
    # Columns (L^T = [[1, 0, 0], [0, 1, 0], [1, 0, 0]]): -log(e/(e+2)) twice and -log(1/(e+2)).
    e = math.e
    rows = math.log((2 * e + 1) / e) + math.log((e + 2) / e) + math.log(3)
    cols = 2 * math.log((e + 2) / e) + math.log(e + 2)
    assert info_nce(f, g, temperature=1.0).item() == pytest.approx(0.5 * (rows + cols) / 3, abs=1e-6)


def test_info_nce_is_symmetric_and_bounded_by_upstream_numbers() -> None:
    # Upstream (B = 3, tau = 1): ~0.24 at perfect alignment of orthogonal samples, log 3 at chance.
    f = torch.eye(3)
    assert info_nce(f, f, 1.0).item() == pytest.approx(math.log(1 + 2 / math.e), abs=1e-6)
    same = torch.ones(3, 4)
    assert info_nce(same, same, 1.0).item() == pytest.approx(math.log(3), abs=1e-6)
    a, b = torch.randn(4, 8, generator=torch.Generator().manual_seed(0)), torch.randn(4, 8)
    assert info_nce(a, b, 0.1).item() == pytest.approx(info_nce(b, a, 0.1).item(), abs=1e-5)


@pytest.mark.parametrize(
    ("f", "g", "temperature"),
    [(torch.zeros(2, 3), torch.zeros(3, 3), 0.1), (torch.zeros(2, 3), torch.zeros(2, 3), 0.0),
     (torch.zeros(2, 3, 1), torch.zeros(2, 3, 1), 0.1)],
)
def test_info_nce_errors(f: torch.Tensor, g: torch.Tensor, temperature: float) -> None:
    with pytest.raises(PretrainingError):
        info_nce(f, g, temperature)


def test_gather_without_process_group_is_identity() -> None:
    x = torch.randn(2, 3)
    gathered, offset = gather_with_grad(x)
    assert gathered is x and offset == 0


def test_projection_head_and_flatten() -> None:
    head = ProjectionHead(in_channels=4, hidden_dim=8, out_dim=3)
    features = torch.randn(2, 4, 2, 3, 2)
    assert head(features).shape == (2, 3)
    # Pooled: a spatial permutation of the features does not change the embedding.
    assert torch.allclose(head(features.flip(2, 3, 4)), head(features), atol=1e-6)
    assert contrastive_embedding(features, head).shape == (2, 3)
    assert torch.equal(contrastive_embedding(features, None), features.flatten(1))


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (PretrainConfig.paper(), (8, 0.875, 0.1, True, (1.0, 1.0, 1.0))),
        (PretrainConfig.release_code(), (8, 0.8, 1.0, False, (10.0, 1.0, 1.0))),
    ],
)
def test_presets(config: PretrainConfig, expected: tuple) -> None:
    w = config.weights
    assert (config.block_size, config.mask_ratio, config.temperature, config.projection,
            (w.template, w.cross_modal, w.contrastive)) == expected
    assert config.template_phase_fraction == 0.2 and config.contrastive_start_fraction == pytest.approx(2 / 3)


def test_weight_presets() -> None:
    assert PretrainLossWeights.paper() == PretrainLossWeights(1, 1, 1)
    assert PretrainLossWeights.release() == PretrainLossWeights(10, 1, 1)


@pytest.mark.parametrize(
    "kwargs",
    [{"mask_ratio": 1.2}, {"template_phase_fraction": -0.1}, {"contrastive_start_fraction": 2.0},
     {"temperature": 0.0}, {"block_size": 0}, {"reconstruction_head": "unet"}],
)
def test_config_validation(kwargs: dict) -> None:
    with pytest.raises(PretrainingError):
        PretrainConfig(**kwargs)


@pytest.mark.parametrize(
    ("epoch", "num_epochs", "cross_modal", "contrastive"),
    [
        (0, 1500, False, False),
        (299, 1500, False, False),
        (300, 1500, True, False),  # upstream switches at 301 (epoch > 300)
        (999, 1500, True, False),
        (1000, 1500, True, True),  # upstream: epoch >= 1000
        (1499, 1500, True, True),
        (1, 10, False, False),
        (2, 10, True, False),
        (6, 10, True, False),
        (7, 10, True, True),  # round(6.67) = 7
        (0, 1, True, False),  # one epoch: round(0.2) = 0, round(0.67) = 1
    ],
)
def test_phase_switches(epoch: int, num_epochs: int, cross_modal: bool, contrastive: bool) -> None:
    config = PretrainConfig()
    assert cross_modal_active(epoch, num_epochs, config) == cross_modal
    assert contrastive_active(epoch, num_epochs, config) == contrastive


def test_phase_fraction_edges() -> None:
    always = PretrainConfig(template_phase_fraction=0.0, contrastive_start_fraction=0.0)
    never = PretrainConfig(template_phase_fraction=1.0, contrastive_start_fraction=1.0)
    assert cross_modal_active(0, 5, always) and contrastive_active(0, 5, always)
    assert not cross_modal_active(4, 5, never) and not contrastive_active(4, 5, never)


def test_info_nce_in_fp32_under_autocast() -> None:
    f, g = torch.randn(4, 8), torch.randn(4, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = info_nce(f.bfloat16(), g.bfloat16(), 0.1)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(info_nce(f.bfloat16().float(), g.bfloat16().float(), 0.1).item(), abs=1e-6)
