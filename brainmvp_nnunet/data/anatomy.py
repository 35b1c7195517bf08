"""Real brain anatomy that ships inside a registry package: the MNI ICBM152 2009a template.

The ``nilearn`` wheel carries the skull-stripped T1 template and its grey- and white-matter
probability maps (197 x 233 x 189 voxels at 1 mm, RAS). They are read straight from the installed
files (no network, and without importing nilearn itself, which is slow to import). CSF is the brain
mask minus grey and white matter.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from brainmvp_nnunet.errors import SynthError

_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


@dataclass(frozen=True)
class Anatomy:
    """Tissue probability maps on one grid (arrays in nibabel x, y, z order, values in [0, 1])."""

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    mask: np.ndarray  # bool brain mask
    depth_mm: np.ndarray  # distance of each brain voxel to the brain surface
    affine: np.ndarray  # voxel -> world (mm, RAS)

    @property
    def brain_centre_mm(self) -> np.ndarray:
        """World coordinates of the centre of the brain mask's bounding box."""
        idx = np.argwhere(self.mask)
        centre_vox = (idx.min(0) + idx.max(0)) / 2.0
        return (self.affine @ np.append(centre_vox, 1.0))[:3]


def template_dir() -> Path:
    """Folder of the MNI templates inside the installed nilearn package."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise SynthError("the nilearn package is not installed; it ships the MNI ICBM152 anatomy (run `make demo` "
                         "or `pip install nilearn`)")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data"


@lru_cache(maxsize=1)
def load_mni152() -> Anatomy:
    """Load the ICBM152 2009a tissue maps; cached because every subject starts from them."""
    folder = template_dir()
    arrays = {}
    affine = None
    for key, name in _FILES.items():
        path = folder / name
        if not path.is_file():
            raise SynthError(f"file {path}: the MNI ICBM152 template is missing from the nilearn installation")
        img = nib.load(str(path))
        arrays[key] = np.asarray(img.dataobj, dtype=np.float32)
        affine = img.affine if affine is None else affine
    mask = ndimage.binary_fill_holes(arrays["t1"] > 0)
    total = arrays["gm"] / 255.0 + arrays["wm"] / 255.0
    scale = np.maximum(total, 1.0)  # the maps overlap slightly at edges; keep fractions summing to <= 1
    gm = np.where(mask, arrays["gm"] / 255.0 / scale, 0.0).astype(np.float32)
    wm = np.where(mask, arrays["wm"] / 255.0 / scale, 0.0).astype(np.float32)
    csf = np.where(mask, np.clip(1.0 - gm - wm, 0.0, 1.0), 0.0).astype(np.float32)
    spacing = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(0))
    depth = ndimage.distance_transform_edt(mask, sampling=spacing).astype(np.float32)
    return Anatomy(gm=gm, wm=wm, csf=csf, mask=mask, depth_mm=depth, affine=np.asarray(affine, dtype=np.float64))
