"""``brainmvp bench network`` at a tiny size: it runs and reports the ratio (no timing assertions)."""

from __future__ import annotations

import pytest

from brainmvp_nnunet.bench.network import plain_unet_spec
from brainmvp_nnunet.cli import main

TINY_ARGS = ["--widths", "8", "16", "40", "64", "--depths", "1", "1", "1", "1", "--head-dim", "8"]


def test_bench_network_prints_both_networks_and_the_ratio(capsys):
    code = main(["bench", "network", "--patch", "32", "--batch", "1", "--repeats", "1", "--warmup", "0",
                 "--device", "cpu", "--threads", "1", *TINY_ARGS])
    out = capsys.readouterr().out
    assert code == 0
    assert "UniFormer 8/16/40/64" in out and "nnU-Net PlainConvUNet" in out
    assert "ratio UniFormer 8/16/40/64 / nnU-Net PlainConvUNet: time " in out and "peak memory " in out


@pytest.mark.parametrize("patch, message", [(["40"], "not divisible"), (["32", "32"], "one or three")])
def test_bench_network_rejects_bad_patches_with_a_message(patch, message, capsys):
    assert main(["bench", "network", "--patch", *patch, *TINY_ARGS]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("patch, n_stages", [((96, 96, 96), 5), ((128, 128, 128), 6), ((32, 32, 32), 4)])
def test_baseline_is_the_default_planner_topology(patch, n_stages):
    spec = plain_unet_spec(patch)
    assert spec.arch_kwargs["n_stages"] == n_stages
    assert spec.arch_kwargs["features_per_stage"][:2] == [32, 64]
