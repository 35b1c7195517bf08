"""Missing-modality prediction, pure parts: template resampling onto a case's grid, channel files,
``--available`` names, geometry checks and modality subsets."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from brainmvp_nnunet.errors import PredictionError
from brainmvp_nnunet.inference import (
    fill_templates_from_weights,
    find_case_files,
    geometry_difference,
    nonempty_subsets,
    parse_available,
    select_channels,
    subset_name,
    template_on_grid,
    template_on_preprocessed_case,
)
from brainmvp_nnunet.pretraining.templates import patch_origin_to_template_origin
from brainmvp_nnunet.transfer import EncoderWeights

BRATS = ("flair", "t1", "t1c", "t2")


def _coordinate_templates(shape):
    """Three templates whose value is the voxel index along z, y and x (linear, so interpolation is exact)."""
    return np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")


def _expected_index(points, image_size, image_spacing, template_size, template_spacing):
    """Template index under image positions ``points`` (in image voxel units, 0 = first voxel centre),
    from millimetres: image centre on template centre."""
    mm_from_centre = (np.asarray(points) + 0.5 - image_size / 2) * image_spacing
    return mm_from_centre / template_spacing + template_size / 2 - 0.5


@pytest.mark.parametrize(("template_spacing", "image_shape", "image_spacing"), [
    ((1.0, 1.0, 1.0), (10, 12, 14), (1.0, 1.0, 1.0)),   # same grid: identity
    ((2.0, 1.5, 1.0), (5, 11, 4), (3.0, 1.0, 2.5)),     # other spacings, odd sizes, every axis different
    ((1.0, 1.0, 1.0), (4, 4, 4), (2.0, 2.0, 2.0)),
])
def test_template_values_land_where_their_millimetres_are(template_spacing, image_shape, image_spacing):
    template_shape = (10, 12, 14)
    for axis, template in enumerate(_coordinate_templates(template_shape)):
        out = template_on_grid(template, template_spacing, image_shape, image_spacing)
        assert out.shape == image_shape and out.dtype == np.float32
        expected = _expected_index(np.arange(image_shape[axis]), image_shape[axis], image_spacing[axis],
                                   template_shape[axis], template_spacing[axis])
        profile = np.moveaxis(out, axis, 0).reshape(image_shape[axis], -1)
        np.testing.assert_allclose(profile, np.repeat(expected[:, None], profile.shape[1], 1), atol=1e-4)


def test_crop_and_resampling_are_composed_into_the_mapping():
    template_shape, template_spacing = (20, 22, 24), (1.0, 1.0, 1.0)
    image_shape, image_spacing = (16, 16, 18), (1.0, 1.2, 1.0)
    crop, output_shape = [[2, 14], [3, 13], [0, 18]], (6, 20, 9)  # shrink z, stretch y, halve x
    for axis, template in enumerate(_coordinate_templates(template_shape)):
        out = template_on_grid(template, template_spacing, image_shape, image_spacing, crop, output_shape)
        lo, hi = crop[axis]
        points = lo + (np.arange(output_shape[axis]) + 0.5) * (hi - lo) / output_shape[axis] - 0.5
        expected = _expected_index(points, image_shape[axis], image_spacing[axis], template_shape[axis],
                                   template_spacing[axis])
        np.testing.assert_allclose(np.moveaxis(out, axis, 0)[:, 0, 0], expected, atol=1e-4)


def test_outside_the_template_grid_is_zero():
    template = np.ones((4, 4, 4), dtype=np.float32)
    out = template_on_grid(template, (1.0, 1.0, 1.0), (12, 4, 4), (1.0, 1.0, 1.0))
    assert out[:3].max() == 0 and out[-3:].max() == 0 and np.all(out[5:7] == 1)


def test_agrees_with_the_pretraining_patch_alignment_when_voxels_match():
    """The convention is the one of pretraining.templates: at one template voxel per preprocessed voxel
    the interpolated grid is the integer template window under the case."""
    rng = np.random.default_rng(0)
    template = rng.normal(size=(50, 60, 64)).astype(np.float32)
    image_shape, image_spacing, bbox = (20, 24, 30), (2.0, 2.0, 2.0), [[2, 18], [4, 20], [0, 30]]
    crop_shape = [hi - lo for lo, hi in bbox]
    preprocessed_shape = [2 * n for n in crop_shape]  # resampled to the template's 1 mm
    origin = patch_origin_to_template_origin((0, 0, 0), bbox, crop_shape, preprocessed_shape, image_spacing,
                                             image_shape, template.shape, (1.0, 1.0, 1.0))
    window = template[tuple(slice(o, o + n) for o, n in zip(origin, preprocessed_shape, strict=True))]
    out = template_on_grid(template, (1.0, 1.0, 1.0), image_shape, image_spacing, bbox, preprocessed_shape)
    np.testing.assert_allclose(out, window, atol=1e-5)


def test_preprocessed_case_follows_nnunet_transpose_forward():
    rng = np.random.default_rng(1)
    template, template_spacing = rng.normal(size=(12, 14, 16)).astype(np.float32), (1.0, 1.5, 2.0)
    properties = {"spacing": [2.0, 1.0, 1.5], "shape_before_cropping": (6, 12, 10),
                  "bbox_used_for_cropping": [[1, 5], [2, 12], [0, 10]]}
    plain = template_on_preprocessed_case(template, template_spacing, properties, (5, 10, 12))
    # nnU-Net transposes the image and its shapes and boxes, but not the spacing read from the file
    transposed = {"spacing": properties["spacing"], "shape_before_cropping": (10, 12, 6),
                  "bbox_used_for_cropping": [[0, 10], [2, 12], [1, 5]]}
    out = template_on_preprocessed_case(template, template_spacing, transposed, (12, 10, 5), (2, 1, 0))
    np.testing.assert_allclose(out, plain.transpose(2, 1, 0), atol=1e-6)


def test_fill_templates_from_checkpoint_weights():
    templates = torch.arange(2 * 31 * 48 * 48, dtype=torch.float32).reshape(2, 31, 48, 48)
    weights = EncoderWeights({}, None, "pretrain", "x.pt", templates=templates, template_slots=("t1", "flair"))
    fill = fill_templates_from_weights(weights)
    assert fill.spacing == (5.0, 5.0, 5.0)  # no spacing recorded: the canonical 155 x 240 x 240 mm field of view
    np.testing.assert_array_equal(fill.volumes["flair"], templates[1].numpy())
    assert fill_templates_from_weights(EncoderWeights({}, None, "nnunet")) is None


def test_case_files_are_grouped_by_case_and_channel(tmp_path):
    for name in ("a_0000.nii.gz", "a_0002.nii.gz", "b_x_0001.nii.gz", "notes.txt", "c.nii.gz"):
        (tmp_path / name).touch()
    cases = find_case_files(tmp_path, ".nii.gz", 4)
    assert {case: sorted(files) for case, files in cases.items()} == {"a": [0, 2], "b_x": [1]}
    with pytest.raises(PredictionError, match=r"case a, file .*a_0000.nii.gz: channel 0 but the model has 0"):
        find_case_files(tmp_path, ".nii.gz", 0)
    with pytest.raises(PredictionError, match="no image named CASE_XXXX.nrrd"):
        find_case_files(tmp_path, ".nrrd", 4)
    with pytest.raises(PredictionError, match="input folder does not exist"):
        find_case_files(tmp_path / "nope", ".nii.gz", 4)


@pytest.mark.parametrize(("names", "channels"), [
    (None, (0, 1, 2, 3)), (["FLAIR"], (0,)), (["t2", "T1GD", "t1n"], (1, 2, 3)), (["t2f", "flair"], (0,)),
])
def test_available_names_are_aliases_of_dataset_channels(names, channels):
    assert parse_available(names, BRATS) == channels


@pytest.mark.parametrize(("names", "message"), [
    (["t5"], "unknown modality 't5'"), (["adc"], "'adc' (adc) is not a channel"), ([], "names no modality"),
])
def test_bad_available_names_are_refused(names, message):
    with pytest.raises(PredictionError, match=re.escape(message)):
        parse_available(names, BRATS)


def test_select_channels_marks_absent_and_excluded_channels_missing(tmp_path):
    files = {0: tmp_path / "a_0000.nii.gz", 2: tmp_path / "a_0002.nii.gz"}
    case = select_channels("a", files, (0, 1, 3), BRATS)
    assert dict(case.files) == {0: files[0]} and case.missing == (1, 2, 3)
    with pytest.raises(PredictionError, match=r"case a: no available channel \(files for: flair, t1c; allowed: t2\)"):
        select_channels("a", files, (3,), BRATS)


def test_geometry_difference_names_what_differs():
    props = {"sitk_stuff": {"spacing": (1.0, 1.0, 2.0), "origin": (0.0, 0.0, 0.0), "direction": (1, 0, 0, 0, 1, 0,
                                                                                                    0, 0, 1)},
             "spacing": [2.0, 1.0, 1.0]}
    assert geometry_difference((4, 5, 6), props, (4, 5, 6), {**props, "spacing": [2.0, 1.0, 1.0 + 1e-7]}) is None
    moved = {**props, "sitk_stuff": {**props["sitk_stuff"], "origin": (0.0, 3.0, 0.0)}}
    assert geometry_difference((4, 5, 6), props, (4, 5, 6), moved) == \
        "sitk_stuff.origin [0.0, 3.0, 0.0] differs from [0.0, 0.0, 0.0]"
    assert geometry_difference((4, 5, 6), props, (4, 5, 7), props) == "shape (4, 5, 7) differs from (4, 5, 6)"


def test_nonempty_subsets():
    assert nonempty_subsets(2) == [(0,), (1,), (0, 1)]
    subsets = nonempty_subsets(4)
    assert len(subsets) == 2**4 - 1 == len(set(subsets))
    assert subsets[:5] == [(0,), (1,), (2,), (3,), (0, 1)] and subsets[-1] == (0, 1, 2, 3)
    assert subset_name((3, 0), BRATS) == "flair+t2"
