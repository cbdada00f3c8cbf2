"""Print the mutation score per module from mutmut's results (run from the project root).

mutmut 3 keeps each mutated module's results in ``mutants/src/<path>.py.meta``: a JSON map
from mutant to the exit code of the tests that ran against it. Survivors that cannot change
what the code does are listed, each with its reason, in ``mutation-equivalents.md``; the score
is printed raw and with those left out. Usage: ``make mutate``, or
``python scripts/mutation_score.py`` after ``mutmut run``; with ``--write`` it also writes the
counts per module to ``bench/results/mutation.json``, from which ``make figures`` renders the
table of docs/results/mutation.md (commit that file: ``mutants/`` is not).
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from nextclose import atomic  # noqa: E402

KILLED = {1, 3}  # the tests failed, or pytest itself did: the mutant was caught
NO_TESTS = {5, 33}  # no test reached the mutated function
TIMEOUTS = {36, -24, 24, 152, 255}
EQUIVALENTS = Path("mutation-equivalents.md")
SUMMARY = Path("bench/results/mutation.json")
# One line per equivalent mutant: "- `<mutant name>`: <reason>"
LISTED = re.compile(r"^- `(?P<name>[^`]+)`: (?P<reason>\S.*)$")


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


def listed_equivalents(path: Path) -> dict[str, str]:
    """Mutant name -> reason, from the equivalents file (none if it is missing)."""
    if not path.exists():
        return {}
    return {m["name"]: m["reason"] for m in map(LISTED.match, path.read_text().splitlines()) if m}


def share(killed: int, checked: int) -> str:
    return f"{killed} of {checked} mutants killed ({100.0 * killed / checked:.1f}%)" if checked else "not run"


def module_counts(codes: dict[str, object], equivalents: dict[str, str]) -> dict[str, object]:
    """One module's outcomes counted, and how many of its survivors are listed as equivalent."""
    return {"outcomes": dict(collections.Counter(outcome(code) for code in codes.values())),
            "equivalent": sum(outcome(code) == "survived" and name in equivalents for name, code in codes.items())}


def summary(modules: dict[str, dict[str, object]], commit: str, date: str) -> dict[str, object]:
    """What ``bench/results/mutation.json`` holds (nextclose.bench_figures.render_mutation reads it)."""
    return {"commit": commit, "date": date, "modules": modules}


def main(argv: list[str] | None = None, root: Path = Path("mutants"), equivalents_file: Path = EQUIVALENTS) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"also write the counts to {SUMMARY}")
    args = parser.parse_args(argv)
    metas = sorted(root.rglob("*.py.meta"))
    if not metas:
        print(f"no results under {root}/: run `make mutate` (or `mutmut run`) first", file=sys.stderr)
        return 1
    equivalents = listed_equivalents(equivalents_file)
    totals: collections.Counter[str] = collections.Counter()
    outcomes: dict[str, str] = {}
    modules: dict[str, dict[str, object]] = {}
    for meta in metas:
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if not codes:
            continue
        counts = module_counts(codes, equivalents)
        module = collections.Counter(counts["outcomes"])
        equivalent = counts["equivalent"]
        path = meta.relative_to(root).with_suffix("")
        modules[path.name] = counts | {
            "date": dt.datetime.fromtimestamp(meta.stat().st_mtime, dt.timezone.utc).date().isoformat()}
        outcomes.update((name, outcome(code)) for name, code in codes.items())
        checked = sum(module.values()) - module["not checked"]
        details = ", ".join(f"{k} {module[k]}" for k in ("survived", "no tests", "timeout", "other", "not checked")
                            if module[k])
        print(f"{path}: {share(module['killed'], checked)}{'; ' + details if details else ''}")
        if equivalent:
            print(f"    without the {equivalent} listed equivalent: {share(module['killed'], checked - equivalent)}")
        totals += module
        totals["equivalent"] += equivalent
    checked = sum(totals.values()) - totals["not checked"] - totals["equivalent"]
    if checked:
        print(f"all: {share(totals['killed'], checked)}")
        print(f"all without the {totals['equivalent']} listed equivalent: "
              f"{share(totals['killed'], checked - totals['equivalent'])}")
    # A listed mutant that the tests kill now, or that no longer exists, should leave the list.
    for name in sorted(equivalents):
        if outcomes.get(name, "gone") not in ("survived", "not checked"):
            print(f"{equivalents_file}: {name} is listed as equivalent but is "
                  f"{outcomes.get(name, 'not a mutant (any more)')}", file=sys.stderr)
    if args.write:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, check=True, capture_output=True,
                                text=True).stdout.strip()
        atomic.write_json(SUMMARY, summary(modules, commit, dt.date.today().isoformat()))
        print(f"wrote {SUMMARY}; now `make figures`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
