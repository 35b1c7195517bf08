"""The pre-training trainer end to end on synthetic IXI data with missing modalities (CPU, tiny UniFormer).

One converted and planned dataset is shared by the module (raw and preprocessed folders); every test
gets its own nnUNet_results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from brainmvp_nnunet.nnunet_env import ext_trainer_value

DATASET = 531
DATASET_NAME = f"Dataset{DATASET}_IXI"
TRAINER = "nnUNetTrainerBrainMVPPretrain_Tiny"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """4 synthetic IXI subjects at 3 mm, 30 % of modalities missing, planned with the tiny UniFormer and ResEnc."""
    from brainmvp_nnunet.data.releases import write_synthetic_release
    from brainmvp_nnunet.dataset_conversion import convert
    from brainmvp_nnunet.planners.api import plan_and_preprocess

    root = tmp_path_factory.mktemp("pretrain")
    roots = {name: root / name for name in ("nnUNet_raw", "nnUNet_preprocessed")}
    with pytest.MonkeyPatch.context() as mp:
        for name, path in roots.items():
            path.mkdir()
            mp.setenv(name, str(path))
        src = write_synthetic_release(root / "ixi", "ixi", 4, seed=3, spacing=3.0, missing_rate=0.3, progress=False)
        convert("ixi", src, DATASET)
        plan_and_preprocess(DATASET, "BrainMVPPlanner_Tiny32", num_processes=1, verify_integrity=False)
        plan_and_preprocess(DATASET, "BrainMVPResEncPlanner_Tiny32", num_processes=1, verify_integrity=False)
    return roots


@pytest.fixture()
def env(dataset: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Shared raw/preprocessed data, a fresh results folder, no data-augmentation workers; returns results."""
    for name, path in dataset.items():
        monkeypatch.setenv(name, str(path))
    results = tmp_path / "nnUNet_results"
    results.mkdir()
    monkeypatch.setenv("nnUNet_results", str(results))
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    monkeypatch.setenv("nnUNet_extTrainer", ext_trainer_value())
    return results


def _fold(results: Path, trainer: str = TRAINER, plans: str = "BrainMVPPlans") -> Path:
    return results / DATASET_NAME / f"{trainer}__{plans}__3d_fullres" / "fold_all"


def _trainer(trainer: str = TRAINER, plans: str = "BrainMVPPlans", continue_training: bool = False):
    from nnunetv2.run.run_training import get_trainer_from_args

    return get_trainer_from_args(str(DATASET), "3d_fullres", "all", trainer, plans, continue_training,
                                 device=torch.device("cpu"))


def _check_outputs(fold: Path, plans: str, channels: int) -> None:
    """Artefact (weights_only) whose encoder loads into the fine-tuning network, templates, pictures, log keys."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    from brainmvp_nnunet.transfer import load_artefact, load_encoder_into, read_encoder_weights, safe_torch_load

    artefact = load_artefact(fold / "brainmvp_pretrained.pt")
    assert artefact.template_slots == ["t1", "t2", "pd"] and artefact.spacing == [3.0, 3.0, 3.0]
    assert tuple(artefact.templates.shape) == (3, 52, 80, 80)  # 155 x 240 x 240 mm at 3 mm
    network = get_network_from_plans(artefact.network_class, artefact.arch_kwargs,
                                     ["conv_op", "norm_op", "dropout_op", "nonlin"] if "ResEnc" in plans else [],
                                     channels, 2, allow_init=True, deep_supervision=False)
    report = load_encoder_into(network, read_encoder_weights(fold / "brainmvp_pretrained.pt"), min_fraction=1.0)
    assert report.fraction == 1.0 and report.adapted  # the 1-channel stem repeated to the dataset's channels
    for slot in artefact.template_slots:
        image = sitk.ReadImage(str(fold / "templates" / f"{slot}.nii.gz"))
        assert image.GetSize() == (80, 80, 52) and image.GetSpacing() == (3.0, 3.0, 3.0)
    assert (fold / "progress.png").is_file() and sorted(p.name for p in (fold / "reconstructions").iterdir()) == \
        ["epoch_0001.png", "epoch_0002.png"]
    checkpoint = safe_torch_load(fold / "checkpoint_final.pth")  # weights_only=True
    logging = checkpoint["logging"]
    for key in ("mean_fg_dice", "ema_fg_dice", "dice_per_class_or_region", "train_losses", "val_losses", "lrs",
                "epoch_start_timestamps", "epoch_end_timestamps", "val_template_rec", "val_template_only",
                "val_contrastive"):
        assert len(logging[key]) == 2, key
    assert logging["val_contrastive"][0] == 0.0 < logging["val_contrastive"][1]  # InfoNCE from 2/3 of training
    assert checkpoint["template_slots"] == ["t1", "t2", "pd"]
    # the trainer's own checkpoint is also a fine-tuning source
    assert read_encoder_weights(fold / "checkpoint_final.pth").source_kind == "pretrain"


@pytest.mark.slow
def test_stock_nnunetv2_train(env: Path) -> None:
    result = subprocess.run([str(BIN / "nnUNetv2_train"), str(DATASET), "3d_fullres", "all", "-tr", TRAINER,
                             "-p", "BrainMVPPlans", "-device", "cpu"],
                            env=os.environ.copy(), capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    fold = _fold(env)
    log = next(fold.glob("training_log_*.txt")).read_text()
    assert "fine-tuning check: encoder weights" in log and "no segmentation validation" in log
    _check_outputs(fold, "BrainMVPPlans", 3)


@pytest.mark.slow
def test_brainmvp_pretrain_resenc_and_continue(env: Path, capsys: pytest.CaptureFixture) -> None:
    from brainmvp_nnunet.cli import main

    args = ["pretrain", "-d", str(DATASET), "-p", "BrainMVPResEncPlans", "--trainer", TRAINER, "--device", "cpu"]
    assert main(args) == 0
    fold = _fold(env, plans="BrainMVPResEncPlans")
    assert f"pre-trained artefact: {fold / 'brainmvp_pretrained.pt'}" in capsys.readouterr().out
    _check_outputs(fold, "BrainMVPResEncPlans", 3)
    # --continue on a finished run resumes from checkpoint_final: no more epochs, same outputs
    before = torch.load(fold / "checkpoint_final.pth", weights_only=True)["network_weights"]
    assert main([*args, "--continue"]) == 0
    after = torch.load(fold / "checkpoint_final.pth", weights_only=True)["network_weights"]
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_reconstruction_beats_template_alone(env: Path) -> None:
    """Ordinary training (nnU-Net's loop, a fresh random batch every step, modalities missing): after 300
    iterations the validation loss of the template-view reconstruction (last two epochs) is well below the
    MSE of predicting the template window alone, which the model computes on the same samples (seeded: the
    same run every time). The ratio is noisy from epoch to epoch (fresh validation patches), hence the mean.

    With the published linear head instead of the default skip head this fails (docs/architecture.md).
    """
    from brainmvp_nnunet.pretraining.nnunet import PatchOriginDataLoader

    trainer = _trainer()
    trainer.num_epochs, trainer.num_iterations_per_epoch, trainer.num_val_iterations_per_epoch = 6, 50, 10
    trainer.run_training()
    logged = trainer.logger.get_checkpoint()
    rec, alone = np.mean(logged["val_template_rec"][-2:]), np.mean(logged["val_template_only"][-2:])
    assert rec < 0.75 * alone, (logged["val_template_rec"], logged["val_template_only"])
    assert isinstance(trainer.dataloader_train.data_loader, PatchOriginDataLoader)  # fresh random patches


def test_resume_equals_uninterrupted_run(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stop after epoch 0 (checkpoint_latest), resume with --c semantics, compare with an uninterrupted run."""
    from nnunetv2.run.run_training import maybe_load_checkpoint
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from brainmvp_nnunet.trainers.pretrain import nnUNetTrainerBrainMVPPretrain

    uninterrupted = _trainer()
    uninterrupted.run_training()
    reference = torch.load(_fold(env) / "checkpoint_final.pth", weights_only=True)

    monkeypatch.setenv("nnUNet_results", str(env.parent / "interrupted"))

    class Killed(Exception):
        pass

    def stop_at_epoch_1(self) -> None:
        if self.current_epoch == 1:
            raise Killed
        nnUNetTrainer.on_epoch_start(self)

    with monkeypatch.context() as mp:
        mp.setattr(nnUNetTrainerBrainMVPPretrain, "on_epoch_start", stop_at_epoch_1)
        with pytest.raises(Killed):
            _trainer().run_training()
    fold = _fold(env.parent / "interrupted")
    assert (fold / "checkpoint_latest.pth").is_file() and not (fold / "checkpoint_final.pth").exists()

    resumed = _trainer(continue_training=True)
    maybe_load_checkpoint(resumed, True, False)
    assert resumed.current_epoch == 1
    resumed.run_training()
    final = torch.load(fold / "checkpoint_final.pth", weights_only=True)
    weights = final["network_weights"]
    assert set(weights) == set(reference["network_weights"]) and "templates.templates" in weights
    for key, value in reference["network_weights"].items():
        assert torch.equal(weights[key], value), key
    assert reference["network_weights"]["templates.templates"].abs().sum() > 0  # the templates did train
    assert final["logging"]["train_losses"] == reference["logging"]["train_losses"]
    ref_state, state = reference["optimizer_state"]["state"], final["optimizer_state"]["state"]
    assert all(torch.equal(ref_state[i]["exp_avg"], state[i]["exp_avg"]) for i in ref_state)


def test_failed_save_keeps_previous_checkpoint(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = _trainer()
    trainer.initialize()
    path = Path(trainer.output_folder) / "checkpoint_latest.pth"
    trainer.save_checkpoint(str(path))
    before = path.read_bytes()

    def killed_mid_write(obj, fh, *args, **kwargs) -> None:
        fh.write(b"half a checkpoint")
        raise OSError("no space left on device")

    with torch.no_grad():
        trainer.model.templates.templates.add_(1.0)
    monkeypatch.setattr(torch, "save", killed_mid_write)
    with pytest.raises(OSError, match="no space"):
        trainer.save_checkpoint(str(path))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temporary file left
    assert torch.load(path, weights_only=True)["network_weights"]["templates.templates"].abs().sum() == 0


def test_incompatible_encoder_fails_before_training(env: Path) -> None:
    """The fine-tuning network of the plans is built and loaded before the first step; a mismatch is one message."""
    from brainmvp_nnunet.errors import NetworkConfigError, PretrainingError
    from brainmvp_nnunet.networks.uniformer import UniFormerEncoder
    from brainmvp_nnunet.pretraining import ModalityTemplates, PretrainConfig
    from brainmvp_nnunet.pretraining.model import PretrainingModel, build_pretraining_encoder

    trainer = _trainer()
    trainer.num_input_channels = 3
    wider = PretrainingModel(UniFormerEncoder(1, [16, 32, 80, 128], [1, 1, 1, 1], 16),
                             ModalityTemplates(("t1",), (4, 4, 4)), PretrainConfig())
    with pytest.raises(PretrainingError, match="(?s)cannot load the pre-training encoder.*patch_embed1"):
        trainer.check_fine_tuning_compatibility(wider)
    with pytest.raises(NetworkConfigError, match="PlainConvUNet"):
        build_pretraining_encoder("dynamic_network_architectures.architectures.unet.PlainConvUNet", {})


def test_incompatible_dataset_block_refused(env: Path) -> None:
    """A dataset.json without the brainmvp block is refused when the trainer is built."""
    from nnunetv2.run.run_training import get_trainer_from_args

    from brainmvp_nnunet.errors import PretrainingError

    dataset_json = Path(os.environ["nnUNet_preprocessed"]) / DATASET_NAME / "dataset.json"
    original = dataset_json.read_text()
    try:
        content = json.loads(original)
        del content["brainmvp"]
        dataset_json.write_text(json.dumps(content))
        with pytest.raises(PretrainingError, match="no 'brainmvp' block"):
            get_trainer_from_args(str(DATASET), "3d_fullres", "all", TRAINER, "BrainMVPPlans", False,
                                  device=torch.device("cpu"))
    finally:
        dataset_json.write_text(original)


@pytest.mark.slow
def test_brainmvp_pretrain_under_torchrun_env_on_cpu(env: Path) -> None:
    """Two ranks started the way torchrun starts them (RANK, WORLD_SIZE, MASTER_ADDR/PORT, LOCAL_RANK) run
    the whole trainer with gloo on CPU; rank 0 writes checkpoints and the artefact."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [str(BIN / "brainmvp"), "pretrain", "-d", str(DATASET), "--trainer", TRAINER, "--device", "cpu"]
    procs = [subprocess.Popen(command, env={**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank),
                                            "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                                            "OMP_NUM_THREADS": "1"},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for rank in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    fold = _fold(env)
    checkpoint = torch.load(fold / "checkpoint_final.pth", weights_only=True)
    assert len(checkpoint["rng_states"]) == 2  # every rank's random state, for an exact resume
    assert checkpoint["logging"]["val_contrastive"][1] > 0
    assert (fold / "brainmvp_pretrained.pt").is_file()
