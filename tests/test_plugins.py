"""install-plugins / uninstall-plugins on a copy of the installed nnunetv2, and doctor."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from brainmvp_nnunet.cli import main
from brainmvp_nnunet.plugins import SHIM_PACKAGE, install_plugins, nnunet_package_dir, shim_sources, uninstall_plugins


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture()
def nnunet_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "nnunetv2"
    shutil.copytree(nnunet_package_dir(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_install_is_idempotent_and_uninstall_restores(nnunet_copy):
    before = _tree_digest(nnunet_copy)
    written = install_plugins(nnunet_copy)
    assert {str(p.relative_to(nnunet_copy)) for p in written} == set(shim_sources())
    after_first = _tree_digest(nnunet_copy)
    assert install_plugins(nnunet_copy) == []
    assert _tree_digest(nnunet_copy) == after_first
    removed = uninstall_plugins(nnunet_copy)
    assert len(removed) == 2 and all(p.name == SHIM_PACKAGE for p in removed)
    assert _tree_digest(nnunet_copy) == before
    assert not list(nnunet_copy.rglob(f"*{SHIM_PACKAGE}*"))


def test_shims_reexport_only_our_classes_and_are_guarded():
    for rel, text in shim_sources().items():
        if rel.endswith("__init__.py"):
            continue
        assert "except ImportError" in text and "import *" not in text
        assert "nnUNetTrainer,\n" not in text and "ExperimentPlanner,\n" not in text
        assert "BrainMVP" in text


def test_shim_survives_missing_package(tmp_path):
    """A shim whose package is gone imports cleanly (nnU-Net's own lookups must keep working)."""
    module = next(text for rel, text in shim_sources().items() if rel.endswith("planners.py"))
    path = tmp_path / "shim_under_test.py"
    path.write_text(module.replace("brainmvp_nnunet.planners", "brainmvp_nnunet_not_installed"))
    namespace: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)  # noqa: S102 - our own generated file


def test_doctor_reports_missing_setup(monkeypatch, capsys):
    for name in ("nnUNet_raw", "nnUNet_extTrainer"):
        monkeypatch.delenv(name, raising=False)
    code = main(["doctor"])
    out = capsys.readouterr().out
    assert "[ok] nnunetv2: 2.8.1" in out
    assert "[!!] nnUNet_raw: unset" in out
    assert code == 1
