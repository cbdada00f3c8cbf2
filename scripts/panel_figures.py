"""The panel figures of docs/results/panel.md: the pipeline on the 20 S&P 500 stocks, from a clean
clone of HEAD.

    make panel-figures      # or: python scripts/panel_figures.py, then make figures

Clones this repository's HEAD into a temporary directory, sets ``data.source: sp500`` and
``features.volume: false`` (the stocks are close-only) in its params.yaml, runs ``dvc repro
evaluate backtest`` there (tuning is not part of the figures) and copies the reports into
``bench/results/sp500/`` with ``run.json`` (the commit, the overrides, the date, the time taken).
``make figures`` renders the page's panel block from that directory (nextclose.results_pages), and
tests/test_results_pages.py recomputes its figures from the tables beside them. The workspace's
own reports stay the single series'.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from nextclose import atomic  # noqa: E402

DESTINATION = ROOT / "bench" / "results" / "sp500"
OVERRIDES = {"data.source": "sp500", "features.volume": False}
# What the page's panel block and its tests read: the summaries and the tables they recompute from.
REPORTS = ("metrics.json", "backtest.json", "cross_section.json", "cross_section.csv",
           "backtest_cross_section.csv", "panel_predictions.csv", "backtest.csv")


def main() -> int:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="nextclose-sp500-") as scratch:
        clone = Path(scratch) / "clone"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        params = yaml.safe_load((clone / "params.yaml").read_text())
        for key, value in OVERRIDES.items():
            section, name = key.split(".")
            params[section][name] = value
        atomic.write_text(clone / "params.yaml", yaml.safe_dump(params, sort_keys=False))
        # the clone's own code, whatever this environment has installed
        env = os.environ | {"PYTHONPATH": str(clone / "src")}
        started = time.perf_counter()
        subprocess.run(["dvc", "repro", "evaluate", "backtest"], cwd=clone, env=env, check=True)
        seconds = time.perf_counter() - started
        DESTINATION.mkdir(parents=True, exist_ok=True)
        for name in REPORTS:
            atomic.write_text(DESTINATION / name, (clone / "reports" / name).read_text())
    run = {"commit": commit, "overrides": OVERRIDES, "command": "dvc repro evaluate backtest",
           "date": dt.date.today().isoformat(), "seconds": round(seconds)}
    atomic.write_json(DESTINATION / "run.json", run)
    print(f"{DESTINATION.relative_to(ROOT)}: the reports of {commit[:7]} on sp500 ({seconds / 60:.1f} min); "
          f"now `make figures`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
