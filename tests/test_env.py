"""`brainmvp env` and the nnU-Net environment helpers."""

from __future__ import annotations

import os

import pytest

from brainmvp_nnunet.cli import main
from brainmvp_nnunet.nnunet_env import (
    EXT_TRAINER_VARIABLE,
    PATH_VARIABLES,
    ext_trainer_dir,
    ext_trainer_value,
    missing_path_variables,
)


@pytest.mark.parametrize("unset", [PATH_VARIABLES, ("nnUNet_raw",), ("nnUNet_results",)])
def test_env_refuses_when_paths_unset(monkeypatch, capsys, unset):
    for name in unset:
        monkeypatch.delenv(name, raising=False)
    assert main(["env"]) == 2
    err = capsys.readouterr().err
    for name in unset:
        assert name in err.splitlines()[0]
    assert "export nnUNet_raw=" in err


def test_env_prints_paths_and_export_line(nnunet_roots, capsys):
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    for name, path in nnunet_roots.items():
        assert f"{name}={path}" in out
    assert f"export {EXT_TRAINER_VARIABLE}={ext_trainer_dir()}" in out


def test_env_export_mode_is_shell(nnunet_roots, capsys):
    assert main(["env", "--export"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert all(line.startswith("export ") for line in lines) and len(lines) == 4


def test_ext_trainer_value_keeps_user_folders(monkeypatch):
    monkeypatch.setenv(EXT_TRAINER_VARIABLE, os.pathsep.join(["/opt/mine", str(ext_trainer_dir())]))
    assert ext_trainer_value().split(os.pathsep) == [str(ext_trainer_dir()), "/opt/mine"]


def test_missing_path_variables_treats_empty_as_unset():
    assert missing_path_variables({"nnUNet_raw": "", "nnUNet_preprocessed": "/p", "nnUNet_results": "/r"}) == [
        "nnUNet_raw"]


def test_ext_dir_holds_only_reexports():
    """nnU-Net drops modules imported from the ext dir; classes must come from the installed package."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    os.environ[EXT_TRAINER_VARIABLE] = ext_trainer_value()
    cls = recursive_find_trainer_class_by_name("nnUNetTrainerBrainMVPTiny")
    assert cls.__module__ == "brainmvp_nnunet.trainers.short"
