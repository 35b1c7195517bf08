"""DDP of the pre-training network on CPU (gloo), at the step level.

Two processes, each holding half of a fixed global batch, run the trainer's network wrapped as the
trainer wraps it on CPU (``DDP(find_unused_parameters=True)``, plain norms) and must reproduce the loss
and the gradients of one process on the whole batch; the contrastive term must use the negatives of
both ranks. The step level (fixed batches, the network) rather than the whole trainer keeps the test
fast and exact; the encoder is nnU-Net's residual encoder, whose InstanceNorm is per sample (BatchNorm
statistics, as in UniFormer, are per rank on CPU: SyncBatchNorm needs CUDA).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP

from brainmvp_nnunet.networks.resenc import residual_encoder_from_arch_kwargs
from brainmvp_nnunet.pretraining import ModalityTemplates, PretrainConfig, draw_block_masks
from brainmvp_nnunet.pretraining import losses as losses_module
from brainmvp_nnunet.pretraining.model import PretrainingModel

WORLD, BATCH, PATCH, EPOCHS = 2, 4, (16, 16, 16), 3
ARCH = {"n_stages": 3, "features_per_stage": [4, 8, 16], "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": [[3, 3, 3]] * 3, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]], "n_blocks_per_stage": [1, 1, 1],
        "conv_bias": True, "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
        "norm_op_kwargs": {"eps": 1e-5, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}


def _model() -> PretrainingModel:
    torch.manual_seed(0)
    config = PretrainConfig(block_size=4, mask_ratio=0.5, projection_dim=8)
    return PretrainingModel(residual_encoder_from_arch_kwargs(1, ARCH),
                            ModalityTemplates(("t1", "t2"), (24, 24, 24), (3.0, 3.0, 3.0)), config)


def _batch() -> dict:
    gen = torch.Generator().manual_seed(1)
    return {"target": torch.randn(BATCH, 1, *PATCH, generator=gen),
            "partner": torch.randn(BATCH, 1, *PATCH, generator=gen),
            "has_partner": torch.tensor([True, False, True, True]), "slots": [0, 1, 1, 0],
            "origins": [(0, 0, 0), (4, 2, 8), (-2, 6, 3), (8, 8, 8)],
            "mask_a": draw_block_masks(BATCH, PATCH, 4, 0.5, gen),
            "mask_b": draw_block_masks(BATCH, PATCH, 4, 0.5, gen),
            "epoch": EPOCHS - 1, "num_epochs": EPOCHS}  # cross-modal view and InfoNCE both on


def _rows(batch: dict, rows: slice) -> dict:
    return {k: v[rows] if isinstance(v, torch.Tensor | list) else v for k, v in batch.items()}


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _worker(rank: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        network = DDP(_model(), device_ids=None, find_unused_parameters=True)
        local = _rows(_batch(), slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD))
        # a first step with the projection head unused (contrastive off) must not break the next one
        network(**{**local, "epoch": 0})["loss"].backward()
        network.zero_grad()
        losses = network(**local)
        losses["loss"].backward()  # DDP averages the gradients over the ranks
        values = {k: v.detach().clone() for k, v in losses.items()}
        for value in values.values():
            dist.all_reduce(value)
            value /= WORLD
        with torch.no_grad():  # the same forward with each rank's own negatives only
            original = losses_module.gather_with_grad
            losses_module.gather_with_grad = lambda t: (t, 0)
            local_only = network.module(**local)["contrastive"]
            losses_module.gather_with_grad = original
        dist.all_reduce(local_only)
        torch.save({"losses": values, "local_only": local_only / WORLD, "grads": _grads(network.module)},
                   f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_equal_one_process(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    model = _model()
    single = model(**_batch())
    single["loss"].backward()
    grads = _grads(model)
    assert "projection.mlp.0.weight" in grads and "templates.templates" in grads
    for rank in range(WORLD):
        result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for key in ("loss", "template_rec", "cross_modal_rec", "contrastive"):
            assert torch.allclose(result["losses"][key], single[key].detach(), atol=1e-5), key
        assert set(result["grads"]) == set(grads)
        for name, grad in grads.items():
            assert torch.allclose(result["grads"][name], grad, rtol=1e-4, atol=1e-6), name
        # with only its own negatives a rank's InfoNCE differs: the gathered one saw both ranks'
        assert abs(float(result["local_only"]) - float(single["contrastive"])) > 1e-3
