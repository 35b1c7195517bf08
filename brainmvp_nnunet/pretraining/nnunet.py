"""nnU-Net adapters of pre-training: a data loader that reports patch origins, a logger with extra curves.

Kept apart from the pure functions of this package (which never import nnunetv2).
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
import torch
from acvl_utils.cropping_and_padding.bounding_boxes import crop_and_pad_nd
from batchgenerators.utilities.file_and_folder_operations import load_pickle
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from nnunetv2.training.logging.nnunet_logger import LocalLogger

from brainmvp_nnunet.pretraining.templates import patch_origin_to_template_origin

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the Agg backend)

# The case properties (nnU-Net's <case>.pkl) that map a patch onto the template grid.
GEOMETRY_KEYS = ("bbox_used_for_cropping", "shape_after_cropping_and_before_resampling", "spacing",
                 "shape_before_cropping")


class PatchOriginDataLoader(nnUNetDataLoader):
    """The stock loader, plus per sample the patch origin and the case geometry.

    Adds to every batch ``bbox_lbs`` (B lists: origin of each patch in the preprocessed array, may be
    negative where nnU-Net pads) and ``geometry`` (B dicts: :data:`GEOMETRY_KEYS` from the case
    properties plus ``preprocessed_shape``). Build it with ``patch_size == final_patch_size`` and no
    spatial transforms: a rotated or scaled patch would no longer sit on the template grid.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._picked: list[tuple[list[int], tuple[int, ...]]] = []
        self._geometry: dict[str, dict] = {}

    def get_bbox(self, data_shape: np.ndarray, force_fg: bool, class_locations: dict | None,
                 overwrite_class: int | tuple[int, ...] | None = None, verbose: bool = False):
        """The stock choice; the chosen origin and the array shape are remembered for the batch."""
        bbox_lbs, bbox_ubs = super().get_bbox(data_shape, force_fg, class_locations, overwrite_class, verbose)
        self._picked.append(([int(b) for b in bbox_lbs], tuple(int(s) for s in data_shape)))
        return bbox_lbs, bbox_ubs

    def _case_geometry(self, key: str) -> dict:
        # The properties pickle is tiny; read once per case rather than reloading the case.
        if key not in self._geometry:
            properties = load_pickle(os.path.join(self._data.source_folder, f"{key}.pkl"))
            self._geometry[key] = {k: properties[k] for k in GEOMETRY_KEYS}
        return self._geometry[key]

    def generate_train_batch(self) -> dict:
        """The stock batch plus ``bbox_lbs`` and ``geometry``."""
        self._picked = []
        batch = super().generate_train_batch()
        batch["bbox_lbs"] = [lbs for lbs, _ in self._picked]
        batch["geometry"] = [{**self._case_geometry(k), "preprocessed_shape": shape}
                             for k, (_, shape) in zip(batch["keys"], self._picked, strict=True)]
        return batch


def template_origins(bbox_lbs: Sequence[Sequence[int]], geometry: Sequence[dict], template_shape: Sequence[int],
                     template_spacing: Sequence[float], transpose_forward: Sequence[int]) -> list[tuple[int, int, int]]:
    """Template-grid origin of every patch of a :class:`PatchOriginDataLoader` batch."""
    return [patch_origin_to_template_origin(lbs, g["bbox_used_for_cropping"],
                                            g["shape_after_cropping_and_before_resampling"], g["preprocessed_shape"],
                                            g["spacing"], g["shape_before_cropping"], template_shape, template_spacing,
                                            transpose_forward=transpose_forward)
            for lbs, g in zip(bbox_lbs, geometry, strict=True)]


def centre_patch_batch(dataset: Any, key: str, patch_size: Sequence[int]) -> dict:
    """A one-sample batch shaped like :class:`PatchOriginDataLoader`'s, with the patch at the centre of ``key``.

    Deterministic (no random draw), for the pictures of a fixed case.
    """
    data, _, _, properties = dataset.load_case(key)
    shape = tuple(int(s) for s in data.shape[1:])
    lbs = [(s - p) // 2 for s, p in zip(shape, patch_size, strict=True)]
    bbox = [[lo, lo + p] for lo, p in zip(lbs, patch_size, strict=True)]
    patch = torch.from_numpy(np.asarray(crop_and_pad_nd(data, bbox, 0), dtype=np.float32))
    return {"data": patch[None], "keys": [key], "bbox_lbs": [lbs],
            "geometry": [{**{k: properties[k] for k in GEOMETRY_KEYS}, "preprocessed_shape": shape}]}


def capture_rng_state() -> dict:
    """The global random states (python, numpy, torch CPU and CUDA) as tensors, numbers and tuples only,
    so that a checkpoint holding them still loads with ``weights_only=True``."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": random.getstate(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}


def restore_rng_state(state: dict) -> None:
    """Inverse of :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))


# Extra per-epoch curves: (key, label) for the additional panel of progress.png.
EXTRA_CURVES: tuple[tuple[str, str], ...] = (
    ("train_template_rec", "template view rec. (train)"), ("val_template_rec", "template view rec. (val)"),
    ("val_cross_modal_rec", "cross-modal view rec. (val)"), ("val_template_only", "template alone (val)"),
    ("val_contrastive", "InfoNCE (val)"),
)


class PretrainLocalLogger(LocalLogger):
    """nnU-Net's local logger with the pre-training losses as extra per-epoch keys and a 4th plot panel.

    The stock keys are still logged every epoch (nnU-Net's checkpointing and plotting read them).
    """

    def __init__(self, verbose: bool = False) -> None:
        super().__init__(verbose)
        self.my_fantastic_logging.update({key: [] for key, _ in EXTRA_CURVES})

    def plot_progress_png(self, output_folder: str) -> None:
        """The stock three panels, with a panel of the reconstruction and contrastive losses appended below."""
        super().plot_progress_png(output_folder)
        path = os.path.join(output_folder, "progress.png")
        stock = plt.imread(path)
        epochs = min(len(v) for v in self.my_fantastic_logging.values())
        dpi = 100
        fig, ax = plt.subplots(figsize=(stock.shape[1] / dpi, 18), dpi=dpi)
        for key, label in EXTRA_CURVES:
            ax.plot(range(epochs), self.my_fantastic_logging[key][:epochs], label=label, linewidth=4)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend(loc=(0, 1), ncol=3)
        fig.tight_layout()
        fig.canvas.draw()
        panel = np.asarray(fig.canvas.buffer_rgba(), dtype=np.float32) / 255.0
        plt.close(fig)
        # Stack below the stock figure (both RGBA floats, same width in pixels).
        plt.imsave(path, np.concatenate([stock[..., :4], panel[:, :stock.shape[1]]], axis=0))
