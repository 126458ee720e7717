"""The long fuzz run: the CI fuzz suite's strategies (tests/fuzz/) with many more examples.

CI runs tests/fuzz with 12 derandomized examples per property (< 10 s).  This script runs the
same properties for a time budget, in rounds: each round is a pytest run of tests/fuzz in a
child process with ``MLCRAWL_FUZZ_EXAMPLES`` examples per property and fresh randomness
(``MLCRAWL_FUZZ_RANDOM=1``), under an address-space limit so a blow-up fails loudly instead of
swapping.  The first failing round stops the run and its report (with hypothesis's minimal
failing example and ``@reproduce_failure`` blob) is kept in --log; each bug found becomes a plain
regression test (tests/hostile/test_regressions.py) and a fix.

It prints, per round, the examples run and the wall time, and at the end the total fuzzing time
that found nothing.

Usage: python bench/fuzz.py [--minutes 10] [--examples 500] [--memory-mb 2048] [--log fuzz.log] [-k EXPR]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="time budget (rounds start until it is spent)")
    parser.add_argument("--examples", type=int, default=500, help="examples per property per round")
    parser.add_argument("--memory-mb", type=int, default=2048, help="address-space limit of each round")
    parser.add_argument("--log", type=Path, default=Path("fuzz.log"), help="where a failing round's report goes")
    parser.add_argument("-k", dest="select", help="only the properties matching this pytest -k expression")
    args = parser.parse_args()

    limit = args.memory_mb << 20
    env = dict(os.environ, MLCRAWL_FUZZ_EXAMPLES=str(args.examples), MLCRAWL_FUZZ_RANDOM="1")
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:warnings", "-p", "no:cacheprovider",
               str(ROOT / "tests" / "fuzz")]
    if args.select:
        command += ["-k", args.select]
    deadline = time.monotonic() + args.minutes * 60
    clean_seconds, rounds = 0.0, 0
    while time.monotonic() < deadline:
        started = time.monotonic()
        proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                              preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
        elapsed = time.monotonic() - started
        rounds += 1
        summary = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
        print(f"round {rounds}: {args.examples} examples per property, {elapsed:.0f} s: {summary}", flush=True)
        if proc.returncode != 0:
            args.log.write_text(proc.stdout + proc.stderr)
            print(f"failure after {clean_seconds:.0f} s of clean fuzzing; report in {args.log}")
            return 1
        clean_seconds += elapsed
    print(f"{rounds} rounds, {clean_seconds:.0f} s of fuzzing found nothing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
