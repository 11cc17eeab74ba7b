"""Run one recipe for several seeds, one after another or side by side; record each finished run.

    .venv/bin/python benchmarks/run_seeds.py PRESET --seeds 0 1 2 [--out runs/records]
        [--set KEY=VALUE ...] [--no-record] [--jobs N]

Each seed trains as `classicnets train --preset PRESET --set train.seed=S
--set train.run_name=PRESET-seedS --out OUT`, so running the same command again resumes an
interrupted seed from its last checkpoint and skips finished ones. The finished runs are then
appended to benchmarks/records.csv (record_run.py), unless there already, after the last seed
(or the first that fails): written between seeds, records.csv would make the checkout dirty and
every later seed record a "-dirty" commit. This is the
final-number protocol of docs/experiments.md: the preset trains on the whole training split
(data.val_fraction 0) and its test split is scored once, at the end. To tune, pass
`--set data.val_fraction=0.1 --no-record` (the fixed 5,000-image val split, split_seed 0).

`--jobs N` trains N seeds at a time, each with `OMP_NUM_THREADS` = cores // N and its output in
OUT/PRESET-seedS.log. Whether that pays depends on the machine: measure it there (on a 2-core
Xeon with AMX, two 1-thread processes side by side trained 1.16x the images per second of one
2-thread process; benchmarks/RESULTS.md, "Seeds side by side"). A failed seed stops new seeds
from starting; the ones running finish and are recorded.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from classicnets.errors import UserError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record_run import RECORDS, append_records, read_records, read_run, record_row, run_identity


def run_name(preset: str, seed: int) -> str:
    return f"{Path(preset).stem}-seed{seed}"


def train_command(preset: str, seed: int, out: Path, overrides: Sequence[str]) -> list[str]:
    name = run_name(preset, seed)
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


def train_seeds(
    preset: str, seeds: Sequence[int], out: Path, overrides: Sequence[str], jobs: int
) -> tuple[list[int], int]:
    """Train the seeds, `jobs` at a time; (the seeds that finished, in order; the first failing
    exit code or 0). Once a seed fails, seeds not yet started are skipped."""
    failed: list[int] = []  # exit codes, in the order they came
    lock = threading.Lock()
    env = None
    if jobs > 1:
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // jobs))}
        out.mkdir(parents=True, exist_ok=True)

    def train(seed: int) -> bool:
        with lock:
            if failed:
                return False
        command = train_command(preset, seed, out, overrides)
        print("$ " + " ".join(command), flush=True)
        if env is None:
            code = subprocess.call(command)
        else:
            log = out / f"{run_name(preset, seed)}.log"
            print(f"  seed {seed}: output in {log}", flush=True)
            with log.open("a") as stream:
                code = subprocess.call(command, env=env, stdout=stream, stderr=subprocess.STDOUT)
        if code != 0:
            print(f"error: seed {seed} stopped with exit code {code}", file=sys.stderr)
            with lock:
                failed.append(code)
        return code == 0

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        done = list(pool.map(train, seeds))
    return [seed for seed, ok in zip(seeds, done, strict=True) if ok], (failed[0] if failed else 0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("preset")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/records"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--records", type=Path, default=RECORDS)
    parser.add_argument("--no-record", action="store_true", help="train only (tuning runs)")
    parser.add_argument("--jobs", type=int, default=1, help="seeds trained at a time (default 1)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    seeds, code = train_seeds(args.preset, args.seeds, args.out, args.overrides, args.jobs)
    finished = [args.out / run_name(args.preset, seed) for seed in seeds]
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
