"""The synthetic generator: physics of the contrasts, tumour anatomy, layouts, determinism, bad input."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from brainmvp_nnunet.cli import main
from brainmvp_nnunet.data.anatomy import load_mni152
from brainmvp_nnunet.data.releases import LAYOUTS, MANIFEST_NAME, subject_rng, write_synthetic_release
from brainmvp_nnunet.data.synth import (
    HEALTHY_TISSUES,
    LABEL_ED,
    LABEL_ET,
    LABEL_NCR,
    SEQUENCES,
    SynthConfig,
    _sample_anatomy,
    _world_coordinates,
    draw_subject,
    inversion_recovery,
    null_inversion_time,
    output_grid,
    render_subject,
    spin_echo,
    tissue_signal,
)
from brainmvp_nnunet.errors import SynthError

ALL_MODALITIES = ("t1", "t1c", "t2", "flair", "pd")


@pytest.fixture(scope="module")
def subject():
    """One rendered subject at 3 mm with every modality and a tumour, plus its pure-tissue masks."""
    anatomy = load_mni152()
    config = SynthConfig(spacing=3.0, modalities=ALL_MODALITIES)
    params = draw_subject(np.random.default_rng(11), anatomy, config)
    rendered = render_subject(anatomy, params, config)
    shape, affine = output_grid(anatomy, config.spacing)
    maps = _sample_anatomy(anatomy, params, _world_coordinates(shape, affine))
    healthy = rendered.label == 0
    pure = {t: healthy & (maps[t] > 0.9) for t in ("csf", "gm", "wm")}
    return rendered, pure


def _mean(image: np.ndarray, mask: np.ndarray) -> float:
    assert mask.sum() >= 5, "too few voxels to compare"
    return float(image[mask].mean())


# Signal equations: (modality, expected order of pure-tissue signals, brightest first).
PURE_TISSUE_ORDER = [
    ("t1", ("wm", "gm", "csf")),
    ("t1c", ("wm", "gm", "csf")),
    ("t2", ("csf", "gm", "wm")),
    ("pd", ("csf", "gm", "wm")),
]


@pytest.mark.parametrize(("modality", "order"), PURE_TISSUE_ORDER)
def test_equations_order_pure_tissues(modality, order):
    signals = [tissue_signal(modality, HEALTHY_TISSUES[t]) for t in order]
    assert signals == sorted(signals, reverse=True)


@pytest.mark.parametrize(("modality", "order"), PURE_TISSUE_ORDER)
def test_rendered_images_order_tissues(subject, modality, order):
    rendered, pure = subject
    means = [_mean(rendered.images[modality], pure[t]) for t in order]
    assert means == sorted(means, reverse=True), dict(zip(order, means, strict=True))


def test_flair_nulls_csf(subject):
    rendered, pure = subject
    flair = rendered.images["flair"]
    assert _mean(flair, pure["csf"]) < 0.3 * _mean(flair, pure["wm"])
    assert _mean(flair, pure["csf"]) < 0.3 * _mean(flair, pure["gm"])
    # The nulling inversion time zeroes the noiseless CSF signal exactly.
    seq = SEQUENCES["flair"]
    csf = HEALTHY_TISSUES["csf"]
    ti = null_inversion_time(csf.t1, seq.tr)
    assert inversion_recovery(csf.pd, csf.t1, csf.t2, seq.tr, seq.te, ti) == pytest.approx(0.0, abs=1e-12)
    assert 1600 < ti < 1900  # about 1.7 s for T1 = 2569 ms


def test_spin_echo_formula():
    assert spin_echo(1.0, 1000.0, 100.0, 1000.0, 100.0) == pytest.approx((1 - np.exp(-1)) * np.exp(-1))


def test_enhancing_tumour_brighter_after_gadolinium(subject):
    rendered, _ = subject
    et = rendered.label == LABEL_ET
    assert _mean(rendered.images["t1c"], et) > 1.5 * _mean(rendered.images["t1"], et)
    for value in (LABEL_NCR, LABEL_ED):  # no enhancement elsewhere in the tumour
        region = rendered.label == value
        ratio = _mean(rendered.images["t1c"], region) / _mean(rendered.images["t1"], region)
        assert 0.8 < ratio < 1.25


def test_edema_bright_on_flair_and_t2(subject):
    rendered, pure = subject
    ed = rendered.label == LABEL_ED
    for modality in ("flair", "t2"):
        assert _mean(rendered.images[modality], ed) > 1.3 * _mean(rendered.images[modality], pure["wm"])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_tumour_compartments_are_nested(seed):
    anatomy = load_mni152()
    config = SynthConfig(spacing=2.0, modalities=("t1",))
    subject = render_subject(anatomy, draw_subject(np.random.default_rng(seed), anatomy, config), config)
    label = subject.label
    ncr, et = label == LABEL_NCR, label == LABEL_ET
    assert ncr.any() and et.any() and (label == LABEL_ED).any()
    # Necrosis is enclosed by enhancing tumour: its full 26-neighbourhood is necrosis or enhancing.
    grown = ndimage.binary_dilation(ncr, structure=np.ones((3, 3, 3), bool))
    assert np.all(np.isin(label[grown], (LABEL_NCR, LABEL_ET)))
    # Core (1, 3) lies inside the whole tumour (1, 2, 3), which lies inside the brain.
    whole = label > 0
    assert np.all(whole[ncr | et])
    assert np.all(subject.images["t1"][whole] > 0)


def test_background_is_zero_and_brain_positive(subject):
    rendered, _ = subject
    images = np.stack(list(rendered.images.values()))
    brain = images[0] > 0
    assert 0.05 < brain.mean() < 0.5
    assert np.all((images > 0) == brain[None])


def test_missing_modalities_dropped_at_rate():
    anatomy = load_mni152()
    config = SynthConfig(spacing=4.0, missing_rate=0.5, with_tumour=False)
    available = [draw_subject(np.random.default_rng(s), anatomy, config).available for s in range(40)]
    counts = [len(a) for a in available]
    assert min(counts) >= 1
    assert 1.2 < np.mean(counts) < 2.8  # 4 modalities kept with probability 0.5 each


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(tmp_path):
    a = write_synthetic_release(tmp_path / "a", "brats2023-gli", 2, seed=5, spacing=4.0, progress=False)
    b = write_synthetic_release(tmp_path / "b", "brats2023-gli", 2, seed=5, spacing=4.0, progress=False)
    c = write_synthetic_release(tmp_path / "c", "brats2023-gli", 2, seed=6, spacing=4.0, progress=False)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_subject_independent_of_case_count():
    rng_a, rng_b = subject_rng(3, 4), subject_rng(3, 4)
    assert rng_a.uniform() == rng_b.uniform()
    assert subject_rng(3, 4).uniform() != subject_rng(3, 5).uniform()


# Real release naming per layout: (layout, expected relative paths of the first case, label values).
LAYOUT_CASES = [
    ("brats2023-gli", ["BraTS-GLI-00000-000/BraTS-GLI-00000-000-t1n.nii.gz",
                       "BraTS-GLI-00000-000/BraTS-GLI-00000-000-t1c.nii.gz",
                       "BraTS-GLI-00000-000/BraTS-GLI-00000-000-t2w.nii.gz",
                       "BraTS-GLI-00000-000/BraTS-GLI-00000-000-t2f.nii.gz",
                       "BraTS-GLI-00000-000/BraTS-GLI-00000-000-seg.nii.gz"], {0, 1, 2, 3}),
    ("brats2023-ped", ["BraTS-PED-00000-000/BraTS-PED-00000-000-t2f.nii.gz"], {0, 1, 2, 3}),
    ("brats2021", ["BraTS2021_00000/BraTS2021_00000_t1.nii.gz", "BraTS2021_00000/BraTS2021_00000_t1ce.nii.gz",
                   "BraTS2021_00000/BraTS2021_00000_t2.nii.gz", "BraTS2021_00000/BraTS2021_00000_flair.nii.gz",
                   "BraTS2021_00000/BraTS2021_00000_seg.nii.gz"], {0, 1, 2, 4}),
    ("ixi", ["IXI-T1/IXI002-Guys-0828-T1.nii.gz", "IXI-T2/IXI002-Guys-0828-T2.nii.gz",
             "IXI-PD/IXI002-Guys-0828-PD.nii.gz"], None),
]


@pytest.mark.parametrize(("layout", "paths", "label_values"), LAYOUT_CASES)
def test_release_layouts(tmp_path, layout, paths, label_values):
    out = write_synthetic_release(tmp_path / layout, layout, 1, seed=1, spacing=4.0, progress=False)
    for rel in paths:
        assert (out / rel).is_file(), rel
    segs = [p for p in out.rglob("*seg.nii.gz")]
    if label_values is None:
        assert not segs
    else:
        values = set(np.unique(np.asarray(nib.load(str(segs[0])).dataobj)).tolist())
        assert values == label_values
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["layout"] == layout and len(manifest["cases"]) == 1


def test_missing_files_match_manifest(tmp_path):
    out = write_synthetic_release(tmp_path / "m", "brats2021", 6, seed=2, spacing=4.0, missing_rate=0.5,
                                  progress=False)
    layout = LAYOUTS["brats2021"]
    for case in json.loads((out / MANIFEST_NAME).read_text())["cases"]:
        for slot, token in layout.suffixes.items():
            present = (out / layout.image_relpath(case["case"], token)).is_file()
            assert present == (slot in case["available"])


def test_cli_preview_writes_png(tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["synth", str(out), "-n", "1", "--spacing", "4", "--preview", "--quiet"]) == 0
    png = out / "preview.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert "preview:" in capsys.readouterr().out


BAD_ARGS = [
    (["--layout", "brats2019"], "unknown layout 'brats2019'"),
    (["-n", "-3"], "at least 1"),
    (["-n", "0"], "at least 1"),
    (["--start-index", "-1"], "start index"),
    (["--spacing", "0"], "spacing"),
    (["--missing-rate", "1.5"], "missing rate"),
]


@pytest.mark.parametrize(("extra", "message"), BAD_ARGS)
def test_cli_bad_options_fail_cleanly(tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    assert main(["synth", str(out), "--quiet", "--spacing", "4", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_unwritable_output_fails_cleanly(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert main(["synth", str(locked / "out"), "-n", "1", "--spacing", "4", "--quiet"]) == 2
        assert "cannot write" in capsys.readouterr().err
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_output_under_a_file_fails_cleanly(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["synth", str(blocker / "out"), "-n", "1", "--spacing", "4", "--quiet"]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_existing_nonempty_output_refused(tmp_path, capsys):
    out = tmp_path / "exists"
    out.mkdir()
    (out / "keep.txt").write_text("user data")
    assert main(["synth", str(out), "-n", "1", "--spacing", "4", "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_failure_midway_leaves_nothing(tmp_path, monkeypatch):
    import brainmvp_nnunet.data.releases as releases

    calls = {"n": 0}
    original = releases.render_subject

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return original(*args, **kwargs)

    monkeypatch.setattr(releases, "render_subject", failing)
    with pytest.raises(SynthError, match="No space left"):
        write_synthetic_release(tmp_path / "half", "brats2023-gli", 3, spacing=4.0, progress=False)
    assert list(tmp_path.iterdir()) == []
