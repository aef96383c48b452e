"""A long schemathesis run by hand: the CI fuzzing of the OpenAPI document, with more examples.

Runs ``tests/api/test_schemathesis.py`` (the same service, state, phases and checks as in
CI; its docstring says what they are) with ``--max-examples`` examples per operation and
phase instead of CI's handful, and without the per-test timeout. Never run in CI::

    .venv/bin/python bench/fuzz.py                           # 1000 examples per operation
    .venv/bin/python bench/fuzz.py --max-examples 5000 -k manage
    .venv/bin/python bench/fuzz.py --all-checks              # the known failures count too
    .venv/bin/python bench/fuzz.py --seed 7                  # other cases than CI's

``--all-checks`` also makes the checks the test's ``KNOWN_FAILURES`` excludes, to see
whether they are fixed. Arguments after the options go to pytest (``-k``, ``-x``, ``-v``).
Without ``--seed`` the run is as deterministic as CI's (derandomized); with one it explores
other cases, the same ones for the same seed. The exit status is pytest's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/api/test_schemathesis.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=1000, help="per operation and phase")
    parser.add_argument(
        "--all-checks", action="store_true", help="also run the checks KNOWN_FAILURES excludes"
    )
    parser.add_argument("--seed", type=int, help="explore other cases than the derandomized run")
    options, pytest_args = parser.parse_known_args()
    env = {**os.environ, "FUZZ_MAX_EXAMPLES": str(options.max_examples)}
    if options.seed is not None:
        env["FUZZ_SEED"] = str(options.seed)
    if options.all_checks:
        env["FUZZ_ALL_CHECKS"] = "1"
    command = [
        sys.executable,
        "-m",
        "pytest",
        TEST,
        "-p",
        "no:cacheprovider",
        "--timeout=0",
        "-q",
        *pytest_args,
    ]
    print(f"fuzzing with {options.max_examples} examples per operation: {' '.join(command)}")
    started = time.monotonic()
    status = subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
    print(f"done in {time.monotonic() - started:.0f} s, pytest exit status {status}")
    return status


if __name__ == "__main__":
    sys.exit(main())
