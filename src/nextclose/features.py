"""Turning checked bars into model inputs: the chronological split and the windows.

A sample is the window of the last ``window`` days ending on day t (inputs) and
the close of day t+1 (target). Everything is expressed relative to day t's close,
so the model is scale-free: inputs are log(price / close_t), the target is the
log return log(close_t+1 / close_t), and a prediction of 0 means "no change".
Samples belong to the split of their *target* date, so no validation or test
close is ever a training target.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np
import pandas as pd

from nextclose.errors import DataError
from nextclose.params import FeatureParams, SplitParams

SPLITS = ("train", "validation", "test")
# Fewest samples a split may hold: enough for a loss, a naive scale and a p-value to mean something.
MIN_SAMPLES_PER_SPLIT = 5


@dataclasses.dataclass(frozen=True)
class Windows:
    """Samples of one split: inputs, targets and what turns a target back into a price."""

    inputs: np.ndarray  # [n, window, features] float32, log-relative to the last close
    targets: np.ndarray  # [n] float32, log(close_t+1 / close_t)
    last_close: np.ndarray  # [n] float64, close_t
    next_close: np.ndarray  # [n] float64, close_t+1
    target_dates: np.ndarray  # [n] datetime64[D], day t+1


@dataclasses.dataclass(frozen=True)
class PanelWindows(Windows):
    """Samples of many symbols, ordered by target date, then symbol."""

    symbols: np.ndarray  # [n] str, the symbol each sample belongs to


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """What training may read: the training and validation samples, the normalisation
    fitted on the training samples, and the tutorial's sequence. The test split is not here."""

    train: Windows
    validation: Windows
    normalisation: Normalisation
    tutorial_x: np.ndarray  # [n, 4] float32: open, close, high, low of all days but the last
    tutorial_y: np.ndarray  # [n, 1] float32: the close of all days but the first


@dataclasses.dataclass(frozen=True)
class Normalisation:
    """Per-feature mean and standard deviation, and the target's root mean square.

    All three are fitted on training windows only. The target is scaled but not
    centred, so that a zero model output stays "no change".
    """

    feature_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    target_scale: float


def feature_names(volume: bool, ohlc: bool = True) -> tuple[str, ...]:
    names = ("log_open", "log_high", "log_low", "log_close") if ohlc else ("log_close",)
    return names + ("log_volume",) if volume else names


def price_columns(bars: pd.DataFrame) -> tuple[str, ...]:
    """The price columns the inputs read: open, high, low and close, or the close alone
    (close-only panels, such as adjusted closes, are common). The close comes last."""
    return ("open", "high", "low", "close") if "open" in bars else ("close",)


def window_inputs(bars: pd.DataFrame, params: FeatureParams) -> np.ndarray:
    """The model inputs of every window of ``params.window`` days in ``bars``, one per row from
    row ``window - 1`` on (the window ending on that row): ``[len(bars) - window + 1, window,
    features]`` float32, log-relative to the window's last close. The forecaster reads the
    last one; training reads all but the last (which has no next day)."""
    window = params.window
    columns = price_columns(bars)
    n_windows = len(bars) - window + 1
    if n_windows <= 0:
        return np.zeros((0, window, len(feature_names(params.volume, len(columns) > 1))), np.float32)
    prices = bars[list(columns)].to_numpy(dtype=np.float64)
    # index[i, j] is the row of day j of window i; window i ends on row i + window - 1.
    index = np.arange(window)[None, :] + np.arange(n_windows)[:, None]
    log_prices = np.log(prices)
    close = len(columns) - 1
    channels = [log_prices[index] - log_prices[index[:, -1], close][:, None, None]]
    if params.volume:
        log_volume = np.log1p(bars["volume"].to_numpy(dtype=np.float64))[index]
        channels.append((log_volume - log_volume.mean(axis=1, keepdims=True))[..., None])
    return np.concatenate(channels, axis=-1).astype(np.float32)


def make_windows(bars: pd.DataFrame, params: FeatureParams) -> Windows:
    """Every window of ``params.window`` days with its next-day target, in date order."""
    window = params.window
    close = bars["close"].to_numpy(dtype=np.float64)
    n_samples = len(bars) - window
    if n_samples <= 0:
        return Windows(
            np.zeros((0, window, len(feature_names(params.volume, "open" in bars))), np.float32),
            np.zeros(0, np.float32), np.zeros(0), np.zeros(0), np.zeros(0, "datetime64[D]"),
        )
    inputs = window_inputs(bars, params)[:n_samples]  # the last window has no next day
    last = np.arange(n_samples) + window - 1
    targets = np.log(close[last + 1] / close[last]).astype(np.float32)
    dates = bars["date"].to_numpy().astype("datetime64[D]")
    return Windows(inputs, targets, close[last], close[last + 1], dates[last + 1])


def split_boundaries(
    target_dates: np.ndarray, params: SplitParams
) -> tuple[np.datetime64, np.datetime64]:
    """First target date of the validation split and of the test split."""
    if params.validation_start is not None and params.test_start is not None:
        return np.datetime64(params.validation_start, "D"), np.datetime64(params.test_start, "D")
    n = len(target_dates)
    n_test = int(round(n * params.test_fraction))
    n_validation = int(round(n * params.validation_fraction))
    n_train = n - n_test - n_validation
    if min(n_test, n_validation, n_train) < 1:
        raise DataError(f"{n} samples cannot be split into train, validation and test")
    return target_dates[n_train], target_dates[n_train + n_validation]


def select(windows: Windows, keep: np.ndarray) -> Windows:
    """The samples where ``keep`` holds (a mask or indices), of the same kind as ``windows``."""
    return type(windows)(*(getattr(windows, f.name)[keep] for f in dataclasses.fields(windows)))


def split_windows(
    windows: Windows, boundaries: tuple[np.datetime64, np.datetime64], source: str, window: int
) -> dict[str, Windows]:
    """Cut the samples at the boundaries; refuse a split with too few samples."""
    validation_start, test_start = boundaries
    dates = windows.target_dates
    masks = {
        "train": dates < validation_start,
        "validation": (dates >= validation_start) & (dates < test_start),
        "test": dates >= test_start,
    }
    parts = {name: select(windows, mask) for name, mask in masks.items()}
    for name, part in parts.items():
        if len(part.targets) < MIN_SAMPLES_PER_SPLIT:
            raise DataError(
                f"{source}: too few rows: the {name} split gets {len(part.targets)} samples, "
                f"at least {MIN_SAMPLES_PER_SPLIT} needed (each sample needs features.window="
                f"{window} days of history and a next day; {len(dates) + window} rows in range, "
                f"validation from {validation_start}, test from {test_start})"
            )
    return parts


def fit_normalisation(train: Windows, names: tuple[str, ...]) -> Normalisation:
    """Statistics of the training windows alone."""
    flat = train.inputs.reshape(-1, train.inputs.shape[-1]).astype(np.float64)
    mean = flat.mean(axis=0)
    std = flat.std(axis=0)
    std = np.where(std > 0, std, 1.0)  # a constant feature (e.g. no volume traded) stays unscaled
    scale = float(np.sqrt(np.mean(np.square(train.targets.astype(np.float64)))))
    return Normalisation(
        names, tuple(float(v) for v in mean), tuple(float(v) for v in std), scale if scale > 0 else 1.0
    )


def make_panel_windows(bars: pd.DataFrame, params: FeatureParams) -> PanelWindows:
    """Every symbol's windows, each from that symbol's own rows (its own calendar: a gap in one
    symbol shifts no other), ordered by target date, then symbol."""
    parts = [(symbol, make_windows(rows.reset_index(drop=True), params))
             for symbol, rows in bars.groupby("symbol", sort=True)]
    symbols = np.concatenate([np.full(len(part.targets), symbol) for symbol, part in parts]).astype(str)
    pooled = Windows(*(np.concatenate([getattr(part, f.name) for _, part in parts])
                       for f in dataclasses.fields(Windows)))
    windows = PanelWindows(pooled.inputs, pooled.targets, pooled.last_close, pooled.next_close,
                           pooled.target_dates, symbols)
    return select(windows, np.lexsort((windows.symbols, windows.target_dates)))  # type: ignore[return-value]


def target_membership(bars: pd.DataFrame, windows: PanelWindows) -> np.ndarray:
    """Whether each sample's symbol belonged to the index on its target day (the bars'
    ``member`` column, point in time): only those samples are trained on and scored, so no
    stock is traded before it joined the index or after it left."""
    flags = bars.set_index(["symbol", "date"])["member"]
    days = pd.MultiIndex.from_arrays([windows.symbols, pd.to_datetime(windows.target_dates)])
    return flags.reindex(days).fillna(False).to_numpy(dtype=bool)


def fit_panel_normalisation(
    train: PanelWindows, names: tuple[str, ...], symbols: Optional[Sequence[str]] = None,
) -> dict[str, Normalisation]:
    """Each symbol's statistics from its own training windows alone, so that a quiet stock and a
    volatile one both reach the global model in units of their own typical move.

    A symbol of ``symbols`` with fewer than :data:`MIN_SAMPLES_PER_SPLIT` training windows (a
    stock listed, or joining the index, after the training period) gets the median of the other
    symbols' statistics: still fitted on training windows only, and no stock is left out because
    of when it appeared (which would be survivorship bias in the other direction)."""
    counts = {str(symbol): int(np.sum(train.symbols == symbol)) for symbol in np.unique(train.symbols)}
    fitted = {symbol: fit_normalisation(select(train, train.symbols == symbol), names)
              for symbol, count in counts.items() if count >= MIN_SAMPLES_PER_SPLIT}
    wanted = sorted(set(counts) | set(map(str, symbols if symbols is not None else ())))
    if not fitted:
        raise DataError(f"no symbol has {MIN_SAMPLES_PER_SPLIT} training samples: the training period is too short")
    median = Normalisation(
        names,
        tuple(float(v) for v in np.median([stats.mean for stats in fitted.values()], axis=0)),
        tuple(float(v) for v in np.median([stats.std for stats in fitted.values()], axis=0)),
        float(np.median([stats.target_scale for stats in fitted.values()])),
    )
    return {symbol: fitted.get(symbol, median) for symbol in wanted}


def too_few_to_fit(train: PanelWindows, symbols: Sequence[str]) -> list[str]:
    """The symbols :func:`fit_panel_normalisation` scales by the panel's median statistics."""
    return [str(s) for s in symbols if int(np.sum(train.symbols == s)) < MIN_SAMPLES_PER_SPLIT]


def identity_normalisation(names: tuple[str, ...]) -> Normalisation:
    """What the global model itself applies to inputs already scaled per symbol: nothing."""
    return Normalisation(names, (0.0,) * len(names), (1.0,) * len(names), 1.0)


def _symbol_rows(symbols: np.ndarray, per_symbol: dict[str, Normalisation]) -> tuple[list[str], np.ndarray]:
    known = sorted(per_symbol)
    rows = np.searchsorted(known, symbols)
    unknown = (rows >= len(known)) | (np.asarray(known + [""])[np.minimum(rows, len(known))] != symbols)
    if unknown.any():
        raise DataError(f"symbol {symbols[np.flatnonzero(unknown)[0]]!r} has no normalisation: it has no "
                        f"training samples (known: {', '.join(known)})")
    return known, rows


def symbol_target_scales(symbols: np.ndarray, per_symbol: dict[str, Normalisation]) -> np.ndarray:
    """Each sample's symbol's target scale: a model output times it is a log return."""
    known, rows = _symbol_rows(symbols, per_symbol)
    return np.array([per_symbol[s].target_scale for s in known], np.float64)[rows]


def normalise_panel(windows: PanelWindows, per_symbol: dict[str, Normalisation]) -> PanelWindows:
    """Inputs standardised and targets scaled with each sample's own symbol's statistics: what
    the global model trains on and reads. Prices and dates are left as they are."""
    known, rows = _symbol_rows(windows.symbols, per_symbol)
    mean = np.array([per_symbol[s].mean for s in known], np.float64)[rows][:, None, :]
    std = np.array([per_symbol[s].std for s in known], np.float64)[rows][:, None, :]
    inputs = ((windows.inputs.astype(np.float64) - mean) / std).astype(np.float32)
    targets = (windows.targets.astype(np.float64) / symbol_target_scales(windows.symbols, per_symbol))
    return dataclasses.replace(windows, inputs=inputs, targets=targets.astype(np.float32))


def check_panel_symbols(windows: PanelWindows, symbols: np.ndarray, source: str, window: int) -> None:
    """Every symbol needs days enough for a few samples of its own (each sample needs
    ``window`` days of history and a next day)."""
    for symbol in np.unique(symbols):
        count = int(np.sum(windows.symbols == symbol))
        if count < MIN_SAMPLES_PER_SPLIT:
            raise DataError(
                f"{source}: symbol {symbol}: too few days: {int(np.sum(symbols == symbol))} rows give {count} "
                f"samples, at least {MIN_SAMPLES_PER_SPLIT} needed (each needs features.window={window} days of "
                f"history and a next day: {window + MIN_SAMPLES_PER_SPLIT} rows); drop the symbol or move data.start"
            )


def tutorial_sequence(bars: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The tutorial's x and y: [open, close, high, low] of all days but the last, and
    the close of all days but the first, as float32 (``y`` shaped ``[n - 1, 1]``)."""
    x = bars[["open", "close", "high", "low"]].to_numpy()[:-1].astype(np.float32)
    y = bars[["close"]].to_numpy()[1:].astype(np.float32)
    return x, y


def date_range(dates: np.ndarray) -> Optional[tuple[str, str]]:
    if len(dates) == 0:
        return None
    return str(dates[0].astype("datetime64[D]")), str(dates[-1].astype("datetime64[D]"))
