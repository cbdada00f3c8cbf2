"""Does tuning help? The tuned settings against the defaults over fresh seeds, walking forward.

    python bench/tuned_vs_default.py [--seeds 10] [--first-seed 1000] [--output bench/results/tuned_vs_default.json]

The tuner picks settings on its folds (``tune.cv_folds``) with ``base.seed`` as it is in params.yaml.
What matters is whether those settings beat the defaults for seeds it never saw, on days it
never read. For each of ``--seeds`` fresh values of ``base.seed`` (``--first-seed`` on, spaced
``train.seeds`` apart so that no two runs share a member's seed, and away from params.yaml's
members), both settings (params.yaml as it is, and params.yaml with the values of
reports/best_params.yaml) are scored by the walk-forward backtest of ``nextclose backtest`` on
``data/prepared`` (run ``dvc repro`` first): the ensemble retrained before each fold, and the
figure is the pooled RMSE over persistence's of backtest.json (``pooled.rmse_ratio_persistence``).
The ARIMA baseline is skipped (``evaluate.arima`` false): it does not enter the figure, and
refitting it per fold for every run would only cost time.

Writes ``--output`` (through nextclose.atomic) with both lists of figures, the paired t-test's
p-value, the paired difference and a sign count, and prints a table and the verdict (that of
docs/results/tuning.md, ``nextclose.headline.render_tuning``); asserts nothing. The repo's
outputs are only read; ``make figures`` renders that page's block from the output.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "tuned_vs_default.json"


def tuned_params(params, best: dict):
    """params with the tuned values of reports/best_params.yaml (``{(section, key): value}``)."""
    from nextclose import study

    return study.with_trial_values(params, {f"{section}.{key}": value for (section, key), value in best.items()})


def without_arima(params):
    """params with ``evaluate.arima`` false: the bench's figure does not read the ARIMA baseline."""
    return dataclasses.replace(params, evaluate=dataclasses.replace(params.evaluate, arima=False))


def fresh_seeds(first: int, count: int, members: int, tuned_seed: int) -> list[int]:
    """``count`` values of ``base.seed`` from ``first``, ``members`` apart: member i of a run uses
    base.seed + i, so every member's seed is distinct and the runs are independent draws. Refuses
    seeds that reach the members of ``tuned_seed`` (params.yaml's base.seed, which the tuner saw)."""
    seeds = [first + index * members for index in range(count)]
    tuned_on = set(range(tuned_seed, tuned_seed + members))
    if tuned_on & {seed + i for seed in seeds for i in range(members)}:
        raise ValueError(f"the seeds must be fresh; params.yaml's members use {sorted(tuned_on)}")
    return seeds


def walk_forward(params, splits: dict, bars, feature_names: tuple[str, ...], seed: int) -> dict[str, Any]:
    """The walk-forward backtest of ``nextclose backtest`` with ``base.seed = seed``: ``ratio`` is the
    pooled RMSE / persistence's of the served ensemble (backtest.json's), with the per-fold figures,
    the members' spread and the seconds it took."""
    from nextclose import backtest, training
    from nextclose.features import PanelWindows

    started = time.perf_counter()
    samples = backtest.all_samples(splits)
    days, validation_days = backtest.resolve_lengths(params.backtest, splits)
    if isinstance(samples, PanelWindows):
        folds = backtest.plan_panel_folds(samples.target_dates, days, params.backtest.folds, validation_days)
        forecast_fold = backtest.forecast_panel_fold
    else:
        folds = backtest.plan_folds(len(samples.targets), days, params.backtest.folds, validation_days)
        forecast_fold = backtest.forecast_fold

    def train_ensemble(train, validation, normalisation):
        """The train stage's training on the fold's past, every fold from ``seed``."""
        return training.train_lstm(train, validation, normalisation, params.model, params.train, seed).model

    results = [forecast_fold(fold, samples, bars, feature_names, train_ensemble, params.evaluate) for fold in folds]
    report = backtest.report(results, params.evaluate, seed)
    members = report["seeds"].get("rmse_ratio_persistence")
    return {
        "seed": seed,
        "ratio": float(report["pooled"]["rmse_ratio_persistence"]),
        # the drift baseline on the same days: no training, so the same for every seed and setting
        "drift": float(report["baselines"]["drift"]["rmse_ratio_persistence"]),
        "folds": [fold["rmse_ratio_persistence"] for fold in report["folds"]],
        "members": members if isinstance(members, dict) else None,
        "seconds": time.perf_counter() - started,
    }


def summary(values) -> dict[str, float]:
    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
            "min": float(array.min()), "max": float(array.max())}


def paired_p_value(tuned: list[float], default: list[float]) -> float | None:
    """The two-sided paired t-test's p of tuned against default; None when undefined (fewer than
    two seeds, or the same figures throughout)."""
    import math

    from scipy import stats

    if len(tuned) < 2:
        return None
    p_value = float(stats.ttest_rel(tuned, default).pvalue)
    return None if math.isnan(p_value) else p_value


def head_commit() -> str | None:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="fresh values of base.seed (default 10)")
    parser.add_argument("--first-seed", type=int, default=1000, help="the first of them (default 1000)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="the results (default bench/results/tuned_vs_default.json)")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds: at least 1 (the t-test needs 2)")
    output = args.output.resolve()

    os.chdir(ROOT)  # nextclose.layout reads data/prepared and reports/ relative to the cwd
    sys.path.insert(0, str(ROOT / "src"))
    import tensorflow as tf
    import yaml

    from nextclose import atomic, headline, layout
    from nextclose.params import load_params

    tf.get_logger().setLevel(logging.ERROR)  # each fold traces its own functions
    started = time.perf_counter()
    params = without_arima(load_params(ROOT / "params.yaml"))
    best = layout.read_best_params()
    study = yaml.safe_load(layout.BEST_PARAMS_FILE.read_text())
    settings = {"default": params, "tuned": tuned_params(params, best)}
    try:
        seeds = fresh_seeds(args.first_seed, args.seeds, params.train.seeds, params.base.seed)
    except ValueError as error:
        parser.error(f"--first-seed: {error}")
    splits, bars = layout.read_windows(), layout.read_prepared_bars()
    names = layout.read_normalisation().feature_names
    print(f"{len(seeds)} seeds x 2 settings, each a walk-forward backtest of {params.backtest.folds} folds on "
          f"data/prepared; the ARIMA baseline is skipped (evaluate.arima false): it is not in the figure", flush=True)

    # When the study's best is its baseline trial (tune.baseline_trial), tuning kept the defaults:
    # the two settings are one, and training is deterministic, so each seed is trained once.
    same_settings = settings["tuned"] == settings["default"]
    if same_settings:
        print("the tuned values are the defaults (the study's best is its baseline trial): "
              "each seed is scored once, for both", flush=True)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in settings}
    for seed in seeds:
        for name, chosen in settings.items():  # interleaved: both see the same load
            if same_settings and name == "tuned":
                runs[name].append(runs["default"][-1])
                continue
            run = walk_forward(chosen, splits, bars, names, seed)
            runs[name].append(run)
            print(f"seed {seed} {name:>7}: {run['ratio']:.4f} (folds "
                  f"{', '.join(f'{r:.3f}' for r in run['folds'])}; {run['seconds']:.0f} s)", flush=True)

    tuned = [run["ratio"] for run in runs["tuned"]]
    default = [run["ratio"] for run in runs["default"]]
    differences = [t - d for t, d in zip(tuned, default)]
    difference = summary(differences)
    document = {
        "seeds": seeds,
        "tuned": tuned,
        "default": default,
        "tuned_params": {f"{section}.{key}": value for (section, key), value in best.items()},
        "default_params": {f"{section}.{key}": getattr(getattr(params, section), key) for (section, key) in best},
        "p_value": paired_p_value(tuned, default),
        "same_settings": same_settings,
        "drift": runs["default"][0]["drift"],
        "study_name": study.get("study_name"),
        "best_value": study.get("best_value"),
        "commit": head_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        "figure": headline.TUNING_FIGURE,
        "difference": {"mean": difference["mean"], "std": difference["std"]},
        "tuned_better": sum(d < 0 for d in differences),
        "seconds": round(time.perf_counter() - started, 1),
    }
    atomic.write_json(output, document)

    print()
    print(f"{headline.TUNING_FIGURE}, over {len(seeds)} fresh seeds ({seeds[0]} .. {seeds[-1]}), "
          f"{params.train.seeds} members per run, ARIMA skipped:")
    rows = {f"{name} ({', '.join(f'{key} {value:g}' for key, value in document[f'{name}_params'].items())})":
            summary(values) for name, values in (("tuned", tuned), ("default", default))}
    width = max(len(label) for label in rows) + 2
    print(f"  {'settings':<{width}}{'mean':>8}{'std':>8}{'min':>8}{'max':>8}")
    for label, figures in rows.items():
        print(f"  {label:<{width}}{figures['mean']:>8.4f}{figures['std']:>8.4f}{figures['min']:>8.4f}"
              f"{figures['max']:>8.4f}")
    p_value = document["p_value"]
    print(f"  tuned - default: {difference['mean']:+.4f} ± {difference['std']:.4f}; tuned better on "
          f"{document['tuned_better']} of {len(seeds)} seeds; paired t-test p = "
          f"{'n/a' if p_value is None else f'{p_value:.4g}'}")
    print(f"  verdict: {headline.tuning_verdict(document)}")
    print(f"wrote {output} ({document['seconds'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
