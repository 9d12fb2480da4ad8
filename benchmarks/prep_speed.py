"""How long `recsys prep` takes, and how much memory it needs, for every real dataset.

Each preparation runs in its own child process, so that
- peak memory is that process's peak resident set size (ru_maxrss from os.wait4 on that child, in KiB
  on Linux). tracemalloc would miss polars' Rust allocations, and RUSAGE_CHILDREN would report the
  largest child so far rather than this one;
- time is split into interpreter start + imports (paid once per `recsys prep` call) and the preparation
  itself (read, check, filter, write), measured inside the child, plus the parent's wall clock.

ML-1M's ratings.dat is not available offline; its row is measured on a generated ratings.dat of the real
size (1,000,209 rows, real movie and user ids, real format) beside the real movies.dat and users.dat.

    python benchmarks/prep_speed.py [--data $RECSYS_DATA] [--repeats 3]

writes benchmarks/results/prep_speed.md and prep_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl
from common import machine, versions

RESULTS = Path(__file__).resolve().parent / "results"

CHILD = """
import json, sys, time
t0 = time.perf_counter()
from data_prep import prepare
t1 = time.perf_counter()
name, raw, out, extra = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
path = prepare(name, raw=None if raw == "-" else raw, out=out, overwrite=True, **extra)
t2 = time.perf_counter()
meta = json.loads((path / "meta.json").read_text())
print(json.dumps({"import_s": t1 - t0, "prep_s": t2 - t1, "users": meta["n_users"], "items": meta["n_items"],
                  "interactions": meta["n_interactions"]}))
"""


@dataclass
class Row:
    dataset: str
    users: int
    items: int
    interactions: int
    prep_s: float
    import_s: float
    wall_s: float
    peak_rss_mib: float
    note: str = ""


def run_once(name: str, raw: Path | None, out: Path, extra: dict[str, object]) -> tuple[dict[str, float], float, float]:
    """One child process: (its JSON report, parent wall seconds, peak RSS in MiB)."""
    with tempfile.TemporaryFile("w+") as out_log, tempfile.TemporaryFile("w+") as err_log:
        start = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, name, str(raw) if raw else "-", str(out), json.dumps(extra)],
            stdout=out_log,
            stderr=err_log,
            text=True,
        )
        _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out_log.seek(0)
        err_log.seek(0)
        stdout, stderr = out_log.read(), err_log.read()
    if child.returncode != 0:
        raise RuntimeError(f"prep {name} failed ({child.returncode}):\n{stderr}")
    return json.loads(stdout.strip().splitlines()[-1]), wall, usage.ru_maxrss / 1024


def write_ml1m_stand_in(data: Path, into: Path, seed: int = 0) -> Path:
    """Real movies.dat/users.dat plus a generated ratings.dat with ML-1M's row count and format."""
    into.mkdir(parents=True, exist_ok=True)
    for name in ("movies.dat", "users.dat"):
        shutil.copy(data / "ml-1m" / name, into / name)
    movies = pl.Series((into / "movies.dat").read_bytes().decode("latin-1").splitlines()).str.split("::").list.first()
    rng = np.random.default_rng(seed)
    n = 1_000_209
    frame = pl.DataFrame(
        {
            "user": rng.integers(1, 6041, n),
            "movie": movies.cast(pl.Int64).to_numpy()[rng.integers(0, movies.len(), n)],
            "rating": rng.integers(1, 6, n),
            "timestamp": rng.integers(956_703_932, 1_046_454_590, n),
        }
    ).sort("user", maintain_order=True)
    lines = frame.select(pl.concat_str(pl.all().cast(pl.String), separator="::"))
    (into / "ratings.dat").write_text("\n".join(lines.to_series().to_list()) + "\n", encoding="latin-1")
    return into


def to_markdown(rows: list[Row], info: dict[str, object], repeats: int) -> str:
    lines = [
        "# Data preparation speed (`recsys prep`)",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores; Python {info['python']}, polars {info['polars']}, "
        f"numpy {info['numpy']}; {info['platform']}.",
        f"Median of {repeats} runs, each in a fresh child process. prep = read, check, filter, write (inside the "
        "child, after imports); import = interpreter start to `from data_prep import prepare` done; wall = the "
        "parent's clock for the whole child. Peak RSS = the child's ru_maxrss (os.wait4), max over runs.",
        "",
        "| dataset | users | items | interactions | prep s | import s | wall s | peak RSS MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r.dataset}{' (*)' if r.note else ''} | {r.users:,} | {r.items:,} | {r.interactions:,} | "
            f"{r.prep_s:.2f} | {r.import_s:.2f} | {r.wall_s:.2f} | {r.peak_rss_mib:.0f} |"
        )
    notes = [f"(*) {r.dataset}: {r.note}" for r in rows if r.note]
    by_name = {r.dataset: r for r in rows}
    findings = []
    if "amazon-beauty" in by_name:
        beauty = by_name["amazon-beauty"]
        verdict = "met" if beauty.wall_s < 2.0 else "not met"
        findings = [
            "",
            f"Goal (Beauty raw to prepared in under 2 s, whole `recsys prep` process): {beauty.wall_s:.2f} s, "
            f"{verdict}; the preparation itself takes {beauty.prep_s:.2f} s, interpreter start and imports "
            f"{beauty.import_s:.2f} s. Load average at the end of the run: {os.getloadavg()[0]:.2f} on "
            f"{os.cpu_count()} cores (timings on a shared machine are inflated by the other jobs).",
        ]
    return "\n".join(lines + [""] + notes + findings + [""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("RECSYS_DATA", "../shared/datasets")))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    cases: list[tuple[str, str, Path | None, dict[str, object], str]] = [
        ("ml-100k", "ml-100k", args.data / "ml-100k", {}, ""),
        ("amazon-beauty", "amazon-beauty", args.data / "amazon-beauty-2014", {}, ""),
        ("amazon-sports", "amazon-sports", args.data / "amazon-sports-2014", {}, ""),
        ("amazon-toys", "amazon-toys", args.data / "amazon-toys-2014", {}, ""),
        ("amazon-toys --numbering p5", "amazon-toys", args.data / "amazon-toys-2014", {"numbering": "p5"}, ""),
        ("yelp", "yelp", args.data / "yelp-s3rec", {}, ""),
        ("lastfm", "lastfm", args.data / "lastfm-s3rec", {}, ""),
        ("synthetic", "synthetic", None, {"users": 2000, "items": 500, "seed": 0}, ""),
    ]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="prep-speed-") as tmp:
        work = Path(tmp)
        ml1m_note = ("ratings.dat is not available offline; measured on a generated ratings.dat with ML-1M's "
                     "1,000,209 rows in the real format beside the real movies.dat and users.dat")
        cases.insert(1, ("ml-1m", "ml-1m", write_ml1m_stand_in(args.data, work / "ml-1m-raw"), {}, ml1m_note))
        for label, name, raw, extra, note in cases:
            reports, walls, peaks = [], [], []
            for _ in range(args.repeats):
                report, wall, peak = run_once(name, raw, work / "out" / name, extra)
                reports.append(report)
                walls.append(wall)
                peaks.append(peak)
            rows.append(Row(
                dataset=label, users=int(reports[0]["users"]), items=int(reports[0]["items"]),
                interactions=int(reports[0]["interactions"]),
                prep_s=statistics.median(r["prep_s"] for r in reports),
                import_s=statistics.median(r["import_s"] for r in reports),
                wall_s=statistics.median(walls), peak_rss_mib=max(peaks), note=note,
            ))  # fmt: skip
            print(f"{label:28s} prep {rows[-1].prep_s:6.2f} s  wall {rows[-1].wall_s:6.2f} s  "
                  f"peak {rows[-1].peak_rss_mib:6.0f} MiB", flush=True)
    info = {**machine(), **versions("polars", "numpy")}
    args.results.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(rows, info, args.repeats)
    (args.results / "prep_speed.md").write_text(markdown, encoding="utf-8")
    (args.results / "prep_speed.json").write_text(
        json.dumps({"machine": info, "repeats": args.repeats, "rows": [asdict(r) for r in rows]}, indent=2) + "\n",
        encoding="utf-8",
    )
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
