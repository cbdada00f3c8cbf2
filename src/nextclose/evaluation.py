"""Scoring a trained model against naive forecasts: values in, a report out.

For the default model, on the test split only: the model and three baselines
(persistence, drift, ARIMA), each a one-step forecast of the next close from
the closes up to today, scored by :mod:`nextclose.metrics`, and tested against
persistence by :mod:`nextclose.significance` (Diebold-Mariano, Pesaran-Timmermann,
a block-bootstrap interval of the RMSE ratio); the model's forecasts get
split-conformal intervals calibrated on the validation split. For the tutorial
kind, which has no held-out data, the in-sample figures, labelled as such.
The walk-forward backtest (:mod:`nextclose.backtest`) reuses these pieces.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd

from nextclose import metrics, significance
from nextclose.errors import DataError
from nextclose.features import Windows
from nextclose.params import EvaluateParams

BASELINES = ("persistence", "drift", "arima")
# Always all of them, a forecast not made left empty: a DVC plot that names a missing
# column draws nothing at all, an empty column just draws no line.
PREDICTION_COLUMNS = ("date", "actual", "model", *BASELINES, "lower", "upper")
# A claim of skill needs a one-sided p-value below this.
SKILL_P_VALUE = 0.05
TUTORIAL_LABEL = "in-sample: the tutorial trains and scores on the same days; it has no held-out data"


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Everything evaluate computes, before anything is written or logged."""

    report: dict[str, Any]  # the content of metrics.json
    predictions: pd.DataFrame  # PREDICTION_COLUMNS; a baseline not computed is NaN
    fitted: dict[str, Any]  # what the baselines learned from the training split


def training_closes(bars: pd.DataFrame) -> np.ndarray:
    """The closes of the training rows: all that drift, MASE's scale and ARIMA may learn from."""
    return bars.loc[bars["split"] == "train", "close"].to_numpy(dtype=np.float64)


def forecast_lstm(network: Any, windows: Windows) -> tuple[np.ndarray, np.ndarray]:
    """The next-close forecasts of the served ensemble and of each member ``[members, n]``:
    the model predicts log returns on the last close."""
    ensemble = np.asarray(network(windows.inputs), dtype=np.float64).reshape(-1)
    members = np.asarray(network.member_outputs(windows.inputs), dtype=np.float64)
    return (metrics.closes_from_log_returns(windows.last_close, ensemble),
            np.stack([metrics.closes_from_log_returns(windows.last_close, m) for m in members]))


def later_closes(bars: pd.DataFrame, test: Windows) -> tuple[np.ndarray, int]:
    """The closes after the training rows and the index of the first test target among them,
    checked against the test samples so ARIMA's forecasts line up with the model's."""
    later = bars.loc[bars["split"] != "train"]
    dates = pd.to_datetime(later["date"]).to_numpy().astype("datetime64[D]")
    first_target = int(np.searchsorted(dates, test.target_dates[0]))
    closes = later["close"].to_numpy(dtype=np.float64)
    targets = closes[first_target:]
    if (
        first_target < 1
        or not np.array_equal(dates[first_target:], test.target_dates)
        or not np.allclose(targets, test.next_close)
        or not np.allclose(closes[first_target - 1 : -1], test.last_close)
    ):
        raise DataError("data/prepared: bars.csv and windows.npz disagree on the test days; rerun prepare")
    return closes, first_target


def against_persistence(
    last_close: np.ndarray, actual: np.ndarray, forecast: np.ndarray, persistence: np.ndarray,
    params: EvaluateParams, seed: int,
) -> dict[str, Any]:
    """Is ``forecast`` better than persistence beyond chance? The one-sided Diebold-Mariano
    p-values on squared and on absolute errors, the Pesaran-Timmermann p-value of its up /
    not-up calls, and a moving-block bootstrap 95% interval of its RMSE ratio."""
    errors, reference = forecast - actual, persistence - actual
    block = min(params.block_length, len(actual))
    return {
        "dm_p_value": significance.diebold_mariano(errors, reference, "squared"),
        "dm_abs_p_value": significance.diebold_mariano(errors, reference, "absolute"),
        "pt_p_value": significance.pesaran_timmermann(
            metrics.rises(last_close, actual), metrics.rises(last_close, forecast)),
        "rmse_ratio_ci95": list(significance.rmse_ratio_interval(
            errors, reference, block, params.bootstrap_draws, seed)),
    }


def interval_figures(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray, level: float) -> dict[str, float]:
    """How often the intervals held the actual close, against the level they were built for,
    and how wide they were on average (price units)."""
    return {
        "interval_nominal": float(level),
        "interval_coverage": significance.interval_coverage(actual, lower, upper),
        "interval_width_mean": float(np.mean(np.asarray(upper) - np.asarray(lower))),
    }


def score_forecasts(
    test: Windows, forecasts: dict[str, np.ndarray], train_closes: Optional[np.ndarray] = None,
    member_forecasts: Optional[np.ndarray] = None, tests: Optional[tuple[EvaluateParams, int]] = None,
    interval: Optional[tuple[np.ndarray, np.ndarray, float]] = None, *,
    scale: Optional[float] = None, tested: Optional[Callable[[np.ndarray], dict[str, Any]]] = None,
) -> dict[str, Any]:
    """The metrics.json of the default model: the model's (the served ensemble's) scores at
    the top level, each baseline's under ``baselines``, all on the same test days, and the
    spread of the members' own scores under ``seeds``. With ``tests`` (the params and the
    bootstrap's seed), each forecaster's tests against persistence; with ``interval``
    (lower, upper, level), the model's interval coverage and width. A panel passes its own
    MASE ``scale`` instead of ``train_closes``, and its own tests as ``tested``."""
    if scale is None:
        assert train_closes is not None
        scale = metrics.naive_scale(train_closes)
    scores = {
        name: metrics.score(test.last_close, test.next_close, values, scale)
        for name, values in forecasts.items()
    }
    persistence_rmse = scores["persistence"]["rmse"]
    for name, values in scores.items():
        values["rmse_ratio_persistence"] = values["rmse"] / persistence_rmse
        if tests is not None and name != "persistence":
            values.update(against_persistence(
                test.last_close, test.next_close, forecasts[name], forecasts["persistence"], *tests))
        elif tested is not None and name != "persistence":
            values.update(tested(forecasts[name]))
    report: dict[str, Any] = {
        "n_test": int(len(test.next_close)),
        **scores["model"],
        "majority_class_rate": metrics.majority_class_rate(test.last_close, test.next_close),
    }
    if interval is not None:
        report.update(interval_figures(test.next_close, *interval))
    report["baselines"] = {name: scores[name] for name in forecasts if name != "model"}
    if member_forecasts is not None:
        report["seeds"] = seed_spread(test, member_forecasts, scale, persistence_rmse)
    return report


# The figures whose spread over the members metrics.json reports.
SEED_KEYS = (*metrics.SCORE_KEYS, "rmse_ratio_persistence")


def seed_spread(test: Windows, member_forecasts: np.ndarray, scale: float, persistence_rmse: float) -> dict[str, Any]:
    """``{"count": K, "<figure>": {"mean", "std", "min", "max"}, ...}`` over the members, each
    member scored alone as if it were the model, and how many of them beat persistence."""
    member_scores = [metrics.score(test.last_close, test.next_close, values, scale) for values in member_forecasts]
    for values in member_scores:
        values["rmse_ratio_persistence"] = values["rmse"] / persistence_rmse
    return {
        "count": len(member_scores),
        **{key: metrics.spread([values[key] for values in member_scores]) for key in SEED_KEYS},
        "beat_persistence": sum(values["rmse_ratio_persistence"] < 1.0 for values in member_scores),
    }


def evaluate_lstm(
    network: Any, bars: pd.DataFrame, validation: Windows, test: Windows, params: EvaluateParams, seed: int
) -> Evaluation:
    """Forecast every test day with the model and the baselines, and score them. The model's
    intervals are calibrated on its forecasts of the validation days (``seed`` seeds the
    bootstrap)."""
    train_closes = training_closes(bars)
    rate = metrics.drift_rate(train_closes)
    ensemble, members = forecast_lstm(network, test)
    calibration, _ = forecast_lstm(network, validation)
    lower, upper = significance.conformal_log_interval(validation.next_close, calibration, ensemble, params.interval)
    forecasts = {
        "model": ensemble,
        "persistence": metrics.persistence_forecast(test.last_close),
        "drift": metrics.drift_forecast(test.last_close, rate),
    }
    fitted: dict[str, Any] = {"drift_rate": rate, "naive_scale": metrics.naive_scale(train_closes)}
    if params.arima:
        later, first_target = later_closes(bars, test)
        arima = metrics.arima_forecasts(
            train_closes, later, first_target, params.arima_max_p, params.arima_max_q
        )
        forecasts["arima"] = arima.forecasts
        fitted["arima_order"] = str(arima.order)
        fitted["arima_with_intercept"] = arima.with_intercept
    predictions = pd.DataFrame(
        {"date": pd.to_datetime(test.target_dates).strftime("%Y-%m-%d"), "actual": test.next_close}
        | forecasts | {"lower": lower, "upper": upper}
    ).reindex(columns=PREDICTION_COLUMNS)
    report = score_forecasts(test, forecasts, train_closes, members, tests=(params, seed),
                             interval=(lower, upper, params.interval))
    return Evaluation(report, predictions, fitted)


def as_panel_predictions(predictions: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """A single series' predictions as ``reports/panel_predictions.csv`` has them: a panel of one."""
    return predictions.assign(symbol=symbol).reindex(
        columns=["date", "symbol", "actual", "model", "persistence", "lower", "upper"])


def evaluate_tutorial(
    network: Any, x: np.ndarray, y: np.ndarray, trained_x: np.ndarray, final_cost: float,
    target_dates: np.ndarray,
) -> Evaluation:
    """The in-sample figures of the tutorial's network, against persistence on the same days.

    ``x``/``y`` are the prepared data; ``trained_x`` is each member's x as training left
    it ``[members, n_step, 4]`` (the tutorial trains its data too), which is what that
    member's weights fit. The model's forecast is the members' mean. Day i's persistence
    forecast is day i's close, ``x[i, 1]``.
    """
    actual = np.asarray(y, dtype=np.float64).reshape(-1)
    members = np.asarray(network.member_outputs(trained_x[:, None]), dtype=np.float64)[:, 0]
    predicted = members.mean(axis=0)
    persistence = np.asarray(x, dtype=np.float64)[:, 1]
    report = {
        "in_sample": True,
        "label": TUTORIAL_LABEL,
        "n_days": int(len(actual)),
        # The tutorial's own cost: [1, n] - [n, 1] broadcasts, scoring every prediction
        # against every day's close, so it is not a per-day error.
        "in_sample_mse": float(final_cost),
        "in_sample_mse_per_day": float(np.mean(np.square(predicted - actual))),
        "in_sample_mse_persistence": float(np.mean(np.square(persistence - actual))),
        "seeds": {
            "count": len(members),
            "in_sample_mse_per_day": metrics.spread(np.mean(np.square(members - actual), axis=1)),
        },
    }
    predictions = pd.DataFrame({
        "date": pd.to_datetime(target_dates).strftime("%Y-%m-%d"),
        "actual": actual, "model": predicted, "persistence": persistence,
    }).reindex(columns=PREDICTION_COLUMNS)
    return Evaluation(report, predictions, {})


def _numbers(figures: dict[str, Any]) -> dict[str, float]:
    """The numbers of one level of a report; an interval ``[low, high]`` as ``<key>_low`` and
    ``<key>_high``."""
    flat: dict[str, float] = {}
    for key, value in figures.items():
        if isinstance(value, (int, float)):
            flat[key] = float(value)
        elif isinstance(value, list) and len(value) == 2:
            flat[f"{key}_low"], flat[f"{key}_high"] = (float(v) for v in value)
    return flat


def tracked_metrics(report: dict[str, Any]) -> dict[str, float]:
    """metrics.json flattened for MLflow: the headline ``rmse_ratio_persistence`` first (MLflow's
    compare view plots the first metric a run logged), the model's other keys as they are, the
    baselines' under ``baseline/`` (``baseline/drift_mase``), the members' spread under
    ``members/`` (``members/rmse_mean``, ``members/count``) and a panel's symbols under ``symbol/``
    (``symbol/AAPL_rmse_ratio_persistence``): the UI draws each prefix as a section."""
    model = _numbers(report)
    flat = {key: model.pop(key) for key in ("rmse_ratio_persistence",) if key in model} | model
    for name, scores in report.get("baselines", {}).items():
        flat.update({f"baseline/{name}_{key}": value for key, value in _numbers(scores).items()})
    for key, value in report.get("seeds", {}).items():
        if isinstance(value, dict):
            flat.update({f"members/{key}_{stat}": float(figure) for stat, figure in value.items()})
        else:
            flat[f"members/{key}"] = float(value)
    for symbol, figures in report.get("panel", {}).get("per_symbol", {}).items():  # a panel: each symbol's
        name = re.sub(r"[^\w\-. /]", "_", symbol)  # the characters MLflow allows in a metric's name
        flat.update({f"symbol/{name}_{key}": value for key, value in _numbers(figures).items()})
    return flat


def summary_table(report: dict[str, Any]) -> str:
    """Model and baselines side by side, one row each, for the terminal."""
    if report.get("in_sample"):
        return "\n".join([
            f"{report['label']} ({report['n_days']} days)",
            f"  tutorial cost (broadcast [1,n]-[n,1]) {report['in_sample_mse']:14.6g}",
            f"  model, per-day MSE                     {report['in_sample_mse_per_day']:14.6g}",
            f"  persistence, per-day MSE               {report['in_sample_mse_persistence']:14.6g}",
        ])
    columns = (("rmse", "RMSE", ".4f"), ("mae", "MAE", ".4f"), ("mape", "MAPE %", ".3f"),
               ("mase", "MASE", ".3f"), ("directional_accuracy", "dir. acc", ".3f"),
               ("direction_p_value", "p-value", ".3f"), ("rmse_ratio_persistence", "RMSE/pers.", ".4f"))
    rows = {"model": report, **report["baselines"]}
    lines = [f"{'':<12}" + "".join(f"{title:>12}" for _, title, _ in columns)]
    for name, scores in rows.items():
        lines.append(f"{name:<12}" + "".join(f"{scores[key]:>12{fmt}}" for key, _, fmt in columns))
    panel = report.get("panel")
    if panel is not None:
        lines.insert(0, f"pooled over {panel['symbols']} symbols and {panel['days']} test days, each symbol-day's "
                        f"prices relative to its last close (RMSE, MAE: fractions of the price)")
    lines.append(
        f"{report['n_test']} test {'symbol-days' if panel else 'days'}; always guessing the commoner direction "
        f"scores {report['majority_class_rate']:.3f}"
    )
    if panel is not None:
        ratios = [figures["rmse_ratio_persistence"] for figures in panel["per_symbol"].values()]
        lines.append(f"per symbol: RMSE/pers. below 1 for {sum(r < 1 for r in ratios)} of {len(ratios)} "
                     f"({min(ratios):.4f} .. {max(ratios):.4f}); reports/metrics.json panel.per_symbol")
    if "interval_coverage" in report:
        lines.append(
            f"{report['interval_nominal']:.0%} conformal intervals held the close on "
            f"{report['interval_coverage']:.1%} of the days; mean width {report['interval_width_mean']:.4f}"
        )
    if "seeds" in report:
        ratio = report["seeds"]["rmse_ratio_persistence"]
        lines.append(
            f"model = the mean of {report['seeds']['count']} members; each alone: RMSE/pers. "
            f"{ratio['mean']:.4f} ± {ratio['std']:.4f} ({ratio['min']:.4f} .. {ratio['max']:.4f})"
        )
        lines.append(verdict(report, "pooled over the panel's test days" if panel else "on this one test period"))
    return "\n".join(lines)


def verdict(report: dict[str, Any], period: str = "on this one test period") -> str:
    """Plain words on skill against persistence: a claim of skill only where the Diebold-Mariano
    p-value is below 0.05, with the bootstrap interval of the RMSE ratio and how many members
    beat persistence alone (a figure inside the spread of the seeds is not an effect); and on
    direction, against always guessing the commoner one and the Pesaran-Timmermann test."""
    ratio, p_value = report["rmse_ratio_persistence"], report["dm_p_value"]
    low, high = report["rmse_ratio_ci95"]
    seeds = report["seeds"]
    beat, count = seeds["beat_persistence"], seeds["count"]
    evidence = (f"Diebold-Mariano p = {p_value:.3f}, 95% interval of the ratio {low:.4f} .. {high:.4f}; "
                f"{beat} of {count} members beat persistence alone")
    if p_value < SKILL_P_VALUE:
        rmse = f"verdict: skill {period}. The model's RMSE is {ratio:.4f} x persistence's ({evidence})."
    elif ratio < 1.0:
        rmse = (f"verdict: no skill shown {period}. The model's RMSE is {ratio:.4f} x persistence's, "
                f"within chance ({evidence}).")
    else:
        rmse = f"verdict: no skill {period}. The model's RMSE is {ratio:.4f} x persistence's ({evidence})."
    accuracy, majority = report["directional_accuracy"], report["majority_class_rate"]
    members = seeds["directional_accuracy"]
    direction = (f" Direction: {accuracy:.3f} right (members {members['min']:.3f} .. {members['max']:.3f}) "
                 f"against {majority:.3f} for always guessing the commoner direction; Pesaran-Timmermann "
                 f"p = {report['pt_p_value']:.3f}")
    informative = accuracy > majority and report["pt_p_value"] < SKILL_P_VALUE
    return rmse + direction + (": informative." if informative else ": no evidence of skill.")
