"""Segmentation metrics against hand-computed cases and a brute-force surface-distance reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from brainmvp_nnunet.errors import EvaluationError
from brainmvp_nnunet.evaluation.metrics import (
    BRATS_HD95_PENALTY_MM,
    compute_case_metrics,
    convention_line,
    dice,
    hd95,
    image_diagonal_mm,
    normalized_surface_dice,
    region_key,
    segmentation_metrics,
    surface_distances,
    surface_mask,
)


def cube_pair(n: int, k: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """An n^3 cube and the same cube shifted by k voxels along ``axis``, with background all round."""
    size = n + 2 * k + 2
    a = np.zeros((size,) * 3, dtype=bool)
    a[1 : n + 1, 1 : n + 1, 1 : n + 1] = True
    return a, np.roll(a, k, axis=axis)


# Derivation (surface = voxels with a face-neighbour outside the mask, i.e. the cube's shell of
# n^3 - (n-2)^3 voxels; shift k < n along axis a with spacing s_a):
# * every reference surface voxel is at most k*s_a from the shifted surface: shell voxels inside the
#   overlap lie on both surfaces (0), the k slices left behind are (k - j)*s_a from the moved face,
#   and interior voxels of the trailing face are min(k*s_a, distance to a side wall) away;
# * the whole leading face (n^2 voxels) is exactly k*s_a away, since no shifted voxel is closer along a.
# n^2 / (n^3 - (n-2)^3) = 100/488 > 5 % for n = 10, so both directed 95th percentiles equal k*s_a.
@pytest.mark.parametrize(
    ("k", "axis", "spacing", "expected"),
    [
        (1, 0, (1.0, 1.0, 1.0), 1.0),
        (3, 0, (1.0, 1.0, 1.0), 3.0),
        (2, 0, (2.5, 1.0, 1.0), 5.0),  # anisotropic, shift along the coarse axis
        (4, 2, (3.0, 3.0, 0.5), 2.0),  # anisotropic, shift along the fine axis
        (2, 1, (3.0, 0.7, 0.5), 1.4),
    ],
)
def test_hd95_of_shifted_cubes_is_shift_times_spacing(k, axis, spacing, expected):
    a, b = cube_pair(10, k, axis)
    assert hd95(a, b, spacing) == pytest.approx(expected)
    assert hd95(b, a, spacing) == pytest.approx(expected)


# Same cubes, n = 10, shift 1 along axis 0. Non-zero distances: the leading face (100 voxels, s_0) and
# the 8 x 8 interior of the trailing face (64 voxels, min(s_0, s_1 * wall distance)), per direction;
# everything else is 0, of 488 surface voxels per cube.
@pytest.mark.parametrize(
    ("spacing", "tolerance", "expected"),
    [
        ((1.0, 1.0, 1.0), 1.0, 1.0),  # shift == tolerance: counted (<=)
        ((1.0, 1.0, 1.0), 0.5, 324 / 488),  # shift > tolerance: only the 488 - 100 - 64 zeros
        ((1.0, 1.0, 1.0), 0.0, 324 / 488),
        ((2.0, 1.0, 1.0), 0.5, 324 / 488),
        ((2.0, 1.0, 1.0), 1.0, 352 / 488),  # the 28-voxel ring next to the side walls is 1 mm away
        ((2.0, 1.0, 1.0), 1.9, 352 / 488),
        ((2.0, 1.0, 1.0), 2.0, 1.0),
    ],
)
def test_nsd_of_shifted_cubes_at_known_tolerance(spacing, tolerance, expected):
    a, b = cube_pair(10, 1, 0)
    assert normalized_surface_dice(a, b, spacing, tolerance) == pytest.approx(expected)


def brute_force_distances(ref, pred, spacing):
    """Directed surface distances by comparing every pair of surface voxel centres."""
    ref_pts = np.argwhere(surface_mask(ref)) * np.asarray(spacing)
    pred_pts = np.argwhere(surface_mask(pred)) * np.asarray(spacing)
    pairwise = cdist(ref_pts, pred_pts)
    return pairwise.min(axis=1), pairwise.min(axis=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_surface_distances_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    ref = rng.random((9, 11, 7)) > 0.6
    pred = rng.random((9, 11, 7)) > 0.7
    ref[0, :, :] = True  # touches the image border: the border face is surface
    spacing = (1.5, 0.8, 2.0)
    got = surface_distances(ref, pred, spacing)
    want = brute_force_distances(ref, pred, spacing)
    # both lists follow C order of the surface voxels (argwhere and boolean indexing agree)
    np.testing.assert_allclose(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1])
    expected_hd95 = max(np.percentile(want[0], 95), np.percentile(want[1], 95))
    assert hd95(ref, pred, spacing) == pytest.approx(expected_hd95)


def test_surface_is_the_six_connected_shell_and_includes_the_image_border():
    cube = np.zeros((5, 5, 5), dtype=bool)
    cube[1:4, 1:4, 1:4] = True
    assert surface_mask(cube).sum() == 27 - 1
    assert surface_mask(np.ones((3, 3, 3), dtype=bool)).sum() == 26


@pytest.mark.parametrize(
    ("ref", "pred", "expected"),
    [
        ([1, 1, 0], [1, 1, 0], 1.0),
        ([1, 1, 0, 0], [0, 0, 1, 1], 0.0),
        ([1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1], 0.5),
        ([1, 1, 0], [1, 0, 0], 2 / 3),
        ([1, 1, 1, 1, 1, 0], [1, 0, 0, 0, 0, 0], 2 / 6),
    ],
)
def test_dice_hand_cases(ref, pred, expected):
    assert dice(np.array(ref, bool), np.array(pred, bool)) == pytest.approx(expected)


NAN = math.nan
SHAPE, SPACING = (8, 8, 8), (1.0, 2.0, 3.0)
DIAGONAL = math.sqrt(8**2 + 16**2 + 24**2)


# (reference empty, prediction empty) x convention -> Dice, HD95, NSD; non-empty masks are identical.
@pytest.mark.parametrize(
    ("ref_empty", "pred_empty", "convention", "expected"),
    [
        (True, True, "nnunet", {"Dice": NAN, "HD95": NAN, "NSD": NAN}),
        (True, False, "nnunet", {"Dice": 0.0, "HD95": NAN, "NSD": 0.0}),
        (False, True, "nnunet", {"Dice": 0.0, "HD95": NAN, "NSD": 0.0}),
        (False, False, "nnunet", {"Dice": 1.0, "HD95": 0.0, "NSD": 1.0}),
        (True, True, "brats", {"Dice": 1.0, "HD95": 0.0, "NSD": 1.0}),
        (True, False, "brats", {"Dice": 0.0, "HD95": DIAGONAL, "NSD": 0.0}),
        (False, True, "brats", {"Dice": 0.0, "HD95": DIAGONAL, "NSD": 0.0}),
        (False, False, "brats", {"Dice": 1.0, "HD95": 0.0, "NSD": 1.0}),
    ],
)
def test_empty_mask_conventions(ref_empty, pred_empty, convention, expected):
    blob = np.zeros(SHAPE, dtype=bool)
    blob[2:5, 2:5, 2:5] = True
    empty = np.zeros(SHAPE, dtype=bool)
    got = segmentation_metrics(empty if ref_empty else blob, empty if pred_empty else blob, SPACING,
                               tolerance_mm=1.0, convention=convention)
    assert got.keys() == expected.keys()
    for metric, value in expected.items():
        assert got[metric] == pytest.approx(value, nan_ok=True), metric


def test_brats_penalty_is_the_brats_diagonal_or_the_value_given():
    assert BRATS_HD95_PENALTY_MM == pytest.approx(373.13, abs=0.005)
    assert image_diagonal_mm((155, 240, 240), (1.0, 1.0, 1.0)) == pytest.approx(BRATS_HD95_PENALTY_MM)
    blob = np.zeros(SHAPE, dtype=bool)
    blob[1, 1, 1] = True
    empty = np.zeros(SHAPE, dtype=bool)
    assert hd95(blob, empty, SPACING, convention="brats", penalty_mm=373.13) == 373.13


def test_case_metrics_use_nnunet_region_keys():
    ref = np.zeros((6, 6, 6), dtype=np.uint8)
    ref[1:3, 1:3, 1:3] = 1
    ref[3:5, 1:3, 1:3] = 2
    pred = ref.copy()
    pred[3:5, 1:3, 1:3] = 1  # label 2 predicted as 1: region (1, 2) still perfect
    got = compute_case_metrics(ref, pred, (1.0, 1.0, 1.0), [(1, 2), 2, (3,)], tolerance_mm=1.0)
    assert list(got) == ["(1, 2)", "2", "(3,)"]
    assert got["(1, 2)"] == {"Dice": 1.0, "HD95": 0.0, "NSD": 1.0}
    assert got["2"]["Dice"] == 0.0 and math.isnan(got["2"]["HD95"])
    assert all(math.isnan(v) for v in got["(3,)"].values())  # label 3 absent from both: nnU-Net's NaN
    assert region_key((1, 2, 3)) == "(1, 2, 3)" and region_key(1) == "1"


@pytest.mark.parametrize(
    "call",
    [
        lambda: dice(np.zeros(3, bool), np.zeros(4, bool)),
        lambda: hd95(np.ones((2, 2), bool), np.ones((2, 2), bool), (1.0, 1.0, 1.0)),
        lambda: dice(np.zeros(3, bool), np.zeros(3, bool), convention="medpy"),
        lambda: surface_distances(np.zeros((2, 2), bool), np.ones((2, 2), bool), (1.0, 1.0)),
    ],
)
def test_bad_inputs_raise(call):
    with pytest.raises(EvaluationError):
        call()


@pytest.mark.parametrize(("convention", "words"), [("nnunet", ["nnU-Net", "NaN"]), ("brats", ["BraTS", "diagonal"])])
def test_convention_line_names_the_convention(convention, words):
    line = convention_line(convention, tolerance_mm=2.0)
    assert line.startswith("Empty-reference convention:") and "2 mm" in line
    assert all(w in line for w in words)
