"""What pre-training leaves behind: the artefact, the templates as NIfTI, pictures of the views.

All files are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import SimpleITK as sitk
import torch

from brainmvp_nnunet.atomic import atomic_write_bytes
from brainmvp_nnunet.pretraining.model import PretrainingModel
from brainmvp_nnunet.transfer.artefact import ARTEFACT_NAME, PretrainedArtefact, save_artefact

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the Agg backend)


def export_artefact(model: PretrainingModel, folder: Path, network_class: str, arch_kwargs: Mapping,
                    normalization: Sequence[str], spacing: Sequence[float], patch_size: Sequence[int],
                    provenance: Mapping) -> Path:
    """Write ``brainmvp_pretrained.pt`` (:class:`PretrainedArtefact`) for ``model`` into ``folder``.

    ``network_class`` and ``arch_kwargs`` describe the fine-tuning network of the same plans, whose
    ``encoder.`` sub-module the exported encoder fits (after the stem adaptation to C channels).
    """
    templates = model.templates
    artefact = PretrainedArtefact(
        network_class=network_class, arch_kwargs=dict(arch_kwargs),
        encoder_state_dict=model.encoder.state_dict(), reconstruction_head_state_dict=model.head.state_dict(),
        templates=templates.templates.detach(), template_slots=list(templates.slots),
        template_spacing=list(templates.spacing), normalization=list(normalization),
        spacing=[float(s) for s in spacing], patch_size=[int(p) for p in patch_size], provenance=dict(provenance))
    return save_artefact(artefact, Path(folder) / ARTEFACT_NAME)


def save_templates_nifti(model: PretrainingModel, folder: Path) -> list[Path]:
    """One ``<slot>.nii.gz`` per template in ``folder``, at the template spacing (identity direction, origin 0).

    The arrays are in nnU-Net's (z, y, x) order, which is SimpleITK's array order.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    templates = model.templates
    for slot, volume in zip(templates.slots, templates.templates.detach().float().cpu().numpy(), strict=True):
        image = sitk.GetImageFromArray(volume)
        image.SetSpacing(tuple(float(s) for s in reversed(templates.spacing)))
        path = folder / f"{slot}.nii.gz"
        # SimpleITK picks the format from the file name, so the temporary file keeps the suffix.
        fd, tmp = tempfile.mkstemp(prefix=f".{slot}.", suffix=".nii.gz", dir=folder)
        os.close(fd)
        try:
            sitk.WriteImage(image, tmp, useCompression=True)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        written.append(path)
    return written


_PANELS = (("target", "input (target modality)"), ("view_a", "view A (template fill)"),
           ("rec_a", "reconstruction A"), ("view_b", "view B"), ("rec_b", "reconstruction B"),
           ("template", "template window"))


def save_views_png(pictures: Mapping[str, torch.Tensor], path: Path, title: str) -> Path:
    """A row of middle axial slices (input, masked views, reconstructions, template) of the first sample."""
    fig, axes = plt.subplots(1, len(_PANELS), figsize=(3 * len(_PANELS), 3.4))
    target = pictures["target"][0, 0].float().cpu().numpy()
    z = target.shape[0] // 2
    lo, hi = np.percentile(target, [1, 99]) if target.size else (0.0, 1.0)
    for ax, (key, label) in zip(axes, _PANELS, strict=True):
        ax.imshow(pictures[key][0, 0, z].float().cpu().numpy(), cmap="gray", vmin=lo, vmax=max(hi, lo + 1e-6))
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)
