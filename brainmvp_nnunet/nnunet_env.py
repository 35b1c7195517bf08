"""nnU-Net's environment: data roots and the directory that makes our trainers discoverable.

nnU-Net 2.8 reads ``nnUNet_raw``, ``nnUNet_preprocessed`` and ``nnUNet_results`` when a path is
first used, and looks up external trainers in the folders listed in ``nnUNet_extTrainer``. Our
``nnunet_ext`` folder holds only re-exports, so the classes keep an importable module and pickle.
"""

from __future__ import annotations

import os
from pathlib import Path

from brainmvp_nnunet.errors import NnUNetEnvError

PATH_VARIABLES = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
EXT_TRAINER_VARIABLE = "nnUNet_extTrainer"


def ext_trainer_dir() -> Path:
    """Folder to list in ``nnUNet_extTrainer`` (contains re-export modules only)."""
    return Path(__file__).resolve().parent / "nnunet_ext"


def missing_path_variables(environ: dict[str, str] | None = None) -> list[str]:
    """Names of the nnU-Net path variables that are unset or empty."""
    environ = os.environ if environ is None else environ
    return [name for name in PATH_VARIABLES if not environ.get(name)]


def setup_instructions(missing: list[str]) -> str:
    """How to set the missing nnU-Net variables, as shell lines."""
    lines = [f"nnU-Net paths are not set: {', '.join(missing)}. Set them, for example:"]
    lines += [f"  export {name}=/path/to/{name}" for name in PATH_VARIABLES]
    lines.append("then run `brainmvp env` again to check (and print the nnUNet_extTrainer line).")
    return "\n".join(lines)


def require_nnunet_paths(environ: dict[str, str] | None = None) -> dict[str, Path]:
    """Return the three nnU-Net data roots, or raise :class:`NnUNetEnvError` saying how to set them."""
    environ = os.environ if environ is None else environ
    missing = missing_path_variables(environ)
    if missing:
        raise NnUNetEnvError(setup_instructions(missing))
    return {name: Path(environ[name]) for name in PATH_VARIABLES}


def ext_trainer_value(environ: dict[str, str] | None = None) -> str:
    """``nnUNet_extTrainer`` with our folder first and any folders the user already listed kept."""
    environ = os.environ if environ is None else environ
    ours = str(ext_trainer_dir())
    existing = [p for p in environ.get(EXT_TRAINER_VARIABLE, "").split(os.pathsep) if p and p != ours]
    return os.pathsep.join([ours, *existing])


def activate_ext_trainers() -> None:
    """Make nnU-Net (and processes it spawns) find our trainers; call before nnU-Net looks one up."""
    os.environ[EXT_TRAINER_VARIABLE] = ext_trainer_value()


def use_nnunet_roots(root: Path) -> dict[str, Path]:
    """Point the three nnU-Net variables at sub-folders of ``root`` (the demo and tests use this)."""
    roots = {name: Path(root) / name for name in PATH_VARIABLES}
    for name, path in roots.items():
        path.mkdir(parents=True, exist_ok=True)
        os.environ[name] = str(path)
    return roots
