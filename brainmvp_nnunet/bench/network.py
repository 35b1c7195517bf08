"""Forward+backward time and peak memory: UniFormer-S segmentation network vs nnU-Net's default U-Net.

Both networks are built the way nnU-Net builds them (``get_network_from_plans``, deep supervision
on) for the same patch, batch, input channels and classes. The baseline is the PlainConvUNet that
nnU-Net's default planner derives for that patch at isotropic spacing (topology from
``get_pool_and_conv_props``, 32 base features doubling up to 320, two convs per stage).

One step = forward, a deep-supervision cross-entropy against random labels, backward. Each network
is measured in its own subprocess (``python -m brainmvp_nnunet.bench.network --worker REQUEST``)
after one small priming step (lazily loaded kernels are not the network's memory). Memory is the
peak above the state before the first full-size step (model and input allocated): peak RSS on CPU,
``torch.cuda.max_memory_allocated`` on CUDA.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from brainmvp_nnunet.errors import NetworkConfigError
from brainmvp_nnunet.networks.base import check_divisible
from brainmvp_nnunet.networks.segmentation import uniformer_arch_kwargs
from brainmvp_nnunet.networks.uniformer import UNIFORMER_S_DEPTHS, UNIFORMER_S_WIDTHS

RESULT_PREFIX = "BRAINMVP_BENCH_RESULT "
UNIFORMER_CLASS = "brainmvp_nnunet.networks.segmentation.UniFormerSegNet"
PLAIN_UNET_CLASS = "dynamic_network_architectures.architectures.unet.PlainConvUNet"


@dataclass(frozen=True)
class NetworkSpec:
    """A network as nnU-Net's plans name it: class path, JSON-able kwargs, kwargs given as import paths."""

    name: str
    class_path: str
    arch_kwargs: dict[str, Any]
    requires_import: tuple[str, ...] = ()


@dataclass(frozen=True)
class Measurement:
    """Result of one network: parameters, median step seconds, peak memory (MiB), planner estimate."""

    name: str
    parameters: int
    seconds: float
    step_seconds: tuple[float, ...]
    peak_mib: float
    feature_map_size: int
    device: str


def uniformer_spec(widths: Sequence[int] = UNIFORMER_S_WIDTHS, depths: Sequence[int] = UNIFORMER_S_DEPTHS,
                   head_dim: int = 64) -> NetworkSpec:
    """The UniFormer segmentation network (UniFormer-S by default)."""
    default = list(widths) == list(UNIFORMER_S_WIDTHS) and list(depths) == list(UNIFORMER_S_DEPTHS)
    name = "UniFormer-S" if default and head_dim == 64 else f"UniFormer {'/'.join(map(str, widths))}"
    return NetworkSpec(name, UNIFORMER_CLASS, uniformer_arch_kwargs(widths, depths, head_dim))


def plain_unet_spec(patch: Sequence[int]) -> NetworkSpec:
    """nnU-Net's default 3-D PlainConvUNet for ``patch`` at 1 mm isotropic, as its default planner builds it."""
    from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props

    _, strides, kernels, padded_patch, _ = get_pool_and_conv_props((1.0, 1.0, 1.0), list(patch), 4, 999999)
    if list(padded_patch) != list(patch):
        raise NetworkConfigError(f"nnU-Net would pad patch {list(patch)} to {list(padded_patch)}")
    n = len(strides)
    arch_kwargs = {
        "n_stages": n, "features_per_stage": [min(320, 32 * 2 ** i) for i in range(n)],
        "conv_op": "torch.nn.modules.conv.Conv3d", "kernel_sizes": [list(k) for k in kernels],
        "strides": [list(s) for s in strides], "n_conv_per_stage": [2] * n, "n_conv_per_stage_decoder": [2] * (n - 1),
        "conv_bias": True, "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
        "norm_op_kwargs": {"eps": 1e-5, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}
    return NetworkSpec("nnU-Net PlainConvUNet", PLAIN_UNET_CLASS, arch_kwargs,
                       ("conv_op", "norm_op", "dropout_op", "nonlin"))


def measure(spec: NetworkSpec, patch: Sequence[int], batch: int = 2, channels: int = 4, classes: int = 3,
            repeats: int = 3, warmup: int = 1, device: str = "cpu", threads: int | None = None) -> Measurement:
    """Measure ``spec`` in a fresh subprocess; raises RuntimeError with the worker's output if it fails."""
    request = {"spec": asdict(spec), "patch": [int(p) for p in patch], "batch": batch, "channels": channels,
               "classes": classes, "repeats": repeats, "warmup": warmup, "device": device, "threads": threads}
    result = run_worker("brainmvp_nnunet.bench.network", request, spec.name)
    return Measurement(**{**result, "step_seconds": tuple(result["step_seconds"])})


def run_worker(module: str, request: dict[str, Any], what: str) -> dict[str, Any]:
    """Run ``python -m module --worker REQUEST`` in a fresh process; return the JSON of its result line.

    Raises RuntimeError with the worker's output (``what`` names the measurement) when it fails.
    """
    proc = subprocess.run([sys.executable, "-m", module, "--worker", json.dumps(request)],
                          capture_output=True, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"measuring {what} failed (exit code {proc.returncode}; killed for memory when "
                           f"-9):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def benchmark_networks(patch: Sequence[int], batch: int = 2, channels: int = 4, classes: int = 3, repeats: int = 3,
                       warmup: int = 1, device: str = "cpu", threads: int | None = None,
                       widths: Sequence[int] = UNIFORMER_S_WIDTHS, depths: Sequence[int] = UNIFORMER_S_DEPTHS,
                       head_dim: int = 64) -> list[Measurement]:
    """UniFormer (first) and nnU-Net's default PlainConvUNet (second), same patch, batch and data."""
    check_divisible(patch, (16, 16, 16), "UniFormer patch")
    specs = [uniformer_spec(widths, depths, head_dim), plain_unet_spec(patch)]
    return [measure(s, patch, batch, channels, classes, repeats, warmup, device, threads) for s in specs]


def format_report(measurements: Sequence[Measurement], patch: Sequence[int], batch: int, channels: int) -> str:
    """A table of the measurements and the ratio of the first to the second."""
    ours, base = measurements[0], measurements[1]
    lines = [f"forward+backward, batch {batch}, {channels} channels, patch {'x'.join(map(str, patch))}, "
             f"device {ours.device}, deep supervision on (median of {len(ours.step_seconds)} step(s))",
             f"{'network':<24} {'params':>12} {'fwd+bwd s':>10} {'peak MiB':>10} {'planner est.':>14}"]
    lines += [f"{m.name:<24} {m.parameters:>12,} {m.seconds:>10.3f} {m.peak_mib:>10.0f} {m.feature_map_size:>14,}"
              for m in measurements]
    lines.append(f"ratio {ours.name} / {base.name}: time {ours.seconds / base.seconds:.2f}x, "
                 f"peak memory {ours.peak_mib / max(base.peak_mib, 1e-9):.2f}x")
    lines.append("peak MiB: peak above the state before the first step (model and input allocated); planner est.: "
                 "compute_conv_feature_map_size, the per-sample unit nnU-Net's planner sizes batches with")
    return "\n".join(lines)


def current_rss_bytes() -> int:
    """Resident set size now (Linux /proc), or the peak so far where /proc is missing."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_rss_bytes() -> int:
    """Peak resident set size of this process (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_step(net: Any, x: Any, classes: int) -> None:
    """Forward, nnU-Net-style deep-supervision cross-entropy (weights 1/2^i) on random labels, backward."""
    import torch

    outputs = net(x)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    targets = [torch.randint(0, classes, (o.shape[0], *o.shape[2:]), device=o.device) for o in outputs]
    loss = sum(torch.nn.functional.cross_entropy(o, t) / 2 ** i
               for i, (o, t) in enumerate(zip(outputs, targets, strict=True)))
    loss.backward()
    net.zero_grad(set_to_none=True)


def _measure_here(request: dict[str, Any]) -> dict[str, Any]:
    """Worker side of :func:`measure`: build, warm up, time ``repeats`` steps, read peak memory."""
    import torch
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    if request["threads"]:
        torch.set_num_threads(int(request["threads"]))
    device = torch.device(request["device"])
    spec = request["spec"]
    patch, batch = request["patch"], request["batch"]
    net = get_network_from_plans(spec["class_path"], spec["arch_kwargs"], spec["requires_import"],
                                 request["channels"], request["classes"], allow_init=True, deep_supervision=True)
    net = net.to(device).train()
    x = torch.randn(batch, request["channels"], *patch, device=device)

    def step() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run_step(net, x, request["classes"])
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    # one small step first, so that lazily loaded kernels and libraries do not count as the network's memory
    smallest = [2 * math.prod(level) for level in zip(*spec["arch_kwargs"]["strides"], strict=True)]
    run_step(net, torch.randn(1, request["channels"], *smallest, device=device), request["classes"])
    times, peak, baseline = timed_steps(step, request["warmup"], request["repeats"], device)
    return {"name": spec["name"], "parameters": sum(p.numel() for p in net.parameters()),
            "seconds": statistics.median(times), "step_seconds": times, "peak_mib": (peak - baseline) / 2 ** 20,
            "feature_map_size": int(net.compute_conv_feature_map_size(patch)), "device": str(device)}


def timed_steps(step: Callable[[], float], warmup: int, repeats: int, device: Any) -> tuple[list[float], int, int]:
    """Run ``warmup`` untimed and ``repeats`` timed steps; return the step times, the peak memory and
    the memory before the first step (bytes: allocated on CUDA, resident set on CPU)."""
    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
    else:
        baseline = current_rss_bytes()
    for _ in range(warmup):
        step()
    times = [step() for _ in range(repeats)]
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else peak_rss_bytes()
    return times, peak, baseline


def worker_main(measure_here: Callable[[dict[str, Any]], dict[str, Any]], argv: Sequence[str] | None = None) -> None:
    """Entry point of a measuring subprocess: parse ``--worker REQUEST``, print the result line."""
    parser = argparse.ArgumentParser(description="internal: one measurement of brainmvp bench")
    parser.add_argument("--worker", required=True, help="JSON request")
    request = json.loads(parser.parse_args(argv).worker)
    print(RESULT_PREFIX + json.dumps(measure_here(request)), flush=True)


if __name__ == "__main__":
    worker_main(_measure_here)
