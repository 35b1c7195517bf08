"""Test set-up: nnU-Net runs on CPU in temporary folders, with one process and no compilation.

The variables must be set before nnunetv2 is imported (``nnUNet_def_n_proc`` is read at import).
``nnUNet_n_proc_DA=0`` is set only around training calls (it breaks planning).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

_SESSION_ROOT = Path(tempfile.mkdtemp(prefix="brainmvp-tests-"))
atexit.register(shutil.rmtree, _SESSION_ROOT, ignore_errors=True)
os.environ.setdefault("nnUNet_def_n_proc", "1")
os.environ["nnUNet_compile"] = "f"
os.environ.setdefault("OMP_NUM_THREADS", "2")
for _name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
    os.environ[_name] = str(_SESSION_ROOT / _name)
    (_SESSION_ROOT / _name).mkdir(parents=True, exist_ok=True)


@pytest.fixture()
def nnunet_roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Fresh nnU-Net raw / preprocessed / results folders for one test."""
    roots = {}
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        roots[name] = tmp_path / name
        roots[name].mkdir()
        monkeypatch.setenv(name, str(roots[name]))
    return roots


@pytest.fixture(scope="session")
def synth_brats2023(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small BraTS 2023 GLI release (6 cases at 4 mm), shared by the tests that only read it."""
    from brainmvp_nnunet.data.releases import write_synthetic_release

    out = tmp_path_factory.mktemp("synth") / "brats2023-gli"
    return write_synthetic_release(out, "brats2023-gli", 6, seed=7, spacing=4.0, progress=False)
