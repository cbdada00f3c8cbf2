"""Daily bars in, the next close and its interval out: the forecaster a user calls.

The trained ensemble reads normalised windows of log prices; a caller has bars. This module
turns the one into the other the way prepare does (:func:`nextclose.features.window_inputs`),
and the ensemble's log return back into a close. The interval is split conformal on the log
scale (:mod:`nextclose.significance`), drawn from the absolute log residuals of the model's
forecasts of the validation days, which training stores beside the model (its
:class:`Calibration`), so any coverage can be asked for later. ``nextclose predict`` and the
logged MLflow model (:mod:`nextclose.served`) both call :func:`forecast_table`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

import numpy as np
import pandas as pd

from nextclose import bars, features, metrics, significance
from nextclose.errors import DataError
from nextclose.params import FeatureParams

REQUIRED_COLUMNS = ("date", "open", "high", "low", "close")
# One row per forecast: the day forecast (the next bar's date, or the next weekday after the
# last bar), the bar it starts from, and the forecast with its interval.
OUTPUT_COLUMNS = ("date", "last_date", "last_close", "forecast", "lower", "upper")
# A panel's model answers one row per symbol (per day, with every_day).
PANEL_OUTPUT_COLUMNS = ("date", "symbol", "last_date", "last_close", "forecast", "lower", "upper")


@dataclasses.dataclass(frozen=True)
class Calibration:
    """What the forecaster needs besides the network: the window, whether volume is an input,
    and the absolute log residuals ``|log(actual / forecast)|`` of the validation days."""

    window: int
    volume: bool
    residuals: tuple[float, ...]
    # A panel's global model: each symbol's statistics, which scale its windows before the network
    # reads them and its answer after; the residuals are then in units of each symbol's target scale.
    symbols: Optional[dict[str, features.Normalisation]] = None

    @property
    def columns(self) -> tuple[str, ...]:
        volume = ("volume",) if self.volume else ()
        if self.symbols is None:
            return REQUIRED_COLUMNS + volume
        names = next(iter(self.symbols.values())).feature_names
        prices = ("open", "high", "low", "close") if "log_open" in names else ("close",)
        return ("date", "symbol") + prices + volume

    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = {"window": self.window, "volume": self.volume, "residuals": list(self.residuals)}
        if self.symbols is not None:
            document["symbols"] = {symbol: dataclasses.asdict(stats) for symbol, stats in sorted(self.symbols.items())}
        return document

    @classmethod
    def from_document(cls, document: Mapping[str, Any], source: str) -> Calibration:
        try:
            symbols = None if "symbols" not in document else {
                str(symbol): features.Normalisation(tuple(stats["feature_names"]), tuple(map(float, stats["mean"])),
                                                    tuple(map(float, stats["std"])), float(stats["target_scale"]))
                for symbol, stats in document["symbols"].items()
            }
            return cls(int(document["window"]), bool(document["volume"]),
                       tuple(float(r) for r in document["residuals"]), symbols)
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            raise DataError(f"{source}: not a forecaster calibration ({error!r}); retrain the model") from None


# Windows per call of the network on a panel: all of them at once would hold every member's
# state for every day of every window (gigabytes for 20 stocks' histories).
FORWARD_CHUNK = 2048


def network_answers(network: Any, inputs: np.ndarray) -> np.ndarray:
    """The served ensemble's outputs ``[n]`` over ``inputs``, :data:`FORWARD_CHUNK` at a time."""
    if len(inputs) == 0:
        return np.zeros(0)
    return np.concatenate([np.asarray(network(inputs[start:start + FORWARD_CHUNK]), dtype=np.float64).reshape(-1)
                           for start in range(0, len(inputs), FORWARD_CHUNK)])


def member_answers(network: Any, inputs: np.ndarray) -> np.ndarray:
    """Each member's outputs ``[members, n]`` over ``inputs``, :data:`FORWARD_CHUNK` at a time."""
    return np.concatenate([np.asarray(network.member_outputs(inputs[start:start + FORWARD_CHUNK]), dtype=np.float64)
                           for start in range(0, len(inputs), FORWARD_CHUNK)], axis=1)


def largest_coverage(calibration: Calibration) -> float:
    """A hair below the highest coverage the ``n`` validation residuals can give, ``n / (n + 1)``
    (below: so that rounding cannot make its rank ``n + 1``)."""
    n = len(calibration.residuals)
    return n / (n + 1) - 1e-9


def calibrate(network: Any, validation: features.Windows, params: FeatureParams) -> Calibration:
    """The calibration of ``network`` on the validation windows."""
    forecasts = metrics.closes_from_log_returns(
        validation.last_close, np.asarray(network(validation.inputs), dtype=np.float64).reshape(-1))
    residuals = significance.log_residuals(validation.next_close, forecasts)
    return Calibration(params.window, params.volume, tuple(float(r) for r in residuals))


def calibrate_panel(network: Any, validation: features.PanelWindows, per_symbol: dict[str, features.Normalisation],
                    params: FeatureParams) -> Calibration:
    """The calibration of a panel's global model on the validation windows (unscaled, as
    prepared): each residual divided by its symbol's target scale, so that one pooled quantile
    times a symbol's own scale is that symbol's interval."""
    scaled = features.normalise_panel(validation, per_symbol)
    scales = features.symbol_target_scales(validation.symbols, per_symbol)
    forecasts = metrics.closes_from_log_returns(validation.last_close, network_answers(network, scaled.inputs) * scales)
    residuals = significance.log_residuals(validation.next_close, forecasts) / scales
    return Calibration(params.window, params.volume, tuple(float(r) for r in residuals), dict(per_symbol))


def next_weekday(day: Any) -> np.datetime64:
    """The first Monday-to-Friday day after ``day`` (exchange holidays are not known here)."""
    following = np.asarray(day, dtype="datetime64[D]") + 1
    next_day: Any = np.busday_offset(following, 0, roll="forward")
    return next_day


def read_bars(frame: pd.DataFrame, calibration: Calibration, source: str) -> pd.DataFrame:
    """The caller's bars as a checked table: the columns the model needs, dates parsed, values
    numbers, prepare's rules (:func:`nextclose.bars.validate_bars`), and at least one window."""
    missing = [column for column in calibration.columns if column not in frame.columns]
    if missing:
        why = " (the model reads log volume: features.volume was true)" if "volume" in missing else ""
        raise DataError(f"{source}: no {', '.join(missing)} column{'s' if len(missing) > 1 else ''}{why}; "
                        f"the model needs {', '.join(calibration.columns)}")
    table = pd.DataFrame({"date": bars.parse_dates(frame["date"].reset_index(drop=True), source)})
    if calibration.symbols is not None:
        return _read_panel_bars(frame, table, calibration, source)
    for column in calibration.columns[1:]:
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise DataError(f"{source}: row {row + 1} ({table['date'].iloc[row]:%Y-%m-%d}): {column} "
                            f"{frame[column].iloc[row]!r} is not a number")
        table[column] = values.to_numpy(dtype=np.float64)
    bars.validate_bars(table, source)
    if len(table) < calibration.window:
        raise DataError(f"{source}: {len(table)} bars, but the model reads windows of {calibration.window} "
                        f"days (features.window): send at least {calibration.window}")
    return table


def _read_panel_bars(frame: pd.DataFrame, table: pd.DataFrame, calibration: Calibration, source: str) -> pd.DataFrame:
    """:func:`read_bars` for a panel's model: a ``symbol`` column, each symbol one the model was
    trained on, with at least one window of its own bars; sorted by symbol, then date."""
    from nextclose import panels

    assert calibration.symbols is not None
    table["symbol"] = frame["symbol"].astype(str).to_numpy()
    for column in calibration.columns[2:]:
        values = pd.to_numeric(frame[column].reset_index(drop=True), errors="coerce")
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise DataError(f"{source}: row {row + 1} ({table['date'].iloc[row]:%Y-%m-%d}, symbol "
                            f"{table['symbol'].iloc[row]}): {column} {frame[column].iloc[row]!r} is not a number")
        table[column] = values.to_numpy(dtype=np.float64)
    panels.validate_panel(table, source)
    unknown = sorted(set(table["symbol"]) - set(calibration.symbols))
    if unknown:
        raise DataError(f"{source}: symbol {unknown[0]} is not one the model was trained on "
                        f"(it knows {', '.join(sorted(calibration.symbols))})")
    counts = table.groupby("symbol").size()
    short = counts[counts < calibration.window]
    if len(short):
        raise DataError(f"{source}: symbol {short.index[0]}: {short.iloc[0]} bars, but the model reads windows "
                        f"of {calibration.window} days (features.window): send at least {calibration.window}")
    return table.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)


def _panel_forecast_table(network: Any, table: pd.DataFrame, calibration: Calibration, half_width: float,
                          every_day: bool) -> pd.DataFrame:
    """:func:`forecast_table` for a panel: every symbol's windows scaled by its own statistics, one
    call of the network for all of them, each answer and interval in the symbol's own scale."""
    assert calibration.symbols is not None
    parts = []
    for symbol, rows in table.groupby("symbol", sort=True):
        rows = rows.reset_index(drop=True)
        inputs = features.window_inputs(rows, FeatureParams(calibration.window, calibration.volume))
        if not every_day:
            inputs = inputs[-1:]
        parts.append((str(symbol), rows, inputs))
    stats = calibration.symbols
    scaled = np.concatenate([(inputs - np.asarray(stats[symbol].mean)) / np.asarray(stats[symbol].std)
                             for symbol, _, inputs in parts]).astype(np.float32)
    answers = network_answers(network, scaled)
    frames, start = [], 0
    for symbol, rows, inputs in parts:
        scale = stats[symbol].target_scale
        answer = answers[start:start + len(inputs)] * scale
        start += len(inputs)
        at = np.arange(len(rows) - len(inputs), len(rows))
        close = rows["close"].to_numpy(dtype=np.float64)[at]
        forecast = metrics.closes_from_log_returns(close, answer)
        lower, upper = significance.log_interval(forecast, half_width * scale)
        dates = rows["date"].to_numpy().astype("datetime64[D]")
        following = np.append(dates[1:], next_weekday(dates[-1]))
        frames.append(pd.DataFrame({
            "date": pd.to_datetime(following[at]).strftime("%Y-%m-%d"), "symbol": symbol,
            "last_date": pd.to_datetime(dates[at]).strftime("%Y-%m-%d"),
            "last_close": close, "forecast": forecast, "lower": lower, "upper": upper,
        }, columns=PANEL_OUTPUT_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def forecast_table(network: Any, table: pd.DataFrame, calibration: Calibration, coverage: float,
                   every_day: bool = False) -> pd.DataFrame:
    """The next close after the last bar of ``table`` (checked by :func:`read_bars`), or with
    ``every_day`` after each bar that ends a whole window, with ``coverage`` intervals; for a
    panel's model, one row per symbol (and day)."""
    if calibration.symbols is not None:
        return _panel_forecast_table(network, table, calibration, _half_width(calibration, coverage), every_day)
    inputs = features.window_inputs(table, FeatureParams(calibration.window, calibration.volume))
    if not every_day:
        inputs = inputs[-1:]
    rows = np.arange(len(table) - len(inputs), len(table))
    close = table["close"].to_numpy(dtype=np.float64)[rows]
    half_width = _half_width(calibration, coverage)
    forecast = metrics.closes_from_log_returns(close, np.asarray(network(inputs), dtype=np.float64).reshape(-1))
    lower, upper = significance.log_interval(forecast, half_width)
    dates = table["date"].to_numpy().astype("datetime64[D]")
    following = np.append(dates[1:], next_weekday(dates[-1]))  # the day each bar's forecast is for
    return pd.DataFrame({
        "date": pd.to_datetime(following[rows]).strftime("%Y-%m-%d"),
        "last_date": pd.to_datetime(dates[rows]).strftime("%Y-%m-%d"),
        "last_close": close, "forecast": forecast, "lower": lower, "upper": upper,
    }, columns=OUTPUT_COLUMNS)


def _half_width(calibration: Calibration, coverage: float) -> float:
    try:
        return significance.conformal_quantile(np.asarray(calibration.residuals), coverage)
    except ValueError as error:  # a coverage outside (0, 1), or more than the validation days can give
        raise DataError(f"interval {coverage:g}: {error} (the model's validation split had "
                        f"{len(calibration.residuals)} days)") from None
