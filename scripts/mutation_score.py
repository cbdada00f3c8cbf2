"""Print the mutation score per module from mutmut's results (run from the project root).

mutmut 3 keeps each mutated module's results in ``mutants/src/<path>.py.meta``: a JSON map
from mutant to the exit code of the tests that ran against it. Usage: ``make mutate``, or
``python scripts/mutation_score.py`` after ``mutmut run``.
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

KILLED = {1, 3}  # the tests failed, or pytest itself did: the mutant was caught
NO_TESTS = {5, 33}  # no test reached the mutated function
TIMEOUTS = {36, -24, 24, 152, 255}


def outcome(code: object) -> str:
    if code is None:
        return "not checked"
    if code in KILLED:
        return "killed"
    if code == 0:
        return "survived"
    if code in NO_TESTS:
        return "no tests"
    return "timeout" if code in TIMEOUTS else "other"


def main(root: Path = Path("mutants")) -> int:
    totals: collections.Counter[str] = collections.Counter()
    metas = sorted(root.rglob("*.py.meta"))
    if not metas:
        print(f"no results under {root}/: run `make mutate` (or `mutmut run`) first", file=sys.stderr)
        return 1
    for meta in metas:
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if not codes:
            continue
        counts = collections.Counter(outcome(code) for code in codes.values())
        checked = sum(counts.values()) - counts["not checked"]
        share = 100.0 * counts["killed"] / checked if checked else 0.0
        details = ", ".join(f"{k} {counts[k]}" for k in ("survived", "no tests", "timeout", "not checked") if counts[k])
        print(f"{meta.relative_to(root).with_suffix('')}: {counts['killed']} of {checked} mutants killed "
              f"({share:.1f}%){'; ' + details if details else ''}")
        totals += counts
    checked = sum(totals.values()) - totals["not checked"]
    if checked:
        print(f"all: {totals['killed']} of {checked} mutants killed ({100.0 * totals['killed'] / checked:.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
