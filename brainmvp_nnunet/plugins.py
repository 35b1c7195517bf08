"""Guarded re-export shims inside the installed nnunetv2, so stock ``-pl`` / ``-tr`` find our classes.

nnU-Net 2.8.1 looks planners up only inside its own package tree. ``install_plugins`` writes a
``zz_brainmvp_nnunet`` sub-package into ``experiment_planning/`` and ``training/nnUNetTrainer/``:

* re-exports only, with our class names listed one by one (a re-exported ``ExperimentPlanner``
  or ``nnUNetTrainer`` would be returned for nnU-Net's default lookups);
* the import is guarded, so an uninstalled or broken brainmvp-nnunet never breaks nnU-Net's own
  lookups (which import every module of the searched tree);
* the ``zz_`` sub-package sorts last: nnU-Net imports plain modules before sub-packages and visits
  sub-packages in sorted order, so stock lookups find their classes before reaching it.

The files are not in any pip RECORD: ``uninstall_plugins`` removes them (and only them).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from brainmvp_nnunet import __version__
from brainmvp_nnunet.nnunet_env import EXT_TRAINER_VARIABLE, PATH_VARIABLES, ext_trainer_dir

SHIM_PACKAGE = "zz_brainmvp_nnunet"
# (folder inside nnunetv2, module written there, our package whose __all__ it re-exports)
SHIM_TARGETS = (
    ("experiment_planning", "planners.py", "brainmvp_nnunet.planners"),
    ("training/nnUNetTrainer", "trainers.py", "brainmvp_nnunet.trainers"),
)


def nnunet_package_dir() -> Path:
    """Folder of the installed nnunetv2 package."""
    import nnunetv2

    return Path(nnunetv2.__path__[0])


def _exported_names(package: str) -> list[str]:
    """Our classes to re-export: the package's ``__all__`` minus nnU-Net's own bases."""
    module = importlib.import_module(package)
    return [name for name in module.__all__ if isinstance(getattr(module, name), type)
            and getattr(module, name).__module__.startswith("brainmvp_nnunet")]


def shim_sources() -> dict[str, str]:
    """Relative path inside nnunetv2 -> file content, for every shim file."""
    sources = {}
    header = (f"# Written by `brainmvp install-plugins` (brainmvp-nnunet {__version__}); "
              "remove with `brainmvp uninstall-plugins`.\n")
    for folder, module, package in SHIM_TARGETS:
        names = _exported_names(package)
        body = "".join(f"        {name},\n" for name in names)
        sources[f"{folder}/{SHIM_PACKAGE}/__init__.py"] = header
        sources[f"{folder}/{SHIM_PACKAGE}/{module}"] = (
            f"{header}# Re-exports only, guarded: without brainmvp-nnunet, nnU-Net's lookups must keep working.\n"
            f"try:\n    from {package} import (  # noqa: F401\n{body}    )\n"
            "except ImportError:\n    pass\n")
    return sources


def install_plugins(nnunet_dir: Path | None = None) -> list[Path]:
    """Write (or refresh) the shims; idempotent. Returns the files that were (re)written."""
    root = Path(nnunet_dir) if nnunet_dir is not None else nnunet_package_dir()
    written = []
    for rel, content in shim_sources().items():
        path = root / rel
        if path.is_file() and path.read_text() == content:
            continue
        path.parent.mkdir(exist_ok=True)
        path.write_text(content)
        written.append(path)
    return written


def uninstall_plugins(nnunet_dir: Path | None = None) -> list[Path]:
    """Remove the shim sub-packages (with their bytecode caches). Returns the folders removed."""
    root = Path(nnunet_dir) if nnunet_dir is not None else nnunet_package_dir()
    removed = []
    for folder, _, _ in SHIM_TARGETS:
        path = root / folder / SHIM_PACKAGE
        if path.exists():
            shutil.rmtree(path)
            removed.append(path)
    return removed


@dataclass(frozen=True)
class Check:
    """One line of the ``doctor`` report."""

    ok: bool
    what: str
    detail: str

    def __str__(self) -> str:
        return f"[{'ok' if self.ok else '!!'}] {self.what}: {self.detail}"


def doctor() -> list[Check]:
    """What nnU-Net will find, and what is missing, as a list of checks."""
    import nnunetv2
    import torch
    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    root = nnunet_package_dir()
    version = getattr(nnunetv2, "__version__", None) or importlib.metadata.version("nnunetv2")
    checks = [Check(True, "nnunetv2", f"{version} at {root}"),
              Check(True, "torch", f"{torch.__version__}, CUDA "
                                   f"{'available' if torch.cuda.is_available() else 'not available'}")]
    for name in PATH_VARIABLES:
        value = os.environ.get(name)
        checks.append(Check(bool(value), name, value or "unset (see `brainmvp env`)"))
    ext = os.environ.get(EXT_TRAINER_VARIABLE, "")
    checks.append(Check(str(ext_trainer_dir()) in ext.split(os.pathsep), EXT_TRAINER_VARIABLE,
                        ext or f"unset: stock nnUNetv2_train finds our trainers only through the plugin shim "
                              f"or after `export {EXT_TRAINER_VARIABLE}={ext_trainer_dir()}`"))
    expected = shim_sources()
    stale = [rel for rel, content in expected.items()
             if not (root / rel).is_file() or (root / rel).read_text() != content]
    checks.append(Check(not stale, "plugin shims",
                        "installed and current" if not stale else
                        f"missing or outdated ({len(stale)} file(s)): run `brainmvp install-plugins`"))
    for name in _exported_names("brainmvp_nnunet.planners"):
        found = recursive_find_python_class(str(root / "experiment_planning"), name,
                                            current_module="nnunetv2.experiment_planning")
        checks.append(Check(found is not None, f"stock planner lookup {name}", "found" if found else "not found"))
    for name in _exported_names("brainmvp_nnunet.trainers"):
        try:
            found = recursive_find_trainer_class_by_name(name)
        except RuntimeError:
            found = None
        checks.append(Check(found is not None, f"stock trainer lookup {name}", "found" if found else "not found"))
    return checks
