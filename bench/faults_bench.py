"""The fault script: inject every fault of the suite for real on one lab, print how many were
injected and how many the project survived.

Run as root (S2S_LAB_PREFIX set if another lab runs beside yours):

    python bench/faults_bench.py [-k EXPR]

It runs tests/e2e/test_faults.py (one lab boot; each fault then its clean run, a zero-change
plan, the user's state and a ping across), one pytest per call, and reads the suite's own
tally. A fault counts as survived only when everything after it held; the figures are the
faults injected, survived, and the wall time. Exit 0 when every injected fault was survived.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TALLY = re.compile(r"faults injected: (\d+), survived: (\d+) \((.*)\)")
SUITE = "tests/e2e/test_faults.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default=None, help="only the faults matching this pytest expression")
    args = parser.parse_args()
    started = time.monotonic()
    cmd = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", SUITE]
    if args.k:
        cmd += ["-k", f"({args.k}) or injected_and_survived"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    took = time.monotonic() - started
    failed = re.findall(r"^FAILED \S+::(\S+)", result.stdout, re.M)
    tally = TALLY.search(result.stdout)
    # The tally counts the faults whose tests got past their fault; a failed test's fault is
    # injected but not survived.
    survived = tally.group(3).split("; ") if tally and tally.group(3) else []
    injected = len(survived) + len([f for f in failed if "injected_and_survived" not in f])
    print(f"faults injected: {injected}, survived: {len(survived)}, in {took:.0f} s")
    for name in survived:
        print(f"  survived: {name}")
    for name in failed:
        print(f"  FAILED: {name}")
    if tally is None and result.returncode != 0:
        print(result.stdout[-3000:] + result.stderr[-2000:], file=sys.stderr)
    return 0 if injected and injected == len(survived) and result.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
