"""`recsys prep` from the command line: help, summary, defaults from $RECSYS_DATA, usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_prep.cli import main
from data_prep.datasets import DATASET_NAMES
from recsys.cli import main as recsys_main


def test_help_lists_every_dataset_and_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for name in DATASET_NAMES:
        assert name in text
    for option in ("--raw", "--out", "--overwrite", "--k-core", "--min-length", "--min-rating", "--text-max-chars",
                   "--download", "--numbering", "--users", "--items", "--seed", "RECSYS_DATA"):
        assert option in text


def test_synthetic_through_recsys_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "syn"
    assert recsys_main(["prep", "synthetic", "--out", str(out), "--users", "50", "--items", "30", "--seed", "2"]) == 0
    printed = capsys.readouterr().out
    meta = json.loads((out / "meta.json").read_text())
    assert f"{meta['n_interactions']:,} interactions" in printed and "50 users" in printed and str(out) in printed
    assert " s" in printed.splitlines()[-1]  # seconds


def test_existing_output_needs_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "syn"
    args = ["synthetic", "--out", str(out), "--users", "20", "--items", "20"]
    assert main(args) == 0
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--seed", "5"]) == 0
    assert json.loads((out / "meta.json").read_text())["generator"]["seed"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["syn"]  # no temporary folders left


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["synthetic", "--raw", "x"], "takes no --raw"),
        (["ml-100k", "--raw", "x", "--users", "5"], "synthetic generator"),
        (["lastfm", "--raw", "x", "--numbering", "p5"], "does not apply to lastfm"),
        (["yelp", "--raw", "x", "--download"], "--download"),
        (["nope"], "invalid choice"),
        (["ml-100k", "--k-core", "0", "--raw", "x"], "must be at least 1"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                             fragment: str) -> None:
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_raw_defaults_to_recsys_data(data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RECSYS_DATA", str(data_root))
    assert main(["lastfm", "--out", str(tmp_path / "lastfm"), "--k-core", "10"]) == 0
    assert "prepared lastfm" in capsys.readouterr().out
    meta = json.loads((tmp_path / "lastfm" / "meta.json").read_text())
    assert meta["filters"]["k_core"] == 10 and meta["n_interactions"] < 52_551


def test_no_raw_and_no_recsys_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("RECSYS_DATA", raising=False)
    assert main(["ml-100k", "--out", str(tmp_path / "o")]) == 2
    assert "RECSYS_DATA" in capsys.readouterr().err
