"""Walk-forward backtest: retrain before each fold, forecast its days one step ahead.

The last ``backtest.days`` samples (by target date) are cut into ``backtest.folds``
consecutive folds. Before fold k, the ensemble is trained on every sample whose target
comes before the fold (an expanding window), early-stopped on the last
``validation_days`` of them, with its normalisation fitted on its own training samples;
it then forecasts each day of the fold from the bars up to the day before. The baselines
are refitted per fold on every close before it. The pooled days are scored as evaluate
scores the test split, with the same tests against persistence, and each forecast gets a
split-conformal interval from the validation residuals of the models that made it.

Plain values in, plain values out; the training function is passed in.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import pandas as pd

from nextclose import evaluation, features, metrics, panel_evaluation, significance
from nextclose.errors import DataError

# The folds live in nextclose.folds (the tuner cuts its own with them); callers find them here too.
from nextclose.folds import Fold as Fold
from nextclose.folds import all_samples as all_samples
from nextclose.folds import concatenate as concatenate
from nextclose.folds import plan_folds as plan_folds
from nextclose.folds import plan_panel_folds as plan_panel_folds
from nextclose.folds import resolve_lengths as resolve_lengths
from nextclose.folds import take as take
from nextclose.params import EvaluateParams

# Always all of them, a forecast not made left empty (see evaluation.PREDICTION_COLUMNS).
COLUMNS = ("date", "fold", "actual", "model", "persistence", "drift", "arima", "lower", "upper")
# The fold figures of backtest.json, after start, end and n.
FOLD_KEYS = ("rmse_ratio_persistence", "directional_accuracy")


@dataclasses.dataclass(frozen=True)
class FoldForecast:
    """One fold's forecasts, aligned with its samples."""

    fold: Fold
    samples: features.Windows
    model: np.ndarray  # the ensemble's forecast closes
    members: np.ndarray  # [members, n]
    lower: np.ndarray
    upper: np.ndarray
    baselines: dict[str, np.ndarray]  # persistence, drift and (when evaluate.arima) arima
    fitted: dict[str, Any]  # what the fold's models learned: best steps, drift rate, ARIMA order


# (train, validation, normalisation) -> a trained ensemble with __call__ and member_outputs
TrainEnsemble = Callable[[features.Windows, features.Windows, features.Normalisation], Any]


def closes_before(bars: pd.DataFrame, first_target: np.datetime64) -> np.ndarray:
    """Every close dated before ``first_target``: what a fold's baselines may learn from."""
    dates = pd.to_datetime(bars["date"]).to_numpy().astype("datetime64[D]")
    return bars["close"].to_numpy(dtype=np.float64)[dates < first_target]


def forecast_fold(
    fold: Fold, samples: features.Windows, bars: pd.DataFrame, feature_names: tuple[str, ...],
    train_ensemble: TrainEnsemble, params: EvaluateParams,
) -> FoldForecast:
    """Train on the fold's past, forecast the fold's days, and refit the baselines on its past."""
    train, validation, days = (take(samples, fold.train), take(samples, fold.validation),
                               take(samples, fold.forecast))
    network = train_ensemble(train, validation, features.fit_normalisation(train, feature_names))
    ensemble, members = evaluation.forecast_lstm(network, days)
    calibration, _ = evaluation.forecast_lstm(network, validation)
    lower, upper = significance.conformal_log_interval(validation.next_close, calibration, ensemble, params.interval)
    past = closes_before(bars, days.target_dates[0])
    if len(past) < 2 or past[-1] != days.last_close[0]:
        raise DataError("data/prepared: bars.csv and windows.npz disagree on the backtest days; rerun prepare")
    rate = metrics.drift_rate(past)
    baselines = {
        "persistence": metrics.persistence_forecast(days.last_close),
        "drift": metrics.drift_forecast(days.last_close, rate),
    }
    fitted: dict[str, Any] = {"drift_rate": rate, "naive_scale": metrics.naive_scale(past)}
    if params.arima:
        arima = metrics.arima_forecasts(past, days.next_close, 0, params.arima_max_p, params.arima_max_q)
        baselines["arima"] = arima.forecasts
        fitted["arima_order"] = str(arima.order)
    return FoldForecast(fold, days, ensemble, members, lower, upper, baselines, fitted)


def forecast_panel_fold(
    fold: Fold, samples: features.PanelWindows, bars: pd.DataFrame, feature_names: tuple[str, ...],
    train_ensemble: TrainEnsemble, params: EvaluateParams,
) -> FoldForecast:
    """:func:`forecast_fold` for a panel: each symbol scaled by its own statistics on the fold's
    past, the global model trained on all of them, the baselines refitted per symbol on its
    closes before the fold. The forecasts are kept relative to each symbol's last close (as
    :mod:`nextclose.panel_evaluation` scores them)."""
    train, validation, days = (features.select(samples, index)
                               for index in (fold.train, fold.validation, fold.forecast))
    assert isinstance(train, features.PanelWindows) and isinstance(validation, features.PanelWindows)
    assert isinstance(days, features.PanelWindows)
    per_symbol = features.fit_panel_normalisation(train, feature_names, list(np.unique(samples.symbols)))
    network = train_ensemble(features.normalise_panel(train, per_symbol),
                             features.normalise_panel(validation, per_symbol),
                             features.identity_normalisation(feature_names))
    ensemble, members = panel_evaluation.forecast_panel(network, days, per_symbol)
    calibration, _ = panel_evaluation.forecast_panel(network, validation, per_symbol)
    half_widths = panel_evaluation.conformal_half_widths(validation, calibration, days.symbols, per_symbol,
                                                         params.interval)
    dates = pd.to_datetime(bars["date"]).to_numpy().astype("datetime64[D]")
    for symbol in np.unique(days.symbols):  # each symbol's first forecast starts from its close before it
        first = int(np.flatnonzero(days.symbols == symbol)[0])
        before = bars.loc[(bars["symbol"] == symbol).to_numpy() & (dates < days.target_dates[first]), "close"]
        if not len(before) or before.iloc[-1] != days.last_close[first]:
            raise DataError("data/prepared: bars.csv and windows.npz disagree on the backtest days; rerun prepare")
    # the baselines learn from every close before the fold (a stock listed since: the median drift)
    past = panel_evaluation.closes_by_symbol(bars.loc[dates < days.target_dates[0]])
    rates, median_drift = panel_evaluation.drift_rates(past, days.symbols)
    last = days.last_close
    relative = dataclasses.replace(days, last_close=np.ones_like(last), next_close=days.next_close / last)
    baselines = {
        "persistence": np.ones_like(last),
        "drift": np.exp(np.array([rates[str(symbol)] for symbol in days.symbols])),
    }
    fitted: dict[str, Any] = {"drift_rate_mean": float(np.mean(list(rates.values()))),
                              "drift_median_for": ",".join(median_drift) or "none",
                              "naive_scale": panel_evaluation.pooled_naive_scale(past)}
    return FoldForecast(fold, relative, ensemble / last, members / last, ensemble * np.exp(-half_widths) / last,
                        ensemble * np.exp(half_widths) / last, baselines, fitted)


def _joined(results: list[FoldForecast]) -> tuple[features.Windows, dict[str, np.ndarray], np.ndarray]:
    samples = concatenate([r.samples for r in results])
    forecasts = {"model": np.concatenate([r.model for r in results])}
    for name in results[0].baselines:
        forecasts[name] = np.concatenate([r.baselines[name] for r in results])
    return samples, forecasts, np.concatenate([r.members for r in results], axis=1)


def pooled_figures(
    samples: features.Windows, forecast: np.ndarray, persistence: np.ndarray, params: EvaluateParams, seed: int,
) -> dict[str, Any]:
    """The pooled figures of one forecaster over every backtest day."""
    actual, last = samples.next_close, samples.last_close
    rmse = metrics.rmse(actual, forecast)
    if isinstance(samples, features.PanelWindows):  # tested on days: a day's symbols move together
        tests = panel_evaluation.pooled_tests(samples.target_dates, last, actual, forecast, persistence, params, seed)
    else:
        tests = evaluation.against_persistence(last, actual, forecast, persistence, params, seed)
    return {
        "n": int(len(actual)),
        "rmse": rmse,
        "rmse_ratio_persistence": rmse / metrics.rmse(actual, persistence),
        **tests,
        "directional_accuracy": metrics.directional_accuracy(last, actual, forecast),
        "majority_class_rate": metrics.majority_class_rate(last, actual),
    }


def report(results: list[FoldForecast], params: EvaluateParams, seed: int) -> dict[str, Any]:
    """The content of backtest.json: per fold, pooled (with the tests against persistence and
    the intervals' coverage), the members' spread and the baselines' pooled figures."""
    folds = []
    for result in results:
        days = result.samples
        first, last = features.date_range(days.target_dates) or ("", "")
        persistence_rmse = metrics.rmse(days.next_close, result.baselines["persistence"])
        folds.append({
            "start": first, "end": last, "n": int(len(days.next_close)),
            "rmse_ratio_persistence": metrics.rmse(days.next_close, result.model) / persistence_rmse,
            "directional_accuracy": metrics.directional_accuracy(days.last_close, days.next_close, result.model),
        })
    samples, forecasts, members = _joined(results)
    persistence = forecasts["persistence"]
    lower = np.concatenate([r.lower for r in results])
    upper = np.concatenate([r.upper for r in results])
    pooled = pooled_figures(samples, forecasts["model"], persistence, params, seed)
    pooled.update(evaluation.interval_figures(samples.next_close, lower, upper, params.interval))
    # The members' MASE is scaled by the moves before the first fold (each fold has its own past).
    scale = results[0].fitted["naive_scale"]
    document = {
        "folds": folds,
        "pooled": pooled,
        "seeds": evaluation.seed_spread(samples, members, scale, metrics.rmse(samples.next_close, persistence)),
        "baselines": {name: pooled_figures(samples, values, persistence, params, seed)
                      for name, values in forecasts.items() if name not in ("model", "persistence")},
    }
    if isinstance(samples, features.PanelWindows):  # relative to each last close, as evaluate's panel block
        document["panel"] = {
            "symbols": int(len(np.unique(samples.symbols))),
            "days": int(len(np.unique(samples.target_dates))),
            "rmse_ratio_persistence": pooled["rmse_ratio_persistence"],
            "dm_p_value": pooled["dm_p_value"],
            "per_symbol": panel_evaluation.per_symbol_figures(samples, forecasts["model"], persistence),
        }
    return document


def table(results: list[FoldForecast]) -> pd.DataFrame:
    """backtest.csv: one row per forecast day; a baseline not computed is left empty."""
    if not results:
        return pd.DataFrame(columns=COLUMNS)
    samples, forecasts, _ = _joined(results)
    symbols = {"symbol": samples.symbols} if isinstance(samples, features.PanelWindows) else {}
    return pd.DataFrame({
        "date": pd.to_datetime(samples.target_dates).strftime("%Y-%m-%d"),
        **symbols,
        "fold": np.concatenate([np.full(len(r.model), r.fold.number) for r in results]),
        "actual": samples.next_close,
        **forecasts,
        "lower": np.concatenate([r.lower for r in results]),
        "upper": np.concatenate([r.upper for r in results]),
    }).reindex(columns=(*COLUMNS[:1], *symbols, *COLUMNS[1:]))


def member_forecasts(results: list[FoldForecast]) -> np.ndarray:
    """Each member's forecasts ``[members, rows of table()]`` (relative on a panel, as the table)."""
    return _joined(results)[2]


def summary_table(backtest: dict[str, Any]) -> str:
    """The folds and the pooled figures, for the terminal."""
    lines = [f"{'fold':<6}{'first day':>12}{'last day':>12}{'days':>6}{'RMSE/pers.':>12}{'dir. acc':>10}"]
    for number, fold in enumerate(backtest["folds"], 1):
        lines.append(f"{number:<6}{fold['start']:>12}{fold['end']:>12}{fold['n']:>6}"
                     f"{fold['rmse_ratio_persistence']:>12.4f}{fold['directional_accuracy']:>10.3f}")
    pooled = backtest["pooled"]
    lines.append(f"{'all':<30}{pooled['n']:>6}{pooled['rmse_ratio_persistence']:>12.4f}"
                 f"{pooled['directional_accuracy']:>10.3f}")
    panel = backtest.get("panel")
    if panel is not None:
        lines.insert(0, f"pooled over {panel['symbols']} symbols and {panel['days']} days (the days column: "
                        f"symbol-days), each relative to its last close")
    for name, figures in backtest["baselines"].items():
        lines.append(f"  {name}: RMSE/pers. {figures['rmse_ratio_persistence']:.4f}, "
                     f"Diebold-Mariano p {figures['dm_p_value']:.3f}")
    lines.append(f"{pooled['interval_nominal']:.0%} conformal intervals held the close on "
                 f"{pooled['interval_coverage']:.1%} of the days; mean width {pooled['interval_width_mean']:.4f}")
    lines.append(evaluation.verdict(pooled | {"seeds": backtest["seeds"]},
                                    period=f"over {panel['days'] if panel else pooled['n']} walk-forward days "
                                           f"in {len(backtest['folds'])} folds"))
    return "\n".join(lines)



def empty_report() -> dict[str, Any]:
    """backtest.json when there is nothing to walk forward (the tutorial kind): no days."""
    return {"folds": [], "pooled": {"n": 0}}


def tracked_metrics(backtest: dict[str, Any]) -> dict[str, float]:
    """backtest.json flattened for MLflow as evaluate's figures are: pooled figures as they are,
    ``baseline/drift_dm_p_value``, ``members/rmse_ratio_persistence_mean``, ..."""
    return evaluation.tracked_metrics(
        backtest["pooled"] | {"baselines": backtest.get("baselines", {}), "seeds": backtest.get("seeds", {}),
                              "panel": backtest.get("panel", {})})
