"""Template channel substitution: pure parts, alignment inside nnU-Net's crop, and stock training runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from acvl_utils.cropping_and_padding.bounding_boxes import crop_and_pad_nd
from transfer_fakes import TINY, tiny_uniformer

from brainmvp_nnunet.cli import main
from brainmvp_nnunet.data.modalities import SLOTS
from brainmvp_nnunet.data.releases import write_synthetic_release
from brainmvp_nnunet.finetuning import (
    CaseWithTemplates,
    TemplateChannelSubstitution,
    channel_templates,
    draw_replaced_channels,
    embedding_consistency_loss,
    substitute_channels,
    templates_at_spacing,
    two_views,
    window,
)
from brainmvp_nnunet.nnunet_env import ext_trainer_value
from brainmvp_nnunet.transfer import PretrainedArtefact, save_artefact

BIN = Path(sys.executable).parent


@pytest.mark.parametrize(("channels", "max_replaced", "allowed"), [
    (4, None, {0, 1, 2, 3}), (4, 1, {0, 1}), (4, 0, {0}), (1, None, {0}), (3, 10, {0, 1, 2})])
def test_replaced_channel_count_never_all(channels, max_replaced, allowed):
    rng = np.random.default_rng(0)
    draws = [draw_replaced_channels(channels, rng, max_replaced) for _ in range(400)]
    assert {len(d) for d in draws} == allowed
    assert all(len(set(d)) == len(d) and all(0 <= c < channels for c in d) for d in draws)


@pytest.mark.parametrize("replaced", [[], [0], [1, 3], [0, 1, 2]])
def test_substitute_channels_takes_whole_template_channels(replaced):
    image, templ = torch.rand(4, 3, 3, 3), torch.rand(4, 3, 3, 3) + 10
    stacked = torch.cat([image, templ])
    before = stacked.clone()
    out = substitute_channels(stacked, replaced)
    assert out.shape == image.shape
    for c in range(4):
        assert torch.equal(out[c], templ[c] if c in replaced else image[c])
    assert torch.equal(stacked, before)


def test_transform_drops_templates_and_substitutes():
    stacked = torch.cat([torch.zeros(3, 2, 2, 2), torch.ones(3, 2, 2, 2)])
    np.random.seed(0)
    outs = [TemplateChannelSubstitution()(image=stacked.clone())["image"] for _ in range(60)]
    assert all(o.shape == (3, 2, 2, 2) for o in outs)
    assert {int(o.amax(dim=(1, 2, 3)).sum()) for o in outs} == {0, 1, 2}
    assert TemplateChannelSubstitution(max_replaced=0)(image=stacked.clone())["image"].abs().sum() == 0


def test_two_views_are_full_copies_in_sample_order():
    batch = torch.cat([torch.arange(3.0).view(3, 1, 1, 1, 1).expand(3, 2, 2, 2, 2),
                       torch.full((3, 2, 2, 2, 2), -1.0)], dim=1)  # sample b: image value b, templates -1
    views = two_views(batch, np.random.default_rng(1))
    assert views.shape == (6, 2, 2, 2, 2)
    for b in range(3):  # each row of each view belongs to sample b (or its template), never another sample
        for view in (views[b], views[3 + b]):
            assert set(view.unique().tolist()) <= {float(b), -1.0}
            assert (view == b).any()  # never all channels replaced


def test_consistency_loss_hand_value():
    a, b = torch.zeros(2, 3, 2, 2, 2), torch.ones(2, 3, 2, 2, 2)
    assert embedding_consistency_loss(a, a) == 0
    assert embedding_consistency_loss(a, 2 * b) == pytest.approx(4.0)


@pytest.mark.parametrize(("origin", "size"), [((0, 0, 0), (2, 3, 4)), ((-1, 2, 3), (3, 3, 3)),
                                              ((4, 8, 9), (3, 3, 3)), ((9, 0, 0), (2, 2, 2))])
def test_window_matches_coordinates_and_pads_with_zeros(origin, size):
    grid = np.zeros((1, 6, 10, 12), np.float32)
    z, y, x = np.meshgrid(*[np.arange(n) for n in grid.shape[1:]], indexing="ij")
    grid[0] = 10000 * z + 100 * y + x + 1  # +1: zero means "outside"
    out = window(grid, origin, size)
    for index in np.ndindex(*size):
        point = [o + i for o, i in zip(origin, index, strict=True)]
        inside = all(0 <= p < g for p, g in zip(point, grid.shape[1:], strict=True))
        expected = 10000 * point[0] + 100 * point[1] + point[2] + 1 if inside else 0
        assert out[(0, *index)] == expected


def test_case_with_templates_inside_nnunet_crop():
    data = np.random.default_rng(0).random((2, 5, 6, 7)).astype(np.float32)
    grid = np.zeros((2, 20, 20, 20), np.float32)
    z, y, x = np.meshgrid(*[np.arange(20)] * 3, indexing="ij")
    grid[0], grid[1] = 10000 * z + 100 * y + x + 1, -1
    case = CaseWithTemplates(data, grid, origin=(3, 4, 5), missing=[1])
    patch = crop_and_pad_nd(case, [[-1, 3], [2, 6], [4, 9]], 0)  # padded in front along z and behind along x
    assert patch.shape == (4, 4, 4, 5)
    for zi, yi, xi in np.ndindex(4, 4, 5):
        pz, py, px = zi - 1, yi + 2, xi + 4  # voxel in the case array
        inside = 0 <= pz < 5 and 0 <= px < 7
        assert patch[2, zi, yi, xi] == ((10000 * (pz + 3) + 100 * (py + 4) + px + 5 + 1) if inside else 0)
        assert patch[0, zi, yi, xi] == (data[0, pz, py, px] if inside else 0)
        assert patch[1, zi, yi, xi] == (-1 if inside else 0)  # missing channel served from its template


def test_templates_at_spacing_and_per_channel():
    templates = np.random.default_rng(0).random((4, 155, 240, 240)).astype(np.float32)
    assert templates_at_spacing(templates, (1, 1, 1), (3, 3, 3)).shape == (4, 52, 80, 80)
    assert templates_at_spacing(templates, (1, 1, 1), (1, 1, 1)) is templates
    per_channel = channel_templates(templates[:, :2, :2, :2], ["flair", "t1", "t1c", "t2"], ["t2", "pd", "flair"])
    assert np.array_equal(per_channel[0], templates[3, :2, :2, :2]) and not per_channel[1].any()
    assert np.array_equal(per_channel[2], templates[0, :2, :2, :2])


@pytest.fixture()
def dataset_with_missing(tmp_path, nnunet_roots) -> Path:
    from brainmvp_nnunet.dataset_conversion import convert
    from brainmvp_nnunet.planners.api import plan_and_preprocess

    src = write_synthetic_release(tmp_path / "src", "brats2023-gli", 5, seed=31, spacing=3.0, missing_rate=0.3,
                                  progress=False)
    raw = convert("brats2023-gli", src, 621)
    plan_and_preprocess(621, "BrainMVPPlanner_Tiny32", num_processes=1, verify_integrity=False)
    encoder = tiny_uniformer(1, seed=2, arch=TINY)
    templates = torch.randn(len(SLOTS), 52, 80, 80)
    artefact = save_artefact(PretrainedArtefact(
        network_class="brainmvp_nnunet.networks.segmentation.UniFormerSegNet", arch_kwargs=dict(TINY),
        encoder_state_dict=encoder.state_dict(), reconstruction_head_state_dict={}, templates=templates,
        template_slots=list(SLOTS), template_spacing=[3.0, 3.0, 3.0], normalization=["ZScoreNormalization"] * 4,
        spacing=[3.0, 3.0, 3.0], patch_size=[32, 32, 32]), tmp_path / "brainmvp_pretrained.pt")
    assert main(["finetune", "-d", "621", "--pretrained", str(artefact), "--plans-only"]) == 0
    return raw


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["nnUNetTrainerBrainMVP_templateSub_Tiny",
                                     "nnUNetTrainerBrainMVP_templateConsistency_Tiny"])
def test_template_trainers_run_through_stock_nnunet(dataset_with_missing, nnunet_roots, trainer):
    env = {**os.environ, "nnUNet_extTrainer": ext_trainer_value(), "nnUNet_n_proc_DA": "0"}
    result = subprocess.run([str(BIN / "nnUNetv2_train"), "621", "3d_fullres", "0", "-tr", trainer, "-p",
                             "BrainMVPPlans_pretrained", "-device", "cpu"], env=env, capture_output=True, text=True,
                            timeout=900, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    fold = nnunet_roots["nnUNet_results"] / dataset_with_missing.name / \
        f"{trainer}__BrainMVPPlans_pretrained__3d_fullres" / "fold_0"
    assert (fold / "validation" / "summary.json").is_file()
