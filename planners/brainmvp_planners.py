"""Planners that fix what must match between pre-training and fine-tuning.

nnU-Net plans a new architecture per dataset (median spacing -> patch -> number of stages), so a
checkpoint from one dataset rarely fits another. These planners still read nnU-Net's fingerprint
(normalisation, resampling, the memory-driven batch size) but fix the target spacing (default
1 mm isotropic), the patch (every axis divisible by the network's total stride), the topology and
the network kwargs, and never transpose axes. Only ``3d_fullres`` is written. Patch or width
variants are tiny named subclasses.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
from batchgenerators.utilities.file_and_folder_operations import isfile
from dynamic_network_architectures.architectures.unet import ResidualEncoderUNet
from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props
from nnunetv2.paths import nnUNet_preprocessed
from nnunetv2.preprocessing.resampling.default_resampling import compute_new_shape

from brainmvp_nnunet.errors import PlanningError
from brainmvp_nnunet.networks.segmentation import UniFormerSegNet, uniformer_arch_kwargs

CONFIGURATION = "3d_fullres"


class FixedTopologyPlanner(ExperimentPlanner):
    """Base: fixed spacing, patch and architecture; batch size from nnU-Net's memory estimate."""

    patch_size: tuple[int, int, int] = (96, 96, 96)
    target_spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    default_plans_name = "BrainMVPPlans"

    def __init__(self, dataset_name_or_id: str | int, gpu_memory_target_in_gb: float = 8,
                 preprocessor_name: str = "DefaultPreprocessor", plans_name: str | None = None,
                 overwrite_target_spacing: list[float] | None = None, suppress_transpose: bool = False):
        # nnU-Net passes plans_name only when -overwrite_plans_name is given; the transpose is always off
        # because the encoder's weights are tied to the axis order they were trained in.
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name,
                         plans_name or self.default_plans_name, overwrite_target_spacing, suppress_transpose=True)

    def architecture(self) -> dict:
        """``{'network_class_name', 'arch_kwargs', '_kw_requires_import'}`` of the fixed network."""
        raise NotImplementedError

    def total_stride(self) -> tuple[int, int, int]:
        """Per-axis product of the architecture's strides (the patch must be divisible by it)."""
        strides = np.array(self.architecture()["arch_kwargs"]["strides"])
        return tuple(int(s) for s in np.prod(strides, axis=0))

    def determine_fullres_target_spacing(self) -> np.ndarray:
        """The fixed target spacing (``-overwrite_target_spacing`` still wins)."""
        spacing = self.overwrite_target_spacing if self.overwrite_target_spacing is not None else self.target_spacing
        return np.array(spacing, dtype=float)

    def determine_transpose(self) -> tuple[list[int], list[int]]:
        """Never transpose: pre-trained weights must see the same axis order in every dataset."""
        return [0, 1, 2], [0, 1, 2]

    def _check_patch(self) -> None:
        stride = self.total_stride()
        bad = [f"{p} (axis {i}, stride {s})" for i, (p, s) in enumerate(zip(self.patch_size, stride, strict=True))
               if p % s]
        if bad:
            raise PlanningError(f"{type(self).__name__}: patch {list(self.patch_size)} is not divisible by the "
                                f"network's total stride {list(stride)}: {', '.join(bad)}")

    def get_plans_for_configuration(self, spacing, median_shape, data_identifier: str,
                                    approximate_n_voxels_dataset: float, _cache: dict) -> dict:
        """The 3d_fullres configuration with the fixed patch and architecture."""
        self._check_patch()
        architecture = self.architecture()
        num_input_channels = len(self.dataset_json["channel_names"])
        estimate = self.static_estimate_VRAM_usage(
            self.patch_size, num_input_channels, len(self.dataset_json["labels"]),
            architecture["network_class_name"], architecture["arch_kwargs"], architecture["_kw_requires_import"])
        reference = self.UNet_reference_val_3d * (self.UNet_vram_target_GB / self.UNet_reference_val_corresp_GB)
        batch_size = round(reference / estimate * self.UNet_reference_val_corresp_bs_3d)
        # Same overfitting guard as nnU-Net: one batch covers at most 5 % of the dataset's voxels.
        cap = round(approximate_n_voxels_dataset * self.max_dataset_covered / np.prod(self.patch_size, dtype=float))
        batch_size = max(min(batch_size, cap), self.UNet_min_batch_size)

        resampling_data, data_kwargs, resampling_seg, seg_kwargs = self.determine_resampling()
        resampling_probabilities, probabilities_kwargs = self.determine_segmentation_softmax_export_fn()
        normalization_schemes, use_mask = self.determine_normalization_scheme_and_whether_mask_is_used_for_norm()
        return {
            "data_identifier": data_identifier,
            "preprocessor_name": self.preprocessor_name,
            "batch_size": int(batch_size),
            "patch_size": [int(p) for p in self.patch_size],
            "median_image_size_in_voxels": [float(m) for m in median_shape],
            "spacing": [float(s) for s in spacing],
            "normalization_schemes": normalization_schemes,
            "use_mask_for_norm": use_mask,
            "resampling_fn_data": resampling_data.__name__,
            "resampling_fn_seg": resampling_seg.__name__,
            "resampling_fn_data_kwargs": data_kwargs,
            "resampling_fn_seg_kwargs": seg_kwargs,
            "resampling_fn_probabilities": resampling_probabilities.__name__,
            "resampling_fn_probabilities_kwargs": probabilities_kwargs,
            "architecture": architecture,
            "batch_dice": False,
        }

    def plan_experiment(self) -> dict:
        """Write a plans file with only ``3d_fullres`` (replacing, not merging, an older file of the same name)."""
        spacing = self.determine_fullres_target_spacing()
        new_shapes = [compute_new_shape(shape, sp, spacing) for sp, shape in
                      zip(self.dataset_fingerprint["spacings"], self.dataset_fingerprint["shapes_after_crop"],
                          strict=True)]
        median_shape = np.median(new_shapes, 0)
        n_voxels = float(np.prod(median_shape, dtype=np.float64) * self.dataset_json["numTraining"])
        configuration = self.get_plans_for_configuration(spacing, median_shape,
                                                         self.generate_data_identifier(CONFIGURATION), n_voxels, {})
        shutil.copy(os.path.join(self.raw_dataset_folder, "dataset.json"),
                    os.path.join(nnUNet_preprocessed, self.dataset_name, "dataset.json"))
        plans = {
            "dataset_name": self.dataset_name,
            "plans_name": self.plans_identifier,
            "original_median_spacing_after_transp": [float(i) for i in
                                                     np.median(self.dataset_fingerprint["spacings"], 0)],
            "original_median_shape_after_transp": [int(round(i)) for i in
                                                   np.median(self.dataset_fingerprint["shapes_after_crop"], 0)],
            "image_reader_writer": self.determine_reader_writer().__name__,
            "transpose_forward": [0, 1, 2],
            "transpose_backward": [0, 1, 2],
            "configurations": {CONFIGURATION: configuration},
            "experiment_planner_used": type(self).__name__,
            "label_manager": "LabelManager",
            "foreground_intensity_properties_per_channel":
                self.dataset_fingerprint["foreground_intensity_properties_per_channel"],
        }
        plans_file = os.path.join(nnUNet_preprocessed, self.dataset_name, self.plans_identifier + ".json")
        if isfile(plans_file):  # nnU-Net's save_plans would merge the old configurations back in
            os.remove(plans_file)
        self.plans = plans
        self.save_plans(plans)
        return plans


class BrainMVPPlanner(FixedTopologyPlanner):
    """UniFormer-S segmentation network, 96^3 patch at 1 mm: the BrainMVP backbone."""

    uniformer_widths: tuple[int, int, int, int] = (64, 128, 320, 512)
    uniformer_depths: tuple[int, int, int, int] = (3, 4, 8, 3)
    uniformer_head_dim: int = 64

    def architecture(self) -> dict:
        """UniFormer encoder + UNETR-style decoder with deep supervision."""
        return {"network_class_name": f"{UniFormerSegNet.__module__}.{UniFormerSegNet.__name__}",
                "arch_kwargs": uniformer_arch_kwargs(widths=self.uniformer_widths, depths=self.uniformer_depths,
                                                     head_dim=self.uniformer_head_dim),
                "_kw_requires_import": []}


class BrainMVPPlanner_128(BrainMVPPlanner):
    """UniFormer-S at a 128^3 patch (large GPUs)."""

    patch_size = (128, 128, 128)


class BrainMVPPlanner_Tiny32(BrainMVPPlanner):
    """A tiny UniFormer (widths / 8, depth 1 per stage), 32^3 at 3 mm: for tests and CPU demos.

    At 3 mm a 32^3 patch covers most of a brain, so the tiny network still sees anatomy.
    """

    patch_size = (32, 32, 32)
    target_spacing = (3.0, 3.0, 3.0)
    uniformer_widths = (8, 16, 40, 64)
    uniformer_depths = (1, 1, 1, 1)
    uniformer_head_dim = 8


class BrainMVPResEncPlanner(FixedTopologyPlanner):
    """nnU-Net's residual-encoder UNet (ResEnc-M widths and depths) with a fixed 96^3 topology at 1 mm."""

    default_plans_name = "BrainMVPResEncPlans"
    base_features = 32
    max_features = 320
    blocks_per_stage = (1, 3, 4, 6, 6, 6, 6)

    def architecture(self) -> dict:
        """ResidualEncoderUNet kwargs from nnU-Net's topology rule applied to the fixed spacing and patch."""
        _, strides, kernels, patch, _ = get_pool_and_conv_props(list(self.determine_fullres_target_spacing()),
                                                               list(self.patch_size), 4, 999999)
        if [int(p) for p in patch] != list(self.patch_size):
            raise PlanningError(f"{type(self).__name__}: patch {list(self.patch_size)} does not fit nnU-Net's "
                                f"topology at spacing {list(self.determine_fullres_target_spacing())} "
                                f"(it would become {[int(p) for p in patch]})")
        n_stages = len(strides)
        return {
            "network_class_name": f"{ResidualEncoderUNet.__module__}.{ResidualEncoderUNet.__name__}",
            "arch_kwargs": {
                "n_stages": n_stages,
                "features_per_stage": [min(self.max_features, self.base_features * 2**i) for i in range(n_stages)],
                "conv_op": "torch.nn.modules.conv.Conv3d",
                "kernel_sizes": [[int(k) for k in ks] for ks in kernels],
                "strides": [[int(s) for s in st] for st in strides],
                "n_blocks_per_stage": list(self.blocks_per_stage[:n_stages]),
                "n_conv_per_stage_decoder": [1] * (n_stages - 1),
                "conv_bias": True,
                "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                "norm_op_kwargs": {"eps": 1e-5, "affine": True},
                "dropout_op": None,
                "dropout_op_kwargs": None,
                "nonlin": "torch.nn.LeakyReLU",
                "nonlin_kwargs": {"inplace": True},
            },
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
        }


class BrainMVPResEncPlanner_Tiny32(BrainMVPResEncPlanner):
    """A tiny residual-encoder UNet (8 base features), 32^3 at 3 mm: for tests and CPU demos."""

    patch_size = (32, 32, 32)
    target_spacing = (3.0, 3.0, 3.0)
    base_features = 8
    max_features = 64
    blocks_per_stage = (1, 1, 1, 1, 1, 1)

