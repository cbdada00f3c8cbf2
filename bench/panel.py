"""The panel benchmark: the default model trained across 20 stocks; prints figures and ratios,
asserts nothing.

    python bench/panel.py [--rounds 2] [--evaluations 4] [--output bench/panel.json]

1. ``nextclose prepare`` of ``data.source: sp500`` from its first day (20 stocks x 8,313
   days, 1990-2022, close-only) in a temporary workspace: wall time.
2. Training speed: ``nextclose.training.train_lstm`` with the default params (``train.seeds``
   members, batch 64) on that panel's training windows and on the default single series' (the
   repo's data/prepared, MSFT), interleaved in ``--rounds`` rounds, medians. Windows per second
   count every member's batch (``steps x batch_size x members / s``) between the first
   evaluation after compiling and the last, so the periodic validation and training losses,
   which grow with the data, are inside the figure. Target: the panel at least as many windows
   per second as the single series. Cores used: process CPU time over wall time in that span.
3. Peak RSS and wall time of ``nextclose train`` on the panel with the default params (all
   3,000 steps), through bench/peak_rss.py; target <= 2 GiB.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from run import child_env, init_mlflow, machine, peak_rss  # noqa: E402  (bench/run.py's helpers)


def panel_workspace() -> Path:
    """A temp dir with params.yaml set to the whole sp500 panel, prepared there."""
    work = Path(tempfile.mkdtemp(prefix="nextclose-bench-panel-"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(source="sp500", start=None, end=None)
    params["features"]["volume"] = False  # the panel holds closes only
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return work


def windows_per_second(data, params, evaluations: int) -> dict[str, float]:
    """The default ensemble's training rate on ``data`` (no early stopping)."""
    from nextclose import training

    train = dataclasses.replace(params.train, patience=None, steps=params.train.eval_every * evaluations)
    stamps: list[tuple[float, float, int]] = []
    training.train_lstm(
        data.train, data.validation, data.normalisation, params.model, train, params.base.seed,
        on_point=lambda point: stamps.append((time.perf_counter(), time.process_time(), point.step)),
    )
    (t0, c0, s0), (t1, c1, s1) = stamps[1], stamps[-1]  # stamps[0] is step 0, before any training
    return {
        "windows_per_second": (s1 - s0) * train.batch_size * train.seeds / (t1 - t0),
        "steps_per_second": (s1 - s0) / (t1 - t0),
        "cores_used": (c1 - c0) / (t1 - t0),
        "timed_steps": s1 - s0,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--evaluations", type=int, default=4, help="evaluations timed per training run")
    parser.add_argument("--output", default=str(ROOT / "bench" / "panel.json"))
    args = parser.parse_args(argv)

    from nextclose import layout
    from nextclose.params import load_params

    work = panel_workspace()
    uri = f"sqlite:///{work / 'mlflow.db'}"
    try:
        init_mlflow(uri)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "nextclose", "prepare"], cwd=work, check=True,
                       env=child_env(MLFLOW_TRACKING_URI=uri), capture_output=True)
        prepare_seconds = time.perf_counter() - started
        summary = layout.read_summary(work / "data" / "prepared")
        params = load_params(ROOT / "params.yaml")
        sides = {
            "panel": layout.read_training_data(work / "data" / "prepared"),
            "single": layout.read_training_data(ROOT / "data" / "prepared"),
        }
        rates: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
        for round_number in range(args.rounds):
            for name, data in sides.items():
                rates[name].append(windows_per_second(data, params, args.evaluations))
                print(f"round {round_number + 1}: {name}: {rates[name][-1]['windows_per_second']:,.0f} windows/s",
                      flush=True)
        medians = {name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
                   for name, runs in rates.items()}
        train = peak_rss([sys.executable, "-m", "nextclose", "train"], work, child_env(MLFLOW_TRACKING_URI=uri),
                         work / "train.log")
        if train["returncode"] != 0:
            sys.stderr.write((work / "train.log").read_text()[-4000:])
            return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ratio = medians["panel"]["windows_per_second"] / medians["single"]["windows_per_second"]
    peak_mib = train["ru_maxrss_kib"] / 1024
    result = {
        "machine": machine(),
        "load_average": os.getloadavg(),
        "panel": {"symbols": len(summary["panel"]["symbols"]), "rows": summary["rows"],
                  "train_samples": summary["splits"]["train"]["samples"],
                  "first_date": summary["first_date"], "last_date": summary["last_date"]},
        "single_train_samples": int(len(sides["single"].train.targets)),
        "prepare_seconds": prepare_seconds,
        "rounds": rates,
        "medians": medians,
        "windows_per_second_ratio": ratio,
        "train_peak_rss_mib": peak_mib,
        "train_wall_seconds": train["wall_seconds"],
    }
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    panel, single = medians["panel"], medians["single"]
    print(f"panel: {result['panel']['symbols']} symbols, {result['panel']['rows']:,} rows "
          f"({result['panel']['first_date']} .. {result['panel']['last_date']}), "
          f"{result['panel']['train_samples']:,} training windows; prepare {prepare_seconds:.1f} s")
    print(f"training, panel : {panel['windows_per_second']:>10,.0f} windows/s, {panel['cores_used']:.2f} cores")
    print(f"training, single: {single['windows_per_second']:>10,.0f} windows/s, {single['cores_used']:.2f} cores "
          f"({result['single_train_samples']:,} training windows)")
    print(f"ratio panel / single: {ratio:.2f}x (target >= 1: {'met' if ratio >= 1 else 'MISSED'})")
    print(f"nextclose train on the panel: peak RSS {peak_mib:,.0f} MiB (target <= 2048: "
          f"{'met' if peak_mib <= 2048 else 'MISSED'}), {train['wall_seconds']:.0f} s")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
