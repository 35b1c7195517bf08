"""Running benchmark jobs: in this process one after the other, or one worker process per GPU.

With several GPUs each worker is a spawned process started with ``CUDA_VISIBLE_DEVICES`` set to its
GPU (so it holds from the child's first import, before anything initialises CUDA). Workers pull
jobs from a shared queue until it is empty, so a slow job never holds back the others and every GPU
stays busy; each runs one job at a time, because a training run already uses a whole GPU. A failed
job is reported and the worker goes on with the next one: the jobs that finished are kept (the
benchmark is resumable) and the failures are raised together at the end.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from brainmvp_nnunet.errors import BenchmarkError


@dataclass(frozen=True)
class Outcome:
    """What happened to job number ``index`` and where it ran (``gpu`` None: in this process)."""

    index: int
    gpu: str | None
    error: str | None = None


@contextlib.contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """``os.environ[name] = value`` for the duration (a spawned child copies the environment at start)."""
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def _gpu_worker(gpu: str, jobs: Any, outcomes: Any, run_job: Callable[[Any], object]) -> None:
    """Body of one GPU worker process (top level so that spawned processes can unpickle it)."""
    while True:
        item = jobs.get()
        if item is None:  # one sentinel per worker: the queue is drained
            return
        index, job = item
        outcomes.put(_run_one(index, job, run_job, gpu))


def _run_one(index: int, job: Any, run_job: Callable[[Any], object], gpu: str | None) -> Outcome:
    try:
        run_job(job)
    except Exception:  # noqa: BLE001 - reported, and raised together with the others at the end
        return Outcome(index, gpu, traceback.format_exc(limit=8))
    return Outcome(index, gpu)


def run_jobs(jobs: Sequence[Any], run_job: Callable[[Any], object], gpus: Sequence[str] = ()) -> list[Outcome]:
    """Run every job with ``run_job``: sequentially here without ``gpus``, else one worker per GPU.

    Args:
        jobs: picklable job descriptions.
        run_job: a picklable (top-level) function called with one job; it raises on failure.
        gpus: GPU indices as strings (``["0", "1"]``); empty: run in this process, in order.

    Returns:
        One :class:`Outcome` per job, in job order; a job that raised has its traceback in ``error``.

    Raises:
        BenchmarkError: a worker process died without reporting its job (killed, out of memory).
    """
    if not gpus:
        return [_run_one(i, job, run_job, None) for i, job in enumerate(jobs)]
    context = multiprocessing.get_context("spawn")  # fork after torch started threads can deadlock
    pending, outcomes = context.Queue(), context.Queue()
    for item in enumerate(jobs):
        pending.put(item)
    for _ in gpus:
        pending.put(None)
    workers = [context.Process(target=_gpu_worker, args=(gpu, pending, outcomes, run_job), daemon=False)
               for gpu in gpus]
    for gpu, worker in zip(gpus, workers, strict=True):
        with _environment("CUDA_VISIBLE_DEVICES", gpu):
            worker.start()
    results: dict[int, Outcome] = {}
    while len(results) < len(jobs):
        try:
            outcome = outcomes.get(timeout=5.0)
            results[outcome.index] = outcome
        except queue.Empty:
            if not any(w.is_alive() for w in workers):
                break
    for worker in workers:
        worker.join()
    lost = [i for i in range(len(jobs)) if i not in results]
    if lost:
        raise BenchmarkError(f"GPU worker(s) died without finishing job(s) {lost}; re-run the benchmark to resume")
    return [results[i] for i in range(len(jobs))]
