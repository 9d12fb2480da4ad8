"""benchmarks/recformer_quality.py compares each row with popularity under the row's own protocol."""

from __future__ import annotations

from pathlib import Path

KEPT = "full ranking over 100 items, leave-one-out (test), seen items kept, K=10"
EXCLUDED = "full ranking over 100 items, leave-one-out (test), seen items excluded, K=10"


def _metrics(recall: float, ndcg: float) -> dict[str, float]:
    return {"recall@10": recall, "ndcg@10": ndcg, "mrr@10": ndcg / 2}


def _popularity(recall: float, ndcg: float) -> dict:
    return {"dataset": "toy", "metrics": _metrics(recall, ndcg),
            "cold": {"n_users": 0, "metrics": {"recall@10": None, "ndcg@10": None}}}


def _run(name: str, protocol: str, recall: float, ndcg: float) -> dict:
    return {"run": name, "dataset": "toy", "protocol": protocol, "metrics": _metrics(recall, ndcg), "cold": None,
            "seconds": 60.0, "command": "recsys test", "load": [1.0]}


def _row(md: str, needle: str) -> list[str]:
    (line,) = [line for line in md.splitlines() if needle in line]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_seen_excluded_rows_are_divided_by_popularity_under_that_protocol(benchmark_script) -> None:
    module = benchmark_script("recformer_quality")
    pops = {"toy": _popularity(0.010, 0.005), "toy, seen excluded": _popularity(0.020, 0.008)}
    runs = [_run("zeroshot:a:b", KEPT, 0.030, 0.010), _run("zeroshot:a:b@excl", EXCLUDED, 0.030, 0.010)]
    sasrec = [{"dataset": "toy", "label": "d64", "protocol": EXCLUDED, "metrics": _metrics(0.04, 0.016), "seconds": 600}]

    md = module.table(runs, pops, sasrec)

    assert _row(md, "`zeroshot:a:b` |")[6] == "3.00 / 2.00"
    excluded = _row(md, "`zeroshot:a:b@excl`")
    assert excluded[2] == "`zeroshot:a:b@excl`, seen excluded" and excluded[6] == "1.50 / 1.25"
    assert _row(md, "d64, seen excluded")[6] == "2.00 / 2.00"
    assert _row(md, "training counts, seen excluded")[3] == "0.0200"


def test_popularity_under_either_protocol_on_prepared_data(benchmark_script, prepared_synthetic: Path) -> None:
    module = benchmark_script("recformer_quality")

    kept = module.popularity(prepared_synthetic)
    excluded = module.popularity(prepared_synthetic, exclude_seen=True)

    assert kept["metrics"].keys() == excluded["metrics"].keys()
    # The flag reaches the evaluator: popular items a user already has leave that user's top 10, so the lists differ.
    assert excluded["metrics"]["coverage@10"] != kept["metrics"]["coverage@10"]
    assert excluded["metrics"]["recall@10"] != kept["metrics"]["recall@10"]


def test_random_tie_rows_are_divided_by_popularity_with_random_ties(benchmark_script) -> None:
    module = benchmark_script("recformer_quality")
    random = KEPT.replace(", K=10", ", ties broken at random, K=10")
    both = EXCLUDED.replace(", K=10", ", ties broken at random, K=10")
    pops = {"toy": _popularity(0.010, 0.005), "toy, ties random": _popularity(0.015, 0.006),
            "toy, seen excluded, ties random": _popularity(0.020, 0.010)}
    runs = [_run("zeroshot:a:b@ties", random, 0.030, 0.012), _run("zeroshot:a:b@both", both, 0.030, 0.012)]

    md = module.table(runs, pops, [])

    row = _row(md, "`zeroshot:a:b@ties`")
    assert row[2] == "`zeroshot:a:b@ties`, ties random" and row[6] == "2.00 / 2.00"
    assert _row(md, "`zeroshot:a:b@both`")[2:7:4] == ["`zeroshot:a:b@both`, seen excluded, ties random",
                                                       "1.50 / 1.20"]
    assert _row(md, "training counts, ties random")[3] == "0.0150"
    assert module.variant(both) == (True, True) and module.variant(KEPT) == (False, False)


def test_popularity_with_random_ties_on_prepared_data(benchmark_script, prepared_synthetic: Path) -> None:
    module = benchmark_script("recformer_quality")

    pessimistic = module.popularity(prepared_synthetic)
    random = module.popularity(prepared_synthetic, ties="random")

    # Items with equal training counts tie; at random the target gets its share of them, pessimistically none.
    assert random["metrics"]["recall@10"] >= pessimistic["metrics"]["recall@10"]
    assert random["metrics"]["coverage@10"] == pessimistic["metrics"]["coverage@10"]


def test_attribute_overlap_rows_sit_beside_popularity(benchmark_script) -> None:
    module = benchmark_script("recformer_quality")
    pops = {"toy": _popularity(0.010, 0.005)}
    overlap = {"toy": _popularity(0.040, 0.020)}

    md = module.table([_run("zeroshot:a:b", KEPT, 0.030, 0.010)], pops, [], overlap)

    row = _row(md, "attribute overlap")
    assert row[2] == "IDF cosine, recency-weighted" and row[3] == "0.0400" and row[6] == "4.00 / 4.00"
