"""Both views and the loss dict of one pre-training step, with a tiny encoder and decoder."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from brainmvp_nnunet.errors import PretrainingError
from brainmvp_nnunet.pretraining import (
    ModalityChoice,
    ModalityTemplates,
    PretrainConfig,
    ProjectionHead,
    apply_modality_choices,
    build_views,
    draw_block_masks,
    pretrain_losses,
)

PATCH = (8, 8, 8)


def _inputs(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    data = torch.randn(3, 2, *PATCH, generator=gen)
    sel = apply_modality_choices(data, [ModalityChoice(0, 1), ModalityChoice(1, 0), ModalityChoice(1, None)], (0, 1))
    return {"target": sel.target, "partner": sel.partner, "has_partner": sel.has_partner,
            "mask_a": draw_block_masks(3, PATCH, 4, 0.5, gen), "mask_b": draw_block_masks(3, PATCH, 4, 0.5, gen)}


def test_build_views_fill_sources() -> None:
    x = _inputs()
    template = torch.full((3, 1, *PATCH), 7.0)
    for use_partner in (False, True):
        view_a, view_b = build_views(x["target"], x["partner"], x["has_partner"], template, x["mask_a"], x["mask_b"],
                                     use_partner)
        assert torch.equal(view_a[x["mask_a"]], template[x["mask_a"]])
        assert torch.equal(view_a[~x["mask_a"]], x["target"][~x["mask_a"]])
        assert torch.equal(view_b[~x["mask_b"]], x["target"][~x["mask_b"]])
        for b, partner_used in enumerate([use_partner, use_partner, False]):  # sample 2 has no partner
            source = x["partner"] if partner_used else template
            m = x["mask_b"][b]
            assert torch.equal(view_b[b][m], source[b][m])


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Conv3d(1, 4, 4, stride=4)
        self.dec = nn.ConvTranspose3d(4, 1, 4, stride=4)


@pytest.mark.parametrize("config", [PretrainConfig.paper(), PretrainConfig.release_code()], ids=["paper", "release"])
def test_pretrain_losses_phases_and_gradients(config: PretrainConfig) -> None:
    torch.manual_seed(0)
    net, head, templates = _Net(), ProjectionHead(4, 8, 3), ModalityTemplates(slots=("flair", "t1"), shape=(12, 12, 12))
    x = _inputs()
    origins = [(2, 2, 2), (0, 4, 4), (4, 0, 4)]

    def losses(epoch: int) -> dict[str, torch.Tensor]:
        window = templates(torch.tensor([0, 1, 1]), origins, PATCH)
        return pretrain_losses(lambda v: [net.enc(v)], lambda f: net.dec(f[-1]), x["target"], x["partner"],
                               x["has_partner"], window, x["mask_a"], x["mask_b"], epoch, 30, config, head)

    early, late = losses(0), losses(25)
    assert set(early) == {"loss", "template_rec", "cross_modal_rec", "contrastive"}
    assert early["contrastive"] == 0 and late["contrastive"] > 0
    w = config.weights
    assert early["loss"].item() == pytest.approx(w.template * early["template_rec"].item()
                                                 + w.cross_modal * early["cross_modal_rec"].item(), rel=1e-6)
    assert late["loss"].item() == pytest.approx(w.template * late["template_rec"].item() + w.cross_modal
                                                * late["cross_modal_rec"].item() + w.contrastive
                                                * late["contrastive"].item(), rel=1e-6)
    late["loss"].backward()
    assert net.enc.weight.grad.abs().sum() > 0
    assert (head.mlp[0].weight.grad is not None) == config.projection
    # Template gradients only where some sample's masked voxel sits over the template.
    assert templates.templates.grad.abs().sum() > 0
    covered = torch.zeros_like(templates.templates, dtype=torch.bool)
    for b, ((z, y, xx), slot) in enumerate(zip(origins, (0, 1, 1), strict=True)):
        covered[slot, z:z + 8, y:y + 8, xx:xx + 8] |= x["mask_a"][b, 0] | (x["mask_b"][b, 0] & ~x["has_partner"][b])
    assert not templates.templates.grad[~covered].any()


def test_projection_without_head_is_an_error() -> None:
    x = _inputs()
    with pytest.raises(PretrainingError, match="ProjectionHead"):
        pretrain_losses(nn.Identity(), nn.Identity(), x["target"], x["partner"], x["has_partner"],
                        torch.zeros(3, 1, *PATCH), x["mask_a"], x["mask_b"], 0, 10, PretrainConfig())


@pytest.mark.parametrize("enabled", [True, False])
def test_pretraining_model_sets_activation_checkpointing(enabled: bool) -> None:
    from brainmvp_nnunet.networks import UniFormerEncoder
    from brainmvp_nnunet.pretraining.model import PretrainingModel

    model = PretrainingModel(UniFormerEncoder(1, [8, 16, 40, 64], [1, 1, 1, 1], 8),
                             ModalityTemplates(("t1",), (4, 4, 4)), PretrainConfig(), activation_checkpointing=enabled)
    blocks = [b for stage in range(1, 5) for b in getattr(model.encoder, f"blocks{stage}")]
    assert [b.recompute_mlp for b in blocks] == [enabled] * 4
