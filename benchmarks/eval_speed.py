"""Full-ranking evaluation speed: the recsys Evaluator and its faiss ranker beside torch and RecBole 1.2.1.

Inputs are Beauty's sizes (22,363 users, 12,101 items) with seeded random float32 vectors (d=64) and one
random target per user: speed does not depend on what the vectors mean, and every method gets the same
file. Each method runs in its own process, so its peak RSS is its own. Every method computes Recall/NDCG/
MRR@K for all users (so the metrics columns must agree across methods, at chance level).

What each row times (the fastest of --rounds interleaved rounds, each best of --repeats after a warm-up):
- recsys Evaluator: `Evaluator.evaluate` end to end over a DataLoader of EvalCollator batches: index
  build, collation, encode (an embedding lookup), faiss search, tie-aware ranks, RankingMetrics.
- faiss exact / IVF / HNSW: `ItemRanker` build + top-K search for all users (no metrics).
- torch matmul+topk: score chunks of 512 users, mask padding, torch.topk, ranks and RankingMetrics.
- RecBole full-sort: see benchmarks/recbole_eval_speed.py (its Trainer's full-sort batch path, its
  Collector and Evaluator), run in benchmarks/.venv-recbole.
A second part ranks a synthetic one-million-item catalogue with exact and IVF search and reports IVF's
recall@100 against exact search (random Gaussian vectors have no cluster structure: IVF's worst case).

    python benchmarks/eval_speed.py            # writes benchmarks/results/eval_speed.md and .json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from common import machine, peak_rss_mib, versions

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"
RESULTS = HERE / "results"


# ---------------------------------------------------------------- inputs and machine --------------------------
def write_inputs(path: Path, users: int, items: int, dim: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    np.savez(
        path,
        users=rng.standard_normal((users, dim), dtype=np.float32),
        items=rng.standard_normal((items + 1, dim), dtype=np.float32),  # row 0 = padding
        targets=rng.integers(1, items + 1, size=users),
        lengths=rng.integers(3, 30, size=users),  # histories, used only by the seen-exclusion row
    )


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    fn()  # warm-up: first-touch allocations and thread pools
    best, out = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return best, out


# ---------------------------------------------------------------- workers (one process each) ----------------
def _vector_model(users: np.ndarray, items: np.ndarray) -> Any:
    import torch
    from torch import nn

    class VectorModel(nn.Module):
        """Finished user vectors: encode is a lookup, so only evaluation is timed."""

        def __init__(self) -> None:
            super().__init__()
            self.users = nn.Parameter(torch.from_numpy(users), requires_grad=False)
            self.items = nn.Parameter(torch.from_numpy(items), requires_grad=False)

        def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return self.users[batch["user_idx"]]

        def item_embeddings(self) -> torch.Tensor:
            return self.items

    return VectorModel()


def _split(data: Any) -> Any:
    from recsys.data.sequences import Sequences
    from recsys.data.split import EvalSplit

    lengths = data["lengths"].astype(np.int64)
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    n_items = data["items"].shape[0] - 1
    history = np.random.default_rng(1).integers(1, n_items + 1, size=int(offsets[-1]))
    users = np.arange(lengths.size, dtype=np.int64)
    return EvalSplit("test", Sequences(history, offsets, users), data["targets"].astype(np.int64))


def worker_evaluator(data: Any, k: int, repeats: int, exclude_seen: bool) -> dict[str, Any]:
    from torch.utils.data import DataLoader

    from recsys.data.collate import EvalCollator
    from recsys.eval import Evaluator

    split = _split(data)
    model = _vector_model(data["users"], data["items"])
    loader = DataLoader(range(len(split)), batch_size=2048, collate_fn=EvalCollator(split, 50))
    evaluator = Evaluator(data["items"].shape[0] - 1, ks=(k,), exclude_seen=exclude_seen)
    seconds, result = best_of(lambda: evaluator.evaluate(model, loader, split), repeats)
    return {"seconds": seconds, "metrics": result.metrics, "protocol": result.protocol}


def worker_faiss(data: Any, k: int, repeats: int, kind: str) -> dict[str, Any]:
    from recsys.eval.ranker import IndexSpec, ItemRanker, overlap_recall

    spec = {"exact": IndexSpec(), "ivf": IndexSpec(kind="ivf", nlist=256, nprobe=16),
            "hnsw": IndexSpec(kind="hnsw", hnsw_m=32, ef_search=max(128, k))}[kind]
    users, items = data["users"], data["items"]
    seconds, (ids, _) = best_of(lambda: ItemRanker(items, spec).search(users, k), repeats)
    out: dict[str, Any] = {"seconds": seconds, "index": spec.describe()}
    out.update(_metrics_of(ids, data["targets"], k))
    if kind != "exact":
        exact_ids, _ = ItemRanker(items).search(users, k)
        out["recall_vs_exact"] = overlap_recall(ids, exact_ids)
    return out


def _metrics_of(ids: Any, targets: np.ndarray, k: int) -> dict[str, Any]:
    import torch

    from recsys.eval.metrics import RankingMetrics, ranks_from_topk

    metric = RankingMetrics((k,))
    metric.update(ranks=ranks_from_topk(ids, torch.from_numpy(targets)))
    return {"metrics": {key: float(value) for key, value in metric.compute().items()}}


def worker_torch(data: Any, k: int, repeats: int) -> dict[str, Any]:
    import torch

    from recsys.eval.metrics import RankingMetrics, ranks_from_topk

    users, items = torch.from_numpy(data["users"]), torch.from_numpy(data["items"])
    targets = torch.from_numpy(data["targets"])

    def run() -> dict[str, torch.Tensor]:
        metric = RankingMetrics((k,))
        items_t = items.T.contiguous()
        for start in range(0, users.shape[0], 512):
            scores = users[start : start + 512] @ items_t
            scores[:, 0] = -torch.inf
            top = torch.topk(scores, k).indices
            metric.update(ranks=ranks_from_topk(top, targets[start : start + 512]))
        return metric.compute()

    seconds, values = best_of(run, repeats)
    return {"seconds": seconds, "metrics": {key: float(value) for key, value in values.items()}}


def worker_million(args: argparse.Namespace) -> dict[str, Any]:
    """Exact vs IVF on a 1M-item catalogue: build time, search time, IVF recall@k against exact."""
    from recsys.eval.ranker import IndexSpec, ItemRanker, overlap_recall

    rng = np.random.default_rng(args.seed + 1)
    items = rng.standard_normal((args.million_items + 1, args.dim), dtype=np.float32)
    users = rng.standard_normal((args.million_users, args.dim), dtype=np.float32)
    k = 100
    rows = []
    started = time.perf_counter()
    exact = ItemRanker(items)
    build = time.perf_counter() - started
    started = time.perf_counter()
    exact_ids, _ = exact.search(users, k)
    rows.append({"method": "faiss exact", "build_s": build, "search_s": time.perf_counter() - started,
                 "recall_vs_exact": 1.0})
    del exact
    started = time.perf_counter()
    ivf = ItemRanker(items, IndexSpec(kind="ivf", nlist=args.nlist, nprobe=1))
    build = time.perf_counter() - started
    for nprobe in args.nprobes:
        ivf.cpu_index.nprobe = nprobe
        started = time.perf_counter()
        ids, _ = ivf.search(users, k)
        rows.append({"method": f"faiss IVF nlist={args.nlist} nprobe={nprobe}", "build_s": build,
                     "search_s": time.perf_counter() - started, "recall_vs_exact": overlap_recall(ids, exact_ids)})
    return {"rows": rows, "users": args.million_users, "items": args.million_items, "k": k}


def run_worker(args: argparse.Namespace) -> None:
    if args.worker == "million":
        out = worker_million(args)
    else:
        data = dict(np.load(args.inputs))
        rss_before = peak_rss_mib()
        if args.worker == "evaluator":
            out = worker_evaluator(data, args.k, args.repeats, exclude_seen=False)
        elif args.worker == "evaluator-seen":
            out = worker_evaluator(data, args.k, args.repeats, exclude_seen=True)
        elif args.worker == "torch":
            out = worker_torch(data, args.k, args.repeats)
        else:
            out = worker_faiss(data, args.k, args.repeats, args.worker.removeprefix("faiss-"))
        out["rss_before_mib"] = rss_before
    out["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(out))


# ---------------------------------------------------------------- driver -------------------------------------
METHODS = {
    "evaluator": "recsys Evaluator (faiss exact, end to end)",
    "evaluator-seen": "recsys Evaluator (faiss exact, seen items excluded)",
    "faiss-exact": "faiss exact (IndexFlatIP) build + search",
    "faiss-ivf": "faiss IVF (nlist=256, nprobe=16) build + search",
    "faiss-hnsw": "faiss HNSW (M=32) build + search",
    "torch": "torch matmul + topk (512-user chunks)",
}


def _subprocess_json(cmd: list[str], timeout: int = 1800) -> dict[str, Any]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _fmt_metric(row: dict[str, Any], k: int) -> str:
    metrics = row.get("metrics", {})
    return " / ".join(f"{metrics.get(f'{name}@{k}', float('nan')):.5f}" for name in ("recall", "ndcg"))


def render(report: dict[str, Any]) -> str:
    cfg = report["config"]
    lines = [
        "# Evaluation speed",
        "",
        f"Protocol: full ranking over {cfg['items']:,} items, one random target per user, seen items kept "
        f"(except the row that says otherwise), K={'/'.join(str(k) for k in cfg['ks'])}; "
        f"{cfg['users']:,} users, random float32 vectors d={cfg['dim']} (seed {cfg['seed']}), "
        f"fastest of {cfg['rounds']} interleaved rounds x {cfg['repeats']} runs after a warm-up "
        "(RecBole: one run per round and batch size).",
        "",
        f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores; load average at start "
        f"{', '.join(f'{x:.2f}' for x in report['machine']['load_average'])}, at end "
        f"{', '.join(f'{x:.2f}' for x in report['load_average_end'])} (the machine is shared).",
        "Versions: " + ", ".join(f"{name} {version}" for name, version in report["versions"].items()) + ".",
        "",
        "| method | K | seconds | users/s | peak RSS MiB (before timing) | Recall@K / NDCG@K | vs RecBole | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        k = row["k"]
        recbole = next((r for r in report["rows"] if r["key"] == "recbole" and r["k"] == k), None)
        speedup = f"{recbole['seconds'] / row['seconds']:.1f}x" if recbole else "-"
        notes = row.get("note", "")
        if "recall_vs_exact" in row:
            notes = (notes + "; " if notes else "") + f"recall@{k} vs exact {row['recall_vs_exact']:.3f}"
        lines.append(
            f"| {row['label']} | {k} | {row['seconds']:.3f} | {cfg['users'] / row['seconds']:,.0f} | "
            f"{row['peak_rss_mib']:,.0f} ({row.get('rss_before_mib', float('nan')):,.0f}) | "
            f"{_fmt_metric(row, k)} | {speedup} | {notes} |"
        )
    million = report.get("million")
    if million:
        lines += [
            "",
            f"## One-million-item catalogue ({million['items']:,} items, {million['users']:,} users, "
            f"top-{million['k']}, random Gaussian d={cfg['dim']}: no cluster structure, IVF's worst case)",
            "",
            "| method | build s | search s | users/s | recall@100 vs exact |",
            "|---|---|---|---|---|",
        ]
        for row in million["rows"]:
            lines.append(
                f"| {row['method']} | {row['build_s']:.2f} | {row['search_s']:.2f} | "
                f"{million['users'] / row['search_s']:,.0f} | {row['recall_vs_exact']:.3f} |"
            )
        lines.append(f"\nPeak RSS of the one-million-item process: {million['peak_rss_mib']:,.0f} MiB.")
    lines += ["", "What each row times is written at the top of benchmarks/eval_speed.py and "
              "benchmarks/recbole_eval_speed.py.", ""]
    return "\n".join(lines)


def drive(args: argparse.Namespace) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    inputs = WORK / "eval_speed_inputs.npz"
    write_inputs(inputs, args.users, args.items, args.dim, args.seed)
    report: dict[str, Any] = {
        "config": {"users": args.users, "items": args.items, "dim": args.dim, "seed": args.seed,
                   "ks": args.ks, "repeats": args.repeats, "rounds": args.rounds},
        "machine": machine(), "versions": versions("torch", "faiss-cpu", "numpy"), "rows": [],
    }
    me = [sys.executable, str(Path(__file__).resolve())]
    recbole = None
    if not args.skip_recbole:
        sys.path.insert(0, str(HERE))
        from recbole_env import recbole_python

        recbole = str(recbole_python())
    # Rounds interleave the methods, so a burst of load from elsewhere on a shared machine does not land on
    # one method only; each (method, K) keeps its fastest round.
    best: dict[tuple[str, int], dict[str, Any]] = {}
    for round_ in range(args.rounds):
        for k in args.ks:
            for key in args.methods:
                print(f"[eval_speed] round {round_ + 1}: {key} K={k}", flush=True)
                row = _subprocess_json([*me, "--worker", key, "--k", str(k), "--inputs", str(inputs),
                                        "--repeats", str(args.repeats)])
                row = {"key": key, "label": METHODS[key], "k": k, **row}
                if (key, k) not in best or row["seconds"] < best[key, k]["seconds"]:
                    best[key, k] = row
            for batch_size in args.recbole_batch_sizes if recbole else []:
                print(f"[eval_speed] round {round_ + 1}: recbole K={k} batch={batch_size}", flush=True)
                row = _subprocess_json([recbole, str(HERE / "recbole_eval_speed.py"), "--inputs", str(inputs),
                                        "--k", str(k), "--batch-size", str(batch_size)])
                row = {"key": "recbole", "label": "RecBole 1.2.1 full-sort evaluation path", "k": k, **row,
                       "note": f"{batch_size} users per batch (fastest of batch sizes {args.recbole_batch_sizes})"}
                report["versions"]["recbole"] = row["versions"]["recbole"]
                if ("recbole", k) not in best or row["seconds"] < best["recbole", k]["seconds"]:
                    best["recbole", k] = row
    order = [*args.methods, "recbole"]
    report["rows"] = sorted(best.values(), key=lambda r: (r["k"], order.index(r["key"])))
    if args.million_items:
        print(f"[eval_speed] million-item catalogue ({args.million_items:,})", flush=True)
        report["million"] = _subprocess_json(
            [*me, "--worker", "million", "--million-items", str(args.million_items), "--million-users",
             str(args.million_users), "--nlist", str(args.nlist), "--nprobes", *map(str, args.nprobes),
             "--dim", str(args.dim), "--seed", str(args.seed)],
            timeout=3600,
        )
    report["load_average_end"] = os.getloadavg()
    text = render(report)
    (RESULTS / f"{args.out}.md").write_text(text)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(report, indent=2) + "\n")
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=22_363)
    parser.add_argument("--items", type=int, default=12_101)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ks", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per worker, after a warm-up")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the fastest is kept")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--skip-recbole", action="store_true")
    parser.add_argument("--recbole-batch-sizes", type=int, nargs="+", default=[4096, 512])
    parser.add_argument("--million-items", type=int, default=1_000_000, help="0 skips the 1M-item part")
    parser.add_argument("--million-users", type=int, default=4096)
    parser.add_argument("--nlist", type=int, default=1024)
    parser.add_argument("--nprobes", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--out", default="eval_speed")
    # worker mode (internal)
    parser.add_argument("--worker", choices=[*METHODS, "million"])
    parser.add_argument("--inputs")
    parser.add_argument("--k", type=int)
    args = parser.parse_args()
    if args.worker:
        run_worker(args)
    else:
        drive(args)


if __name__ == "__main__":
    main()
