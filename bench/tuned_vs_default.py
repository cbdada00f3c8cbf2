"""Does tuning help? The tuned settings against the defaults over fresh seeds, on the test split.

    python bench/tuned_vs_default.py [--seeds 10] [--first-seed 1000] [--output bench/tuned_vs_default.json]

The tuner picks settings on the validation split with ``base.seed`` as it is in params.yaml.
What matters is whether those settings beat the defaults for seeds it never saw, on data it
never read. For each of ``--seeds`` fresh values of ``base.seed`` (``--first-seed`` on, spaced
``train.seeds`` apart so that no two runs share a member's seed, and away from params.yaml's
members), both settings train ``train.seeds`` members on ``data/prepared`` (run
``dvc repro`` first) and are scored on the test split: the served ensemble's RMSE divided by
persistence's, and each member's. Reports the mean, spread and paired difference, with a
paired t-test and a sign count; asserts nothing. The repo's outputs are only read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def tuned_params(params, best: dict):
    """params with the tuned values of reports/best_params.yaml."""
    from nextclose import study

    return study.with_trial_values(params, {f"{section}.{key}": value for (section, key), value in best.items()})


def test_ratios(params, data, test, seed: int) -> dict[str, object]:
    """Train with ``base.seed = seed``; the test RMSE / persistence of the ensemble and of each member."""
    import numpy as np

    from nextclose import evaluation, training

    started = time.perf_counter()
    result = training.train_model(data, params.model, params.train, seed)
    ensemble, members = evaluation.forecast_lstm(result.model, test)

    def ratio(forecast):
        return float(np.sqrt(np.mean((forecast - test.next_close) ** 2))
                     / np.sqrt(np.mean((test.last_close - test.next_close) ** 2)))

    return {"seed": seed, "ensemble": ratio(ensemble), "members": [ratio(m) for m in members],
            "steps_run": result.steps_run, "seconds": time.perf_counter() - started}


def summary(values) -> dict[str, float]:
    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
            "min": float(array.min()), "max": float(array.max())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="fresh values of base.seed (default 10)")
    parser.add_argument("--first-seed", type=int, default=1000, help="the first of them (default 1000)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "tuned_vs_default.json")
    args = parser.parse_args(argv)

    os.chdir(ROOT)  # nextclose.layout reads data/prepared and reports/ relative to the cwd
    sys.path.insert(0, str(ROOT / "src"))
    from scipy import stats

    from nextclose import layout
    from nextclose.params import load_params

    params = load_params(ROOT / "params.yaml")
    best = layout.read_best_params()
    settings = {"default": params, "tuned": tuned_params(params, best)}
    data, test = layout.read_training_data(), layout.read_windows()["test"]
    # Member i of a run uses base.seed + i: spacing the runs train.seeds apart keeps every
    # member's seed distinct, so the runs are independent draws.
    members = params.train.seeds
    seeds = [args.first_seed + index * members for index in range(args.seeds)]
    tuned_on = set(range(params.base.seed, params.base.seed + members))
    if tuned_on & {seed + i for seed in seeds for i in range(members)}:
        parser.error(f"--first-seed: the seeds must be fresh; params.yaml's members use {sorted(tuned_on)}")
    runs: dict[str, list] = {name: [] for name in settings}
    for seed in seeds:
        for name, chosen in settings.items():  # interleaved: both see the same load
            run = test_ratios(chosen, data, test, seed)
            runs[name].append(run)
            print(f"seed {seed} {name:>7}: ensemble {run['ensemble']:.4f}, members "
                  f"{min(run['members']):.4f} .. {max(run['members']):.4f} ({run['seconds']:.0f} s)", flush=True)

    default = [r["ensemble"] for r in runs["default"]]
    tuned = [r["ensemble"] for r in runs["tuned"]]
    differences = [t - d for t, d in zip(tuned, default)]
    test_result = stats.ttest_rel(tuned, default) if len(seeds) > 1 else None
    results = {
        "seeds": seeds,
        "members_per_run": params.train.seeds,
        "tuned_values": {f"{s}.{k}": v for (s, k), v in best.items()},
        "default_values": {f"{s}.{k}": getattr(getattr(params, s), k) for (s, k) in best},
        "ensemble_ratio": {"default": summary(default), "tuned": summary(tuned)},
        "member_ratio": {name: summary([m for r in runs[name] for m in r["members"]]) for name in settings},
        "tuned_minus_default": summary(differences),
        "tuned_better_on": sum(d < 0 for d in differences),
        "paired_t_p_value": None if test_result is None else float(test_result.pvalue),
        "runs": runs,
    }
    args.output.write_text(json.dumps(results, indent=2) + "\n")

    ens, diff = results["ensemble_ratio"], results["tuned_minus_default"]
    print()
    print(f"test RMSE / persistence over {len(seeds)} fresh seeds ({seeds[0]}..{seeds[-1]}), "
          f"{params.train.seeds} members per run:")
    for name in settings:
        values = ", ".join(f"{k} {v}" for k, v in results[f"{name}_values"].items())
        print(f"  {name:>7} ({values}): ensemble {ens[name]['mean']:.4f} ± {ens[name]['std']:.4f} "
              f"({ens[name]['min']:.4f} .. {ens[name]['max']:.4f}); members "
              f"{results['member_ratio'][name]['mean']:.4f} ± {results['member_ratio'][name]['std']:.4f}")
    p_value = results["paired_t_p_value"]
    print(f"  tuned - default: {diff['mean']:+.4f} ± {diff['std']:.4f}; tuned better on "
          f"{results['tuned_better_on']} of {len(seeds)} seeds; paired t-test p = "
          f"{'n/a' if p_value is None else f'{p_value:.3f}'}")
    better = diff["mean"] < 0 and p_value is not None and p_value < 0.05
    print("  verdict: " + ("the tuned settings beat the defaults on fresh seeds" if better else
                           "no evidence that the tuned settings beat the defaults on fresh seeds"))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
