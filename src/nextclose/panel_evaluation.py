"""Scoring one global model on a panel of symbols: values in, a report out.

Prices of different stocks are not comparable, so every symbol-day is scored relative to that
symbol's last close: an error of 0.01 is a miss of 1% of the price, whatever the price. The
pooled figures weigh every symbol-day alike. The tests are run on days, not on symbol-days:
stocks move together on a day, so a day's errors are not independent draws. The
Diebold-Mariano test reads each day's summed loss differential over the symbols that traded
(``sum e^2 - sum e_persistence^2``), and the bootstrap of the RMSE ratio resamples blocks of
days. Baselines are refitted per symbol on its own training closes: persistence, and drift.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from nextclose import evaluation, features, forecaster, metrics, significance
from nextclose.features import Normalisation, PanelWindows
from nextclose.metrics import drift_rates as drift_rates  # where the panel's callers look for it
from nextclose.params import EvaluateParams

# reports/panel_predictions.csv: one row per scored symbol-day, in each symbol's own prices.
PANEL_PREDICTION_COLUMNS = ("date", "symbol", "actual", "model", "persistence", "lower", "upper")
PANEL_BASELINES = ("persistence", "drift")  # ARIMA per symbol is left out: minutes per symbol


@dataclasses.dataclass(frozen=True)
class PanelEvaluation(evaluation.Evaluation):
    panel_predictions: pd.DataFrame  # PANEL_PREDICTION_COLUMNS
    member_forecasts: np.ndarray  # [members, rows of panel_predictions], in prices


def forecast_panel(
    network: Any, windows: PanelWindows, per_symbol: dict[str, Normalisation]
) -> tuple[np.ndarray, np.ndarray]:
    """The served ensemble's next-close forecasts and each member's ``[members, n]``: the model
    reads windows scaled by their symbol's statistics and answers in that symbol's units."""
    scaled = features.normalise_panel(windows, per_symbol)
    scales = features.symbol_target_scales(windows.symbols, per_symbol)
    ensemble = forecaster.network_answers(network, scaled.inputs) * scales
    members = forecaster.member_answers(network, scaled.inputs) * scales
    return (metrics.closes_from_log_returns(windows.last_close, ensemble),
            np.stack([metrics.closes_from_log_returns(windows.last_close, m) for m in members]))


def closes_by_symbol(bars: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each symbol's closes among ``bars``, in date order."""
    return {str(symbol): rows["close"].to_numpy(dtype=np.float64) for symbol, rows in bars.groupby("symbol")}


def training_closes_by_symbol(bars: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each symbol's training closes: all its drift and the naive scale may learn from."""
    return closes_by_symbol(bars.loc[bars["split"] == "train"])


def pooled_naive_scale(closes: dict[str, np.ndarray]) -> float:
    """MASE's denominator on a panel: the mean absolute daily log change over every symbol's
    training days (each symbol differenced on its own calendar)."""
    moves = np.concatenate([np.abs(np.diff(np.log(values))) for values in closes.values() if len(values) >= 2])
    scale = float(np.mean(moves))
    if not scale > 0:
        raise ValueError("the training closes never change, so MASE is undefined")
    return scale


def daily_losses(dates: np.ndarray, errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per day (in date order): the root of the summed squared errors and the summed absolute
    errors over that day's symbols. Squared (or absolute) and differenced, they give the day's
    summed loss differential, so a test on them pools every symbol-day of the day."""
    _, day = np.unique(dates, return_inverse=True)
    squared = np.bincount(day, weights=np.square(errors))
    absolute = np.bincount(day, weights=np.abs(errors))
    return np.sqrt(squared), absolute


def pooled_tests(
    dates: np.ndarray, last_close: np.ndarray, actual: np.ndarray, forecast: np.ndarray,
    persistence: np.ndarray, params: EvaluateParams, seed: int,
) -> dict[str, Any]:
    """:func:`nextclose.evaluation.against_persistence` for a panel: Diebold-Mariano on the
    daily summed loss differentials, Pesaran-Timmermann on every symbol-day's call, and the
    moving-block bootstrap over days of the pooled RMSE ratio (relative errors throughout)."""
    model_sq, model_abs = daily_losses(dates, (forecast - actual) / last_close)
    reference_sq, reference_abs = daily_losses(dates, (persistence - actual) / last_close)
    block = min(params.block_length, len(model_sq))
    return {
        "dm_p_value": significance.diebold_mariano(model_sq, reference_sq, "squared"),
        "dm_abs_p_value": significance.diebold_mariano(model_abs, reference_abs, "absolute"),
        "pt_p_value": significance.pesaran_timmermann(
            metrics.rises(last_close, actual), metrics.rises(last_close, forecast)),
        "rmse_ratio_ci95": list(significance.rmse_ratio_interval(
            model_sq, reference_sq, block, params.bootstrap_draws, seed)),
    }


def pooled_ratio(last_close: np.ndarray, actual: np.ndarray, forecast: np.ndarray, persistence: np.ndarray) -> float:
    """RMSE of the forecast's relative errors over persistence's, pooled over every symbol-day:
    what ``reports/panel_predictions.csv`` recomputes with ``(model - actual) / persistence``."""
    return significance.rmse_ratio((forecast - actual) / last_close, (persistence - actual) / last_close)


def per_symbol_figures(test: PanelWindows, forecast: np.ndarray, persistence: np.ndarray) -> dict[str, Any]:
    """``{SYMBOL: {n, rmse_ratio_persistence, dm_p_value}}``: each symbol alone (its own test
    days; the p-value of one symbol with fewer than two days is null)."""
    figures: dict[str, Any] = {}
    for symbol in np.unique(test.symbols):
        mine = test.symbols == symbol
        last, actual = test.last_close[mine], test.next_close[mine]
        errors, reference = (forecast[mine] - actual) / last, (persistence[mine] - actual) / last
        figures[str(symbol)] = {
            "n": int(mine.sum()),
            "rmse_ratio_persistence": significance.rmse_ratio(errors, reference),
            "dm_p_value": significance.diebold_mariano(errors, reference) if mine.sum() >= 2 else None,
        }
    return figures


def conformal_half_widths(
    validation: PanelWindows, calibration: np.ndarray, symbols: np.ndarray,
    per_symbol: dict[str, Normalisation], coverage: float,
) -> np.ndarray:
    """Split-conformal half-widths in log price, one per sample of ``symbols``: the validation
    days' absolute log residuals in units of their symbol's target scale are pooled (so every
    symbol has enough calibration days), and the quantile is scaled back by each symbol's own
    scale (a volatile stock gets a wider interval)."""
    residuals = significance.log_residuals(validation.next_close, calibration)
    scaled = residuals / features.symbol_target_scales(validation.symbols, per_symbol)
    quantile = significance.conformal_quantile(scaled, coverage)
    return quantile * features.symbol_target_scales(symbols, per_symbol)


def evaluate_panel(
    network: Any, bars: pd.DataFrame, validation: PanelWindows, test: PanelWindows,
    per_symbol: dict[str, Normalisation], params: EvaluateParams, seed: int,
) -> PanelEvaluation:
    """Forecast every symbol's test days with the global model and the per-symbol baselines,
    and score them pooled (``metrics.json``'s top level and its ``panel`` block) and per symbol."""
    closes = training_closes_by_symbol(bars)
    rates, median_drift = drift_rates(closes, test.symbols)
    ensemble, members = forecast_panel(network, test, per_symbol)
    calibration, _ = forecast_panel(network, validation, per_symbol)
    half_widths = conformal_half_widths(validation, calibration, test.symbols, per_symbol, params.interval)
    lower, upper = ensemble * np.exp(-half_widths), ensemble * np.exp(half_widths)
    last = test.last_close
    forecasts = {
        "model": ensemble,
        "persistence": metrics.persistence_forecast(last),
        "drift": metrics.closes_from_log_returns(last, np.array([rates[str(s)] for s in test.symbols])),
    }
    # Scored relative to each symbol's last close: a panel of "prices" that all stood at 1 yesterday.
    relative = dataclasses.replace(test, last_close=np.ones_like(last), next_close=test.next_close / last)
    relative_forecasts = {name: values / last for name, values in forecasts.items()}
    scale = pooled_naive_scale(closes)

    def tested(forecast: np.ndarray) -> dict[str, Any]:
        return pooled_tests(test.target_dates, last, test.next_close, forecast * last,
                            forecasts["persistence"], params, seed)

    report = evaluation.score_forecasts(
        relative, relative_forecasts, scale=scale, member_forecasts=members / last, tested=tested,
        interval=(lower / last, upper / last, params.interval),
    )
    report["panel"] = {
        "symbols": int(len(np.unique(test.symbols))),
        "days": int(len(np.unique(test.target_dates))),
        "rmse_ratio_persistence": pooled_ratio(last, test.next_close, ensemble, forecasts["persistence"]),
        "dm_p_value": report["dm_p_value"],
        "per_symbol": per_symbol_figures(test, ensemble, forecasts["persistence"]),
    }
    dates = pd.to_datetime(test.target_dates).strftime("%Y-%m-%d")
    panel_predictions = pd.DataFrame({
        "date": dates, "symbol": test.symbols, "actual": test.next_close, "model": ensemble,
        "persistence": forecasts["persistence"], "lower": lower, "upper": upper,
    }).reindex(columns=PANEL_PREDICTION_COLUMNS)
    # predictions.csv (the DVC plots): every symbol-day relative to its last close, in date order,
    # so the running RMSE ratio the plot draws is the pooled one.
    predictions = pd.DataFrame(
        {"date": dates, "actual": relative.next_close} | relative_forecasts
        | {"lower": lower / last, "upper": upper / last}
    ).reindex(columns=evaluation.PREDICTION_COLUMNS)
    fitted = {"naive_scale": scale, "drift_rate_mean": float(np.mean(list(rates.values()))),
              "drift_median_for": ",".join(median_drift) or "none",
              "interval_quantile_scaled": float(half_widths[0] / features.symbol_target_scales(
                  test.symbols[:1], per_symbol)[0])}
    return PanelEvaluation(report, predictions, fitted, panel_predictions, members)
