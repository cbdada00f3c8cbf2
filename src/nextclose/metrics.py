"""Scoring one-step-ahead forecasts of the next close, and the naive forecasts to beat.

Every forecast here is a forecast of the close of day t+1 made with the closes
up to day t (``last_close`` is day t's close). Plain functions on arrays: no
file I/O, no tracking, no printing.

Direction: a day is *up* when its close is above the previous close by more
than :data:`MOVE_TOLERANCE` of it. An unchanged close counts as *not up*, for
the truth and for a forecast alike, so every day is scored as one of two
classes and the binomial test is exact. A consequence worth knowing:
persistence forecasts "no move", i.e. never up, so its directional accuracy is
the share of days that did not rise, which is what always guessing "down"
would score.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

# The keys of one forecaster's score, in the order reports show them.
SCORE_KEYS = ("rmse", "mae", "mape", "mase", "directional_accuracy", "direction_p_value")
# Relative moves this small are floating-point noise, not a call: a forecast that is
# today's close run through exp(log(.)) lands one ulp above or below it at random.
MOVE_TOLERANCE = 1e-9


def _as_prices(values: np.ndarray, name: str) -> np.ndarray:
    prices = np.asarray(values, dtype=np.float64)
    if prices.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d array, got shape {prices.shape}")
    if not np.all(np.isfinite(prices)) or np.any(prices <= 0):
        raise ValueError(f"{name}: prices must be finite and positive")
    return prices


def _pair(actual: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    actual = _as_prices(actual, "actual")
    predicted = np.asarray(predicted, dtype=np.float64)
    if predicted.shape != actual.shape:
        raise ValueError(f"predicted has shape {predicted.shape}, actual {actual.shape}")
    if len(actual) == 0:
        raise ValueError("no forecasts to score")
    if not np.all(np.isfinite(predicted)):
        raise ValueError("predicted: forecasts must be finite")
    return actual, predicted


def rmse(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Root mean squared error, in price units."""
    actual, predicted = _pair(actual, predicted)
    return float(np.sqrt(np.mean(np.square(predicted - actual))))


def mae(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Mean absolute error, in price units."""
    actual, predicted = _pair(actual, predicted)
    return float(np.mean(np.abs(predicted - actual)))


def mape(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Mean absolute percentage error, in percent (1.0 means 1 %)."""
    actual, predicted = _pair(actual, predicted)
    return float(100.0 * np.mean(np.abs(predicted - actual) / actual))


def naive_scale(train_closes: np.ndarray) -> float:
    """MASE's denominator: the mean absolute one-step change of the training *log* closes,
    i.e. the in-sample error of persistence on the training split, in log units.

    On logs, because price moves grow with the price: on a stock that grew a thousandfold,
    the training period's daily moves in price units were cents, and a price-level MASE
    would be above 10 for every forecaster, persistence included.
    """
    closes = _as_prices(train_closes, "train_closes")
    if len(closes) < 2:
        raise ValueError("the naive scale needs at least two training closes")
    scale = float(np.mean(np.abs(np.diff(np.log(closes)))))
    if scale == 0:
        raise ValueError("the training closes never change, so MASE is undefined")
    return scale


def mase(actual: np.ndarray, predicted: np.ndarray, scale: float) -> float:
    """Mean absolute scaled error on log prices: the mean of ``|log(predicted / actual)|``
    divided by :func:`naive_scale` of the training split. Scale-free: the same for a price
    series and for that series times any constant or grown by any level.

    Below 1 beats persistence *as it did on the training data*; persistence
    itself scores the ratio of test to training volatility, not exactly 1.
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    actual, predicted = _pair(actual, predicted)
    if np.any(predicted <= 0):
        raise ValueError("predicted: MASE on log prices needs positive forecasts")
    return float(np.mean(np.abs(np.log(predicted) - np.log(actual)))) / scale


def rises(last_close: np.ndarray, close: np.ndarray) -> np.ndarray:
    """True where ``close`` is above ``last_close`` by more than :data:`MOVE_TOLERANCE`
    of it (an unchanged close is not a rise)."""
    last_close = np.asarray(last_close, dtype=np.float64)
    return np.asarray(close, dtype=np.float64) > last_close * (1.0 + MOVE_TOLERANCE)


def direction_hits(last_close: np.ndarray, actual: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """True on days where the forecast's up / not-up call matches what happened."""
    actual, predicted = _pair(actual, predicted)
    last_close = _as_prices(last_close, "last_close")
    if last_close.shape != actual.shape:
        raise ValueError(f"last_close has shape {last_close.shape}, actual {actual.shape}")
    return rises(last_close, predicted) == rises(last_close, actual)


def directional_accuracy(last_close: np.ndarray, actual: np.ndarray, predicted: np.ndarray) -> float:
    """Share of days whose forecast move (up / not up) matches the real one."""
    return float(np.mean(direction_hits(last_close, actual, predicted)))


def majority_class_rate(last_close: np.ndarray, actual: np.ndarray) -> float:
    """What always guessing the period's more common direction scores: the bar a
    directional accuracy has to clear before it means anything."""
    up_share = float(np.mean(rises(last_close, actual)))
    return max(up_share, 1.0 - up_share)


def direction_p_value(hits: int, days: int) -> float:
    """One-sided binomial p-value of ``hits`` correct calls in ``days`` against a coin (0.5)."""
    from scipy.stats import binomtest

    if days < 1 or not 0 <= hits <= days:
        raise ValueError(f"need 0 <= hits <= days and days >= 1, got {hits} of {days}")
    return float(binomtest(int(hits), int(days), 0.5, alternative="greater").pvalue)


def score(
    last_close: np.ndarray, actual: np.ndarray, predicted: np.ndarray, scale: float
) -> dict[str, float]:
    """Every metric of one forecaster, keyed by :data:`SCORE_KEYS`."""
    hits = direction_hits(last_close, actual, predicted)
    return {
        "rmse": rmse(actual, predicted),
        "mae": mae(actual, predicted),
        "mape": mape(actual, predicted),
        "mase": mase(actual, predicted, scale),
        "directional_accuracy": float(np.mean(hits)),
        "direction_p_value": direction_p_value(int(hits.sum()), len(hits)),
    }


def closes_from_log_returns(last_close: np.ndarray, log_returns: np.ndarray) -> np.ndarray:
    """Turn forecast log returns into forecast closes: ``close_t * exp(r)``."""
    return np.asarray(last_close, dtype=np.float64) * np.exp(np.asarray(log_returns, dtype=np.float64))


def persistence_forecast(last_close: np.ndarray) -> np.ndarray:
    """Tomorrow's close is today's close."""
    return np.array(last_close, dtype=np.float64)


def drift_rate(train_closes: np.ndarray) -> float:
    """The mean one-step log change of the training closes.

    Log changes, because prices grow in proportion to their level: the same
    rate fits 2010's $30 and 2017's $80. The mean telescopes to
    ``log(last / first) / (n - 1)``.
    """
    closes = _as_prices(train_closes, "train_closes")
    if len(closes) < 2:
        raise ValueError("the drift needs at least two training closes")
    return float(np.mean(np.diff(np.log(closes))))


def drift_rates(closes: dict[str, np.ndarray], symbols: np.ndarray) -> tuple[dict[str, float], list[str]]:
    """Each of ``symbols``' drift from its own closes in ``closes``; a symbol with fewer than two
    (listed after them) gets the median of the others' rates, and is named in the second value."""
    rates = {symbol: drift_rate(values) for symbol, values in closes.items() if len(values) >= 2}
    if not rates:
        raise ValueError("no symbol has two closes to fit a drift on")
    median = float(np.median(list(rates.values())))
    missing = sorted({str(symbol) for symbol in np.unique(symbols)} - set(rates))
    return rates | {symbol: median for symbol in missing}, missing


def drift_forecast(last_close: np.ndarray, rate: float) -> np.ndarray:
    """A random walk with drift: today's close grown by the training drift rate."""
    return closes_from_log_returns(last_close, np.full(np.shape(last_close), rate))


@dataclasses.dataclass(frozen=True)
class ArimaForecast:
    forecasts: np.ndarray  # one forecast close per target
    order: tuple[int, int, int]  # (p, d, q) chosen by auto_arima on the training closes
    with_intercept: bool  # with d = 1 the intercept is a drift


def arima_forecasts(
    train_closes: np.ndarray, later_closes: np.ndarray, first_target: int, max_p: int, max_q: int
) -> ArimaForecast:
    """One-step ARIMA forecasts of ``later_closes[first_target:]``.

    ``pmdarima.auto_arima`` chooses the order and fits it on the training
    closes alone. With those parameters held fixed, one Kalman-filter pass
    over ``later_closes`` (statsmodels' ``append(..., refit=False)``) gives
    every one-step forecast: the forecast of ``later_closes[i]`` has seen
    ``later_closes[:i]`` and nothing after, and the whole pass is linear in the
    series' length (pmdarima's ``update`` re-estimated on the whole history on
    every day). ``later_closes[:first_target]`` (e.g. the validation period)
    is read, not forecast.

    The model works on log closes, as the drift does: price changes scale with
    the price level, log changes do not. ``exp`` of the log forecast is the
    median forecast, smaller than the mean by a factor ``exp(sigma^2 / 2)``,
    about 1e-4 for daily stock returns.
    """
    import pmdarima

    train = np.log(_as_prices(train_closes, "train_closes"))
    later = np.log(_as_prices(later_closes, "later_closes"))
    if not 0 <= first_target < len(later):
        raise ValueError(f"first_target {first_target} is outside 0..{len(later) - 1}")
    if max_p < 0 or max_q < 0:
        raise ValueError(f"max_p and max_q must be at least 0, got {max_p} and {max_q}")
    model = pmdarima.auto_arima(
        train, seasonal=False, stepwise=True, suppress_warnings=True, error_action="ignore",
        # pmdarima's stepwise search starts at order 2 unless told otherwise
        start_p=min(2, max_p), max_p=max_p, start_q=min(2, max_q), max_q=max_q,
    )
    one_step = one_step_forecasts(model.arima_res_, later, first_target)
    p, d, q = (int(v) for v in model.order)
    return ArimaForecast(np.exp(one_step), (p, d, q), bool(model.with_intercept))


def one_step_forecasts(fitted: Any, later: np.ndarray, first_target: int = 0) -> np.ndarray:
    """One-step forecasts of ``later[first_target:]`` by a fitted statsmodels state-space model,
    its parameters held fixed: ``later`` is appended to the data it was fitted on and filtered
    once; the prediction of each appended day is made from the days before it."""
    start = int(fitted.nobs)
    extended = fitted.append(np.asarray(later, dtype=np.float64), refit=False)
    return np.asarray(extended.predict(start=start + first_target, end=start + len(later) - 1), dtype=np.float64)


def spread(values: Sequence[float]) -> dict[str, float]:
    """``mean, std, min, max`` of one figure over the members (std with ``ddof=1``: the
    spread of the seeds drawn, 0 for one member): how far one seed's figure can fall from
    another's."""
    array = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(array.mean()),
        "std": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
        "min": float(array.min()),
        "max": float(array.max()),
    }
