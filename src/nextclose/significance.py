"""Is a forecaster better than another beyond chance, and how wide is the doubt?

Plain functions on arrays of one-step forecast errors and direction calls: the
Diebold-Mariano test with the Harvey-Leybourne-Newbold correction, the
Pesaran-Timmermann test of direction forecasts, a moving-block bootstrap interval
of the RMSE ratio, and split-conformal prediction intervals. No I/O.
"""

from __future__ import annotations

import math

import numpy as np

# Squared errors for the RMSE, absolute errors for the MAE.
LOSSES = ("squared", "absolute")
# Loss differences this small, relative to the reference's mean loss, are rounding, not a difference.
SAME_LOSS = 1e-9


def _errors(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or len(array) == 0:
        raise ValueError(f"{name}: expected a non-empty 1-d array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: errors must be finite")
    return array


def _paired(model_errors: np.ndarray, reference_errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    model = _errors(model_errors, "model_errors")
    reference = _errors(reference_errors, "reference_errors")
    if model.shape != reference.shape:
        raise ValueError(f"model_errors has shape {model.shape}, reference_errors {reference.shape}")
    return model, reference


def diebold_mariano(model_errors: np.ndarray, reference_errors: np.ndarray, loss: str = "squared") -> float:
    """One-sided p-value of "the model's expected loss is below the reference's", one step ahead.

    The loss differential is ``d = L(e_model) - L(e_reference)`` (``L`` squares, or takes the
    absolute value); the statistic ``mean(d) / sqrt(var(d, ddof=1) / n)`` is multiplied by
    Harvey, Leybourne and Newbold's small-sample factor ``sqrt((n - 1) / n)`` (their
    ``sqrt((n + 1 - 2h + h(h - 1)/n) / n)`` at horizon ``h = 1``) and read against Student's t
    with ``n - 1`` degrees of freedom. Losses that never differ by more than rounding (a
    billionth of the reference's mean loss; e.g. an ARIMA(0,1,0) that is persistence run
    through exp(log(.))) give 1.0: no evidence. At least two days are needed.
    """
    from scipy.stats import t as student_t

    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    model, reference = _paired(model_errors, reference_errors)
    n = len(model)
    if n < 2:
        raise ValueError("the Diebold-Mariano test needs at least two forecasts")
    measure = np.square if loss == "squared" else np.abs
    d = measure(model) - measure(reference)
    if np.all(np.abs(d) <= SAME_LOSS * np.mean(measure(reference))):
        return 1.0
    mean, variance = float(np.mean(d)), float(np.var(d, ddof=1))
    if variance == 0.0:  # the same differential every day: certain, one way or the other
        return 0.0 if mean < 0 else 1.0
    statistic = mean / math.sqrt(variance / n) * math.sqrt((n - 1) / n)
    return float(student_t.cdf(statistic, df=n - 1))


def pesaran_timmermann(actual_up: np.ndarray, predicted_up: np.ndarray) -> float:
    """One-sided p-value of the Pesaran-Timmermann (1992) test that the direction calls
    ``predicted_up`` carry information about ``actual_up`` (both booleans, one per day).

    Compares the hit rate ``P`` with ``P* = Py Px + (1 - Py)(1 - Px)``, the rate of calls made
    independently of the outcome with the same frequencies, by
    ``S = (P - P*) / sqrt(var(P) - var(P*))``, standard normal under independence. A forecast
    that always calls the same direction carries no information: 1.0.
    """
    from scipy.stats import norm

    actual = np.asarray(actual_up, dtype=bool)
    predicted = np.asarray(predicted_up, dtype=bool)
    if actual.ndim != 1 or actual.shape != predicted.shape or len(actual) == 0:
        raise ValueError(f"need two 1-d arrays of the same non-zero length, got {actual.shape} and {predicted.shape}")
    n = len(actual)
    hits = float(np.mean(actual == predicted))
    py, px = float(np.mean(actual)), float(np.mean(predicted))
    expected = py * px + (1 - py) * (1 - px)
    var_hits = expected * (1 - expected) / n
    var_expected = ((2 * py - 1) ** 2 * px * (1 - px) / n + (2 * px - 1) ** 2 * py * (1 - py) / n
                    + 4 * py * px * (1 - py) * (1 - px) / n**2)
    variance = var_hits - var_expected
    if px in (0.0, 1.0) or py in (0.0, 1.0) or not variance > 0:
        return 1.0
    return float(norm.sf((hits - expected) / math.sqrt(variance)))


def rmse_ratio(model_errors: np.ndarray, reference_errors: np.ndarray) -> float:
    model, reference = _paired(model_errors, reference_errors)
    return float(np.sqrt(np.mean(np.square(model))) / np.sqrt(np.mean(np.square(reference))))


def block_bootstrap_indices(n: int, block_length: int, draws: int, seed: int) -> np.ndarray:
    """``[draws, n]`` day indices of a moving-block bootstrap: each row is ``ceil(n / block)``
    blocks of consecutive days with uniformly drawn starts, cut to ``n`` days. Blocks keep the
    days' short-range dependence (volatility clusters) that resampling single days would break."""
    if n < 1 or draws < 1:
        raise ValueError(f"need n >= 1 and draws >= 1, got {n} and {draws}")
    if not 1 <= block_length <= n:
        raise ValueError(f"block_length must lie in 1 .. {n} (the number of days), got {block_length}")
    rng = np.random.default_rng(seed)
    blocks = -(-n // block_length)
    starts = rng.integers(0, n - block_length + 1, size=(draws, blocks))
    return (starts[:, :, None] + np.arange(block_length)).reshape(draws, -1)[:, :n]


def rmse_ratio_interval(
    model_errors: np.ndarray, reference_errors: np.ndarray, block_length: int, draws: int, seed: int,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of the RMSE ratio model / reference from a moving-block bootstrap
    of the days (the same days for both: the errors stay paired)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    model, reference = _paired(model_errors, reference_errors)
    rows = block_bootstrap_indices(len(model), block_length, draws, seed)
    reference_ms = np.mean(np.square(reference)[rows], axis=1)
    if np.any(reference_ms == 0):
        raise ValueError("reference_errors: a resample has no error at all; the ratio is undefined")
    ratios = np.sqrt(np.mean(np.square(model)[rows], axis=1) / reference_ms)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(ratios, [tail, 1.0 - tail])
    return float(low), float(high)


def conformal_quantile(calibration_scores: np.ndarray, coverage: float) -> float:
    """Split conformal: the ``ceil((n + 1) * coverage)``-th smallest of ``n`` calibration scores.
    A new score exchangeable with them falls at or below it with probability at least
    ``coverage``. Fewer than ``coverage / (1 - coverage)`` scores cannot give that level."""
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"coverage must lie strictly between 0 and 1, got {coverage}")
    scores = np.sort(_errors(calibration_scores, "calibration_scores"))
    rank = math.ceil((len(scores) + 1) * coverage)
    if rank > len(scores):
        raise ValueError(f"{len(scores)} calibration days cannot give a {coverage:g} interval: "
                         f"at least {math.ceil(coverage / (1 - coverage))} are needed")
    return float(scores[rank - 1])


def log_interval(forecasts: np.ndarray, half_width: float) -> tuple[np.ndarray, np.ndarray]:
    """``[forecast * exp(-w), forecast * exp(w)]`` in price units: an interval of ``w`` in log
    price, so that its width follows the price level."""
    forecasts = np.asarray(forecasts, dtype=np.float64)
    return forecasts * math.exp(-half_width), forecasts * math.exp(half_width)


def conformal_log_interval(
    calibration_actual: np.ndarray, calibration_forecasts: np.ndarray, forecasts: np.ndarray, coverage: float
) -> tuple[np.ndarray, np.ndarray]:
    """Price intervals around ``forecasts`` from calibration days' absolute log residuals
    ``|log(actual / forecast)|``: split conformal on the log scale."""
    residuals = log_residuals(calibration_actual, calibration_forecasts)
    return log_interval(forecasts, conformal_quantile(residuals, coverage))


def log_residuals(actual: np.ndarray, forecasts: np.ndarray) -> np.ndarray:
    """``|log(actual / forecast)|``, the conformal score of the log-scale intervals."""
    return np.abs(np.log(np.asarray(actual, dtype=np.float64)) - np.log(np.asarray(forecasts, dtype=np.float64)))


def interval_coverage(actual: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of days whose actual value lies inside its interval (ends included)."""
    actual = _errors(actual, "actual")
    return float(np.mean((np.asarray(lower) <= actual) & (actual <= np.asarray(upper))))
