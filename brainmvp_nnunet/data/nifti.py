"""Byte-reproducible NIfTI writing.

gzip stores a timestamp in its header, so ``nibabel``'s own ``.nii.gz`` writer gives different bytes
on every run; we compress with ``mtime=0`` so that the same seed gives identical files.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np


def nifti_bytes(array: np.ndarray, affine: np.ndarray) -> bytes:
    """Gzipped NIfTI-1 bytes of ``array`` (nibabel x, y, z order) with ``affine`` as qform and sform."""
    img = nib.Nifti1Image(np.asarray(array), np.asarray(affine, dtype=np.float64))
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm")
    return gzip.compress(img.to_bytes(), compresslevel=6, mtime=0)


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> None:
    """Write ``array`` as a gzipped NIfTI file with a reproducible byte stream."""
    Path(path).write_bytes(nifti_bytes(array, affine))
