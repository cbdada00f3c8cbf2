"""Scoring a trained model against naive forecasts: values in, a report out.

For the default model, on the test split only: the model and three baselines
(persistence, drift, ARIMA), each a one-step forecast of the next close from
the closes up to today, scored by :mod:`nextclose.metrics`. For the tutorial
kind, which has no held-out data, the in-sample figures, labelled as such.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from nextclose import metrics
from nextclose.errors import DataError
from nextclose.features import Windows
from nextclose.params import EvaluateParams

BASELINES = ("persistence", "drift", "arima")
# Always all of them, a forecast not made left empty: a DVC plot that names a missing
# column draws nothing at all, an empty column just draws no line.
PREDICTION_COLUMNS = ("date", "actual", "model", *BASELINES)
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


def forecast_lstm(network: Any, windows: Windows) -> np.ndarray:
    """The default model's next-close forecasts: it predicts log returns on the last close."""
    log_returns = np.asarray(network(windows.inputs, training=False), dtype=np.float64).reshape(-1)
    return metrics.closes_from_log_returns(windows.last_close, log_returns)


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


def score_forecasts(
    test: Windows, forecasts: dict[str, np.ndarray], train_closes: np.ndarray
) -> dict[str, Any]:
    """The metrics.json of the default model: the model's scores at the top level,
    each baseline's under ``baselines``, all on the same test days."""
    scale = metrics.naive_scale(train_closes)
    scores = {
        name: metrics.score(test.last_close, test.next_close, values, scale)
        for name, values in forecasts.items()
    }
    persistence_rmse = scores["persistence"]["rmse"]
    for values in scores.values():
        values["rmse_ratio_persistence"] = values["rmse"] / persistence_rmse
    return {
        "n_test": int(len(test.next_close)),
        **scores["model"],
        "majority_class_rate": metrics.majority_class_rate(test.last_close, test.next_close),
        "baselines": {name: scores[name] for name in forecasts if name != "model"},
    }


def evaluate_lstm(
    network: Any, bars: pd.DataFrame, test: Windows, params: EvaluateParams
) -> Evaluation:
    """Forecast every test day with the model and the baselines, and score them."""
    train_closes = training_closes(bars)
    rate = metrics.drift_rate(train_closes)
    forecasts = {
        "model": forecast_lstm(network, test),
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
        | forecasts
    ).reindex(columns=PREDICTION_COLUMNS)
    return Evaluation(score_forecasts(test, forecasts, train_closes), predictions, fitted)


def evaluate_tutorial(
    network: Any, x: np.ndarray, y: np.ndarray, trained_x: np.ndarray, final_cost: float,
    target_dates: np.ndarray,
) -> Evaluation:
    """The in-sample figures of the tutorial's network, against persistence on the same days.

    ``x``/``y`` are the prepared data; ``trained_x`` is x as training left it
    (the tutorial trains its data too), which is what the network's weights fit.
    Day i's persistence forecast is day i's close, ``x[i, 1]``.
    """
    actual = np.asarray(y, dtype=np.float64).reshape(-1)
    predicted = np.asarray(network(trained_x[None]), dtype=np.float64).reshape(-1)
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
    }
    predictions = pd.DataFrame({
        "date": pd.to_datetime(target_dates).strftime("%Y-%m-%d"),
        "actual": actual, "model": predicted, "persistence": persistence,
    }).reindex(columns=PREDICTION_COLUMNS)
    return Evaluation(report, predictions, {})


def tracked_metrics(report: dict[str, Any]) -> dict[str, float]:
    """metrics.json flattened for MLflow: the model's keys as they are, baselines as
    ``persistence_rmse``, ``drift_mase``, ..."""
    flat = {k: float(v) for k, v in report.items() if isinstance(v, (int, float))}
    for name, scores in report.get("baselines", {}).items():
        flat.update({f"{name}_{key}": float(value) for key, value in scores.items()})
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
    lines.append(
        f"{report['n_test']} test days; always guessing the commoner direction scores "
        f"{report['majority_class_rate']:.3f}"
    )
    return "\n".join(lines)
