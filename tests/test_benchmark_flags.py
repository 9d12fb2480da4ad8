"""The speed benchmark hands RecBole's runner only flags that runner accepts (an extra `--precision` once made every
RecBole run exit with code 2), and recsys workers get the precision and packing they are asked for."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def test_recbole_gets_only_flags_its_runner_defines(benchmark_script) -> None:
    train_speed = benchmark_script("train_speed")
    args = argparse.Namespace(threads=1, seed=42, max_len=50, hidden_size=64, n_layers=2, n_heads=2, dropout=0.2,
                              attn_dropout=0.2, mask_ratio=0.2, batch_size=128, lr=1e-3, precision="bf16-mixed",
                              packed="true", layout="post-ln", stride=25, ema=0.99, negated_dims=32,
                              seen_margin=2.0)  # fmt: skip
    runner_options = set(re.findall(r'add_argument\("(--[a-z-]+)"', (BENCH / "recbole_train_runner.py").read_text()))
    given = {flag for flag in train_speed.common_flags(args) if flag.startswith("--")}
    assert given <= runner_options, given - runner_options
    recsys = train_speed.recsys_flags(args)
    assert recsys[recsys.index("--precision") + 1] == "bf16-mixed" and recsys[recsys.index("--packed") + 1] == "true"
    assert recsys[recsys.index("--layout") + 1] == "post-ln" and recsys[recsys.index("--stride") + 1] == "25"
    assert [recsys[recsys.index(flag) + 1] for flag in ("--ema", "--negated-dims", "--seen-margin")] == ["0.99", "32", "2.0"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tuned", "layout=post-ln"], "change SASRec only"),
        (["--layout", "reference"], "change SASRec only"),
        (["--tuned", "stride=25"], "--stride"),
        (["--stride", "25"], "--stride"),
        (["--tuned", "negated_dims=32"], "SASRec (causal) only"),
        (["--seen-margin", "2"], "SASRec (causal) only"),
        (["--tuned", "dropout=0.5"], "only batch_size, lr, attn_dropout"),
    ],
)
def test_flags_a_row_would_mislabel_are_refused_before_any_run(flags: list[str], message: str) -> None:
    """BERT4Rec has no layout flag and no overlapping causal windows, and `--tuned` knows only the keys its
    workers take: a row labelled with any other would silently measure the default model."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(BENCH / "train_speed.py"), "--datasets", "ml-100k", "--models", "sasrec,bert4rec",
         "--out", "never-written", *flags],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0 and message in proc.stderr
    assert not (BENCH / "results" / "never-written.json").exists()


def test_flop_count_follows_the_positions_the_last_layer_computes(benchmark_script) -> None:
    """recsys runs the last layer's projection, feed-forward and head only at the targets when they are at most
    half of the batch; the GFLOP/s column must not count the skipped work."""
    train_speed = benchmark_script("train_speed")
    d, layers, items = 64, 2, 1000
    full = train_speed.forward_flops(32, 50, 320, items, d, layers, True)
    per_token = layers * (24 * d * d + 4 * 50 * d) + 2 * d * d
    assert full == 32 * 50 * per_token + 320 * 2 * d * items
    assert train_speed.recsys_selected(32, 50, 320) == 320  # a BERT4Rec batch: 20% masked
    assert train_speed.recsys_selected(32, 50, 1300) == 1600  # a SASRec batch: most positions are targets
    selected = train_speed.forward_flops(32, 50, 320, items, d, layers, True, selected=320)
    assert full - selected == (1600 - 320) * 20 * d * d


def test_own_machine_reports_judge_against_their_own_recbole_time(benchmark_script) -> None:
    """The quiet RecBole times of ../shared/BENCHMARKS.md belong to one processor: a report made with
    --own-machine (an empty `quiet_recbole_epoch_s`) has no quiet column and states its CPU, older ones keep both."""
    train_speed = benchmark_script("train_speed")
    assert train_speed.quiet_epoch_s({}, "ml-100k", "SASRec") == 125.8
    assert train_speed.quiet_epoch_s({"quiet_recbole_epoch_s": {}}, "ml-100k", "SASRec") is None
    assert train_speed._features({"cpu": "x"}) == ", shared with other jobs"
    described = train_speed._features({"cpu_capability": "AVX2", "native_bf16": False})
    assert "AVX2" in described and "no native bfloat16" in described
    features = train_speed.cpu_features()
    assert isinstance(features["cpu_capability"], str) and isinstance(features["native_bf16"], bool)
    assert train_speed.matmul_peak_gflops(1, size=256, repeats=2) > 0


def test_goal_is_judged_against_the_quiet_reference_only_when_recbole_ran_under_load(benchmark_script) -> None:
    """A RecBole run slowed by other jobs would flatter recsys, so its ratio is checked against the quiet
    reference too; a RecBole run that had the cores to itself is the bar on its own."""
    train_speed = benchmark_script("train_speed")
    quiet_run, loaded_run = {"load_average_after": [1.0, 1.0, 0.9]}, {"load_average_after": [3.1, 2.9, 2.5]}
    assert train_speed.judged_ratio(quiet_run, 0.087, 0.139) == 0.087
    assert train_speed.judged_ratio(loaded_run, 0.087, 0.139) == 0.139
    assert train_speed.judged_ratio({}, 0.087, 0.139) == 0.139  # load not recorded: the stricter ratio
    ended_quiet = {"load_average_after": [1.05, 2.67, 4.34]}  # quiet only in its last minute
    assert train_speed.judged_ratio(ended_quiet, 0.087, 0.139) == 0.139
    assert train_speed.judged_ratio(loaded_run, 0.087, None) == 0.087  # no quiet reference for this pair
