"""Run one recipe for several seeds, one after another, and record each finished run.

    .venv/bin/python benchmarks/run_seeds.py PRESET --seeds 0 1 2 [--out runs/records]
        [--set KEY=VALUE ...] [--no-record]

Each seed trains as `classicnets train --preset PRESET --set train.seed=S
--set train.run_name=PRESET-seedS --out OUT`, so running the same command again resumes an
interrupted seed from its last checkpoint and skips finished ones. The finished runs are then
appended to benchmarks/records.csv (record_run.py), unless there already, after the last seed
(or the first that fails): written between seeds, records.csv would make the checkout dirty and
every later seed record a "-dirty" commit. This is the
final-number protocol of docs/experiments.md: the preset trains on the whole training split
(data.val_fraction 0) and its test split is scored once, at the end. To tune, pass
`--set data.val_fraction=0.1 --no-record` (the fixed 5,000-image val split, split_seed 0).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from classicnets.errors import UserError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record_run import RECORDS, append_records, read_records, read_run, record_row, run_identity


def train_command(preset: str, seed: int, out: Path, overrides: Sequence[str]) -> list[str]:
    name = f"{Path(preset).stem}-seed{seed}"
    command = [sys.executable, "-m", "classicnets", "train", "--preset", preset]
    for override in (f"train.seed={seed}", f"train.run_name={name}", *overrides):
        command += ["--set", override]
    return [*command, "--out", str(out)]


def record_if_new(run_dir: Path, records: Path) -> bool:
    """Append the run to records.csv unless it is already there; True if written."""
    run = read_run(run_dir)
    known = {run_identity(row) for row in read_records(records)}
    if run_identity(record_row(run)) in known:
        return False
    append_records([run], records)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("preset")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/records"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--records", type=Path, default=RECORDS)
    parser.add_argument("--no-record", action="store_true", help="train only (tuning runs)")
    args = parser.parse_args(argv)
    finished: list[Path] = []
    code = 0
    for seed in args.seeds:
        command = train_command(args.preset, seed, args.out, args.overrides)
        print("$ " + " ".join(command), flush=True)
        code = subprocess.call(command)
        if code != 0:
            print(f"error: seed {seed} stopped with exit code {code}", file=sys.stderr)
            break
        finished.append(args.out / f"{Path(args.preset).stem}-seed{seed}")
    if args.no_record:
        return code
    for run_dir in finished:
        try:
            written = record_if_new(run_dir, args.records)
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"{run_dir}: {'recorded' if written else 'already recorded'}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
