"""``brainmvp bench pretrain`` at a tiny size: it runs and reports (no timing assertions)."""

from __future__ import annotations

from brainmvp_nnunet.bench.pretrain import PUBLISHED, PretrainMeasurement, format_report
from brainmvp_nnunet.cli import main

TINY_ARGS = ["--widths", "8", "16", "40", "64", "--depths", "1", "1", "1", "1", "--head-dim", "8"]


def test_bench_pretrain_prints_a_step(capsys):
    code = main(["bench", "pretrain", "--patch", "32", "--batch", "2", "--slots", "3", "--template-spacing", "3",
                 "--repeats", "1", "--warmup", "0", "--device", "cpu", "--threads", "1", *TINY_ARGS])
    out = capsys.readouterr().out
    assert code == 0
    assert "ours, UniFormer 8/16/40/64, skip head" in out and "s/step" in out and "no published figure" in out


def test_bench_pretrain_report_compares_with_the_published_figures():
    m = PretrainMeasurement("UniFormer-S", "linear", True, 22_000_000, 71_424_000, 41.3, (41.3,), 7782.4, 9000.0, "cpu")
    report = format_report(m, [96, 96, 96], 2, 8)
    seconds, gib = PUBLISHED[2]
    assert f"{seconds:>9.2f}" in report and f"time {41.3 / seconds:.2f}x (target <= 0.67x)" in report
    assert "peak memory 0.50x" in report and "ours, UniFormer-S, linear head" in report


def test_bench_pretrain_head_and_recompute_options(capsys):
    code = main(["bench", "pretrain", "--patch", "32", "--batch", "1", "--slots", "2", "--template-spacing", "3",
                 "--repeats", "1", "--warmup", "0", "--device", "cpu", "--threads", "1", "--release", "--head", "skip",
                 "--no-recompute", *TINY_ARGS])
    out = capsys.readouterr().out
    assert code == 0 and "ours, UniFormer 8/16/40/64, skip head" in out and "MLP recomputation off" in out


def test_bench_pretrain_rejects_a_bad_patch(capsys):
    assert main(["bench", "pretrain", "--patch", "40", *TINY_ARGS]) == 2
    assert "not divisible" in capsys.readouterr().err
