"""A light job function for the multi-GPU scheduling test (spawned workers import this module)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def record_job(job: tuple[Path, str]) -> None:
    """Write which GPU ran the job; a job named ``fail`` raises."""
    folder, name = job
    if name == "fail":
        raise RuntimeError("this job fails on purpose")
    time.sleep(0.5)  # long enough that every worker gets a job
    with open(folder / f"{name}.txt", "a") as fh:
        fh.write(os.environ.get("CUDA_VISIBLE_DEVICES", "unset") + "\n")
