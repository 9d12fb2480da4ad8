"""The `recsys` command.

`recsys prep` prepares a dataset; `recsys fit|validate|test|predict` train and evaluate through the
Lightning CLI; `recsys score` writes every user's top-K; `recsys sweep` runs scaling-law sweeps; `recsys average`
averages the weights of checkpoints of one run.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

USAGE = """usage: recsys COMMAND [options]

commands:
  prep      raw public files (or a generated dataset) into a prepared folder
  fit       train a model from a YAML config (Lightning CLI)
  validate  evaluate a checkpoint on the validation split
  test      evaluate a checkpoint on the test split and write metrics.json
  predict   run the model's predict loop
  score     write every user's top-K recommendations as parquet shards
  sweep     scaling-law sweeps with power-law fits
  average   one checkpoint with the mean weights of several of one run (e.g. best and last)

`recsys COMMAND --help` explains each command.
"""

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def _command(name: str) -> Callable[[list[str]], int | None]:
    if name == "prep":
        from data_prep.cli import main as prep_main

        return prep_main
    if name == "score":
        from recsys.scoring import main as score_main

        return score_main
    if name == "sweep":
        from recsys.scaling import main as sweep_main

        return sweep_main
    if name == "average":
        from recsys.scoring.average import main as average_main

        return average_main
    if name in LIGHTNING_COMMANDS:
        from recsys.tasks.cli import run_lightning_cli

        return lambda argv: run_lightning_cli([name, *argv])
    raise KeyError(name)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    try:
        command = _command(args[0])
    except KeyError:
        print(f"recsys: unknown command '{args[0]}'\n\n{USAGE}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        print(f"recsys: command '{args[0]}' is not available in this build ({exc})", file=sys.stderr)
        return 2
    if args[0] in (*LIGHTNING_COMMANDS, "score", "sweep"):
        from recsys.runtime import tune_cpu_allocator

        tune_cpu_allocator()
    result = command(args[1:])
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
