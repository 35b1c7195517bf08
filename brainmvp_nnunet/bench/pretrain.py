"""Seconds per pre-training step and peak memory, next to the published implementation's figures.

One step is the trainer's work for one batch: per-sample modality choice, two block masks per sample,
template windows, the encoder on both views of every case (2B volumes), reconstruction, the three
losses (InfoNCE on, as late in training), backward, gradient clipping and AdamW on all parameters
including the dense template tensor. Inputs are random (time and memory do not depend on them).

Measured in a fresh subprocess (``python -m brainmvp_nnunet.bench.pretrain --worker REQUEST``) with
the helpers of :mod:`.network`: after one small priming step, memory is the peak resident set above
the state before the first full-size step (model, optimiser and inputs allocated), plus the total peak.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from brainmvp_nnunet.bench.network import run_worker, timed_steps, worker_main
from brainmvp_nnunet.networks.base import check_divisible
from brainmvp_nnunet.networks.uniformer import UNIFORMER_S_DEPTHS, UNIFORMER_S_WIDTHS
from brainmvp_nnunet.pretraining.losses import PretrainConfig

# Architecture doc section 10: the published code on the same 2-core CPU, UniFormer-S, 96^3, 8 templates.
PUBLISHED = {1: (34.6, 8.6), 2: (82.6, 15.2)}  # cases per step -> (seconds, peak GiB)
TARGET_TIME, TARGET_MEMORY = 0.67, 0.6


@dataclass(frozen=True)
class PretrainMeasurement:
    """One configuration: parameters (network + templates), median step seconds, peak memory (MiB)."""

    name: str
    head: str
    activation_checkpointing: bool
    parameters: int
    template_values: int
    seconds: float
    step_seconds: tuple[float, ...]
    peak_mib: float
    total_peak_mib: float
    device: str


def measure_pretrain_step(patch: Sequence[int], batch: int = 2, slots: int = 8,
                          widths: Sequence[int] = UNIFORMER_S_WIDTHS, depths: Sequence[int] = UNIFORMER_S_DEPTHS,
                          head_dim: int = 64, template_spacing: float = 1.0, release: bool = False, repeats: int = 2,
                          warmup: int = 1, device: str = "cpu", threads: int | None = None,
                          reconstruction_head: str | None = None,
                          activation_checkpointing: bool = True) -> PretrainMeasurement:
    """Measure one pre-training step in a fresh subprocess (see the module docstring).

    ``reconstruction_head`` None: the head of the chosen settings (``release``: linear, else skip).
    ``activation_checkpointing``: as the trainer does by default (MLPs recomputed in backward).
    """
    check_divisible(patch, (16, 16, 16), "UniFormer patch")
    config = _config(release, reconstruction_head)
    default = list(widths) == list(UNIFORMER_S_WIDTHS) and list(depths) == list(UNIFORMER_S_DEPTHS) and head_dim == 64
    name = "UniFormer-S" if default else f"UniFormer {'/'.join(map(str, widths))}"
    request = {"name": name, "patch": [int(p) for p in patch], "batch": batch, "slots": slots,
               "widths": list(widths), "depths": list(depths), "head_dim": head_dim,
               "template_spacing": template_spacing, "release": release, "repeats": repeats, "warmup": warmup,
               "device": device, "threads": threads, "reconstruction_head": config.reconstruction_head,
               "activation_checkpointing": activation_checkpointing}
    result = run_worker("brainmvp_nnunet.bench.pretrain", request, f"the pre-training step of {name}")
    return PretrainMeasurement(**{**result, "step_seconds": tuple(result["step_seconds"])})


def _config(release: bool, reconstruction_head: str | None) -> PretrainConfig:
    config = PretrainConfig.release_code() if release else PretrainConfig.paper()
    if reconstruction_head is None:
        return config
    return dataclasses.replace(config, reconstruction_head=reconstruction_head)


def format_report(m: PretrainMeasurement, patch: Sequence[int], batch: int, slots: int) -> str:
    """Our figures, and the published ones with the targets where the published code was measured."""
    lines = [f"pre-training step (choice, masks, templates, 2 views x {batch} case(s), 3 losses, backward, AdamW), "
             f"patch {'x'.join(map(str, patch))}, {slots} templates, device {m.device} "
             f"(median of {len(m.step_seconds)} step(s)), MLP recomputation "
             f"{'on' if m.activation_checkpointing else 'off'}",
             f"{'implementation':<34} {'params':>12} {'s/step':>9} {'peak MiB':>10} {'total MiB':>10}",
             f"{f'ours, {m.name}, {m.head} head':<34} {m.parameters:>12,} {m.seconds:>9.2f} "
             f"{m.peak_mib:>10.0f} {m.total_peak_mib:>10.0f}"]
    if m.name == "UniFormer-S" and list(patch) == [96, 96, 96] and slots == 8 and batch in PUBLISHED:
        seconds, gib = PUBLISHED[batch]
        lines.append(f"{'published, linear head':<34} {'':>12} {seconds:>9.2f} {gib * 1024:>10.0f} {'':>10}")
        lines.append(f"ratio ours / published: time {m.seconds / seconds:.2f}x (target <= {TARGET_TIME}x), "
                     f"peak memory {m.peak_mib / (gib * 1024):.2f}x (target <= {TARGET_MEMORY}x)")
    else:
        lines.append("no published figure for this configuration (published: UniFormer-S, 96^3, 8 templates, "
                     "1 or 2 cases on a 2-core CPU)")
    lines.append("peak MiB: peak resident memory above the state before the first step (model, optimiser, inputs "
                 "allocated); total MiB: the process's peak")
    return "\n".join(lines)


def _measure_here(request: dict[str, Any]) -> dict[str, Any]:
    """Worker side of :func:`measure_pretrain_step`."""
    import torch

    from brainmvp_nnunet.data.modalities import SLOTS
    from brainmvp_nnunet.networks.uniformer import UniFormerEncoder
    from brainmvp_nnunet.pretraining import (
        ModalityTemplates,
        apply_modality_choices,
        draw_block_masks,
        draw_modality_choices,
    )
    from brainmvp_nnunet.pretraining.model import PretrainingModel, template_grid_shape

    if request["threads"]:
        torch.set_num_threads(int(request["threads"]))
    device = torch.device(request["device"])
    slots, batch = request["slots"], request["batch"]
    spacing = (float(request["template_spacing"]),) * 3
    config = _config(request["release"], request["reconstruction_head"])
    torch.manual_seed(0)
    model = PretrainingModel(UniFormerEncoder(1, request["widths"], request["depths"], request["head_dim"]),
                             ModalityTemplates(SLOTS[:slots], template_grid_shape(spacing), spacing), config,
                             activation_checkpointing=request["activation_checkpointing"]).to(device)
    others = [p for n, p in model.named_parameters() if not n.startswith("templates.")]
    optimizer = torch.optim.AdamW([{"params": others}, {"params": [model.templates.templates], "weight_decay": 0.0}],
                                  lr=3e-4, weight_decay=1e-5)
    grid = model.templates.shape

    def step(patch: Sequence[int], cases: int) -> float:
        data = torch.randn(cases, slots, *patch)
        start = time.perf_counter()
        selected = apply_modality_choices(data, draw_modality_choices([range(slots)] * cases), range(slots))
        origins = [tuple((g - p) // 2 for g, p in zip(grid, patch, strict=True))] * cases
        masks = [draw_block_masks(cases, patch, config.block_size, config.mask_ratio, device=device) for _ in range(2)]
        losses = model(selected.target.to(device), selected.partner.to(device), selected.has_partner.to(device),
                       selected.target_slots.tolist(), origins, masks[0], masks[1], epoch=2, num_epochs=3)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 12.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    step((16, 16, 16), 1)  # lazily loaded kernels and libraries are not the step's memory
    times, peak, baseline = timed_steps(lambda: step(request["patch"], batch), request["warmup"],
                                        request["repeats"], device)
    return {"name": request["name"], "head": config.reconstruction_head,
            "activation_checkpointing": request["activation_checkpointing"],
            "parameters": sum(p.numel() for p in model.parameters()),
            "template_values": model.templates.templates.numel(), "seconds": statistics.median(times),
            "step_seconds": times, "peak_mib": (peak - baseline) / 2**20, "total_peak_mib": peak / 2**20,
            "device": str(device)}


if __name__ == "__main__":
    worker_main(_measure_here)
