"""`brainmvp predict` with missing modalities and `brainmvp evaluate-subsets`, end to end on CPU.

One tiny BraTS-style model (4 cases at 3 mm, 1 validation case, Tiny32 plans, a few iterations of
nnUNetTrainerBrainMVP_Tiny, fine-tuned from an artefact with non-zero templates) is trained once
in-process and shared by the tests of this module.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from transfer_fakes import TINY, tiny_uniformer

from brainmvp_nnunet.cli import main
from brainmvp_nnunet.data.releases import write_synthetic_release
from brainmvp_nnunet.inference import select_channels
from brainmvp_nnunet.transfer import PretrainedArtefact, save_artefact
from brainmvp_nnunet.workflows.predict import MissingModalityPredictor, model_folder

DATASET = 612
NAME = "Dataset612_BraTS2023-GLI"
TRAINER = "nnUNetTrainerBrainMVP_Tiny"
SLOTS = ("flair", "t1", "t1c", "t2")


def _templates_artefact(path: Path) -> Path:
    """A Tiny-architecture artefact whose templates (5 mm grid over the canonical FOV) are smooth, non-zero."""
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, n) for n in (31, 48, 48)), indexing="ij")
    ramp = np.exp(-(x**2 + y**2 + z**2) * 2).astype(np.float32)
    templates = torch.from_numpy(np.stack([ramp * (k + 1) for k in range(len(SLOTS))]))
    return save_artefact(PretrainedArtefact(
        network_class="brainmvp_nnunet.networks.segmentation.UniFormerSegNet", arch_kwargs=dict(TINY),
        encoder_state_dict=tiny_uniformer(1, seed=5, arch=TINY).state_dict(), reconstruction_head_state_dict={},
        templates=templates, template_slots=list(SLOTS), template_spacing=[5.0, 5.0, 5.0],
        normalization=["ZScoreNormalization"] * 4, spacing=[3.0, 3.0, 3.0], patch_size=[32, 32, 32]), path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """(raw dataset folder, plans identifier, validation case) of a trained fold 0."""
    from brainmvp_nnunet.dataset_conversion import convert
    from brainmvp_nnunet.planners.api import plan_and_preprocess
    from brainmvp_nnunet.workflows.finetune import prepare_finetune_plans, run_finetune

    root = tmp_path_factory.mktemp("predict")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
            (root / name).mkdir()
            mp.setenv(name, str(root / name))
        src = write_synthetic_release(root / "src", "brats2023-gli", 4, seed=3, spacing=3.0, progress=False)
        raw = convert("brats2023-gli", src, DATASET)
        plan_and_preprocess(DATASET, "BrainMVPPlanner_Tiny32", num_processes=1, verify_integrity=False)
        cases = sorted(json.loads((raw / "dataset.json").read_text())["brainmvp"]["available_slots"])
        splits = [{"train": cases[1:], "val": cases[:1]}]
        (root / "nnUNet_preprocessed" / NAME / "splits_final.json").write_text(json.dumps(splits))
        plans = prepare_finetune_plans(DATASET, "BrainMVPPlans", _templates_artefact(root / "pretrained.pt"))
        mp.setenv("nnUNet_n_proc_DA", "0")
        run_finetune(DATASET, plans, TRAINER, [0])
        mp.delenv("nnUNet_n_proc_DA")
        yield raw, plans, cases[0]


@pytest.fixture()
def roots(trained, monkeypatch):
    raw = trained[0]
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(name, str(raw.parent.parent / name))
    return trained


def _input(folder: Path, raw: Path, case: str, channels: list[int]) -> Path:
    folder.mkdir()
    for c in channels:
        shutil.copy(raw / "imagesTr" / f"{case}_{c:04d}.nii.gz", folder)
    return folder


def _predict(tmp_path: Path, plans: str, input_folder: Path, *extra: str) -> int:
    return main(["predict", "-i", str(input_folder), "-o", str(tmp_path / "out"), "-d", str(DATASET), "-p", plans,
                 "-tr", TRAINER, "-f", "0", *extra])


def test_only_flair_gives_segmentation_with_input_geometry(tmp_path, roots, capsys):
    raw, plans, case = roots
    folder = _input(tmp_path / "in", raw, case, [0])
    assert _predict(tmp_path, plans, folder) == 0
    image = sitk.ReadImage(str(folder / f"{case}_0000.nii.gz"))
    seg = sitk.ReadImage(str(tmp_path / "out" / f"{case}.nii.gz"))
    assert seg.GetSize() == image.GetSize()
    np.testing.assert_allclose(seg.GetSpacing(), image.GetSpacing())
    np.testing.assert_allclose(seg.GetOrigin(), image.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(seg.GetDirection(), image.GetDirection(), atol=1e-6)
    assert set(np.unique(sitk.GetArrayFromImage(seg))) <= {0, 1, 2, 3}
    record = json.loads((tmp_path / "out" / "brainmvp_predict.json").read_text())
    assert record["cases"] == [{"case": case, "used": ["flair"],
                                "filled": {"t1": "template", "t1c": "template", "t2": "template"}}]
    assert record["templates"].endswith("pretrained.pt")
    assert "used flair; filled t1 (template)" in capsys.readouterr().out


def test_templates_enter_the_preprocessed_case_centred_on_the_image(roots):
    """The blob templates peak at the template centre (height 2, 3, 4 for t1, t1c, t2): after nnU-Net's
    crop and resampling they must peak where the image centre went, and zeros must stay zeros."""
    raw, plans, case = roots
    model = model_folder(DATASET, TRAINER, plans)
    flair_only = select_channels(case, {0: raw / "imagesTr" / f"{case}_0000.nii.gz"}, (0,), SLOTS)
    data, properties, filled = MissingModalityPredictor(model, [0]).prepare(flair_only)
    assert filled == {"t1": "template", "t1c": "template", "t2": "template"}
    centre = [(n / 2 - lo) * size / (hi - lo) - 0.5 for n, (lo, hi), size in
              zip(properties["shape_before_cropping"], properties["bbox_used_for_cropping"], data.shape[1:],
                  strict=True)]
    for channel in (1, 2, 3):
        peak = np.unravel_index(np.argmax(data[channel]), data.shape[1:])
        np.testing.assert_allclose(peak, centre, atol=1.0)
        assert data[channel].max() == pytest.approx(channel + 1, rel=0.02)
    zeros, _, filled = MissingModalityPredictor(model, [0], fill="zeros").prepare(flair_only)
    assert filled == {"t1": "zeros", "t1c": "zeros", "t2": "zeros"} and not zeros[1:].any()
    np.testing.assert_array_equal(zeros[0], data[0])


def test_fill_zeros_and_available_restricts_present_files(tmp_path, roots):
    raw, plans, case = roots
    folder = _input(tmp_path / "in", raw, case, [0, 1, 2, 3])
    assert _predict(tmp_path, plans, folder, "--available", "T2F,t1n", "--fill", "zeros") == 0
    record = json.loads((tmp_path / "out" / "brainmvp_predict.json").read_text())
    assert record["templates"] is None
    assert record["cases"][0]["used"] == ["flair", "t1"]
    assert record["cases"][0]["filled"] == {"t1c": "zeros", "t2": "zeros"}
    assert (tmp_path / "out" / f"{case}.nii.gz").is_file()


def test_no_templates_falls_back_to_zeros_with_warning(tmp_path, roots, capsys):
    raw, _, case = roots
    # an nnU-Net checkpoint carries an encoder but no templates
    checkpoint = tmp_path / "weights_only.pt"
    torch.save({"network_weights": {"encoder.stem.weight": torch.zeros(1)}}, checkpoint)
    folder = _input(tmp_path / "in", raw, case, [3])
    assert _predict(tmp_path, roots[1], folder, "--templates", str(checkpoint)) == 0
    assert "has no modality templates: missing channels are filled with zeros" in capsys.readouterr().out
    record = json.loads((tmp_path / "out" / "brainmvp_predict.json").read_text())
    assert record["cases"][0]["filled"] == {"flair": "zeros", "t1": "zeros", "t1c": "zeros"}


@pytest.mark.parametrize(("setup", "extra", "message"), [
    ("flair", ["--available", "t5"], "unknown modality 't5'"),
    ("flair", ["--available", "pd"], "'pd' (pd) is not a channel of this model"),
    ("flair", ["--available", "t2"], "no available channel (files for: flair; allowed: t2)"),
    ("geometry", [], "geometry differs from"),
    ("flair", ["-tr", "nnUNetTrainerNope"], "no trained model"),
    ("channel", [], "channel 7 but the model has 4 input channels"),
])
def test_bad_inputs_fail_with_one_clear_line(tmp_path, roots, capsys, setup, extra, message):
    raw, plans, case = roots
    folder = _input(tmp_path / "in", raw, case, [0])
    if setup == "geometry":
        image = sitk.ReadImage(str(folder / f"{case}_0000.nii.gz"))
        image.SetOrigin(tuple(o + 9.0 for o in image.GetOrigin()))
        sitk.WriteImage(image, str(folder / f"{case}_0001.nii.gz"))
    elif setup == "channel":
        shutil.copy(folder / f"{case}_0000.nii.gz", folder / f"{case}_0007.nii.gz")
    assert _predict(tmp_path, plans, folder, *extra) == 2
    err = capsys.readouterr().err
    assert message in err, err
    if setup in ("geometry", "channel") or "no available" in message:
        assert f"case {case}" in err


def test_evaluate_subsets_table_has_a_row_per_nonempty_subset(tmp_path, roots, capsys):
    _, plans, case = roots
    out = tmp_path / "subsets"
    assert main(["evaluate-subsets", "-d", str(DATASET), "-p", plans, "-tr", TRAINER, "-f", "0", "-o", str(out)]) == 0
    progress = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[subsets]")]
    assert len(progress) == 15 and progress[0].startswith("[subsets] 1/15 flair: 1 cases")
    lines = (out / "subsets.csv").read_text().splitlines()
    assert lines[0] == ("subset,n_cases,Dice whole tumor,Dice tumor core,Dice enhancing tumor,Dice overall")
    assert len(lines) == 1 + 2**4 - 1
    assert [line.split(",")[0] for line in lines[1:5]] == list(SLOTS)
    assert lines[-1].startswith("flair+t1+t1c+t2,1,")
    assert (out / "t1+t2" / f"{case}.nii.gz").is_file()
    markdown = (out / "subsets.md").read_text()
    assert markdown.count("\n| flair") == 8 and "Empty-reference convention: nnU-Net" in markdown
