"""InfoNCE with negatives gathered across 2 gloo ranks on CPU equals the single-process InfoNCE.

Each rank holds half of the global batch; the mean of the per-rank losses and the rank-averaged
gradients (what DDP does) must equal the loss and gradient of one process on the whole batch.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from brainmvp_nnunet.pretraining.losses import gather_with_grad, info_nce

WORLD, BATCH, DIM_IN, DIM = 2, 6, 5, 4
TEMPERATURE = 0.2


def _problem() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs of the two views and the weight of a linear 'encoder', identical on every rank."""
    gen = torch.Generator().manual_seed(0)
    return (torch.randn(BATCH, DIM_IN, generator=gen), torch.randn(BATCH, DIM_IN, generator=gen),
            torch.randn(DIM_IN, DIM, generator=gen))


def _loss_and_grad(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    w = weight.clone().requires_grad_()
    loss = info_nce(x @ w, y @ w, TEMPERATURE)
    loss.backward()
    return loss.detach(), w.grad


def _worker(rank: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        x, y, weight = _problem()
        rows = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
        gathered, offset = gather_with_grad(x[rows])
        loss, grad = _loss_and_grad(x[rows], y[rows], weight)
        # DDP semantics: gradients and (for logging) losses are averaged over ranks.
        for t in (loss, grad):
            dist.all_reduce(t)
            t /= WORLD
        torch.save({"loss": loss, "grad": grad, "gathered": gathered, "offset": offset}, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_gathered_info_nce_matches_single_process(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    x, y, weight = _problem()
    loss, grad = _loss_and_grad(x, y, weight)
    for rank in range(WORLD):
        result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        # Each rank's contrastive term sees the negatives of both ranks.
        assert torch.equal(result["gathered"], x) and result["offset"] == rank * BATCH // WORLD
        assert torch.allclose(result["loss"], loss, atol=1e-6)
        assert torch.allclose(result["grad"], grad, atol=1e-5)
    assert grad.abs().max() > 1e-3  # a non-trivial gradient was compared
