"""The folds a tuning trial is scored on: ``tune.cv_folds`` expanding windows.

One validation split is one period: a search that picks the settings best on it picks, in part,
what suited that period, and the choice does not carry to the next. So each trial is trained
``tune.cv_folds`` times, once per block: the blocks are the last ``cv_folds`` stretches of the
training and validation period, each as long as the validation split (in days), and each block
early-stops and scores a model trained on every sample before it, with normalisation fitted on
those samples alone (as the walk-forward backtest does). The trial's value is the mean of the
blocks' values. With one fold the block is the validation split and the training samples are
the training split: the data the train stage reads, bit for bit.

Neither the test split nor a walk-forward day is read: the blocks end before the first of
either (``backtest.days`` may reach back past the test split into validation).

Plain values in, plain values out.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import pandas as pd

from nextclose import features, metrics
from nextclose import folds as expanding
from nextclose.errors import DataError
from nextclose.features import Normalisation, PanelWindows, TrainingData, Windows
from nextclose.params import Params


@dataclasses.dataclass(frozen=True)
class TuningFold:
    """One block: what trains and early-stops on it, and the references scored on it."""

    number: int  # 1-based, oldest first
    data: TrainingData  # train: every sample before the block; validation: the block (scaled as training reads)
    per_symbol: Optional[dict[str, Normalisation]]  # a panel's statistics, fitted on this fold's train
    train_start: str
    train_end: str
    start: str  # the block's first target date
    end: str  # its last
    persistence_val_loss: float  # forecasting no change, in the training loss's units
    drift_val_loss: float  # forecasting each series' mean log change before the block

    def dates(self) -> dict[str, object]:
        """The fold as the study records it (a user attribute; JSON)."""
        return {"fold": self.number, "train_start": self.train_start, "train_end": self.train_end,
                "start": self.start, "end": self.end, "train_samples": len(self.data.train.targets),
                "validation_samples": len(self.data.validation.targets)}


def _days(windows: Windows) -> int:
    return len(np.unique(windows.target_dates)) if isinstance(windows, PanelWindows) else len(windows.targets)


def tuning_samples(splits: dict[str, Windows], params: Params) -> Windows:
    """The training and validation samples the tuner may read: none dated on or after the first
    walk-forward day (``backtest.days`` back from the end; null: the test split's length)."""
    days, _ = expanding.resolve_lengths(params.backtest, splits)
    samples = expanding.concatenate([splits["train"], splits["validation"]])
    everything = expanding.all_samples(splits)
    unique = np.unique(everything.target_dates)
    if days >= len(unique):
        raise DataError(f"backtest.days={days} covers every prepared day: nothing is left to tune on")
    first_walked = unique[len(unique) - days]
    return features.select(samples, samples.target_dates < first_walked)


def _drift_rates(bars: pd.DataFrame, before: np.datetime64, validation: Windows) -> np.ndarray:
    """Each validation sample's drift: the mean log change of its series' closes before ``before``."""
    dates = pd.to_datetime(bars["date"]).to_numpy().astype("datetime64[D]")
    past = bars.loc[dates < before]
    if isinstance(validation, PanelWindows):
        closes = {str(symbol): rows["close"].to_numpy(np.float64) for symbol, rows in past.groupby("symbol")}
        rates, _ = metrics.drift_rates(closes, validation.symbols)
        return np.array([rates[str(symbol)] for symbol in validation.symbols], np.float64)
    return np.full(len(validation.targets), metrics.drift_rate(past["close"].to_numpy(np.float64)))


def plan(splits: dict[str, Windows], bars: pd.DataFrame, feature_names: tuple[str, ...], params: Params,
         tutorial_x: np.ndarray, tutorial_y: np.ndarray) -> list[TuningFold]:
    """The ``params.tune.cv_folds`` folds over the prepared windows ``splits`` (raw, as
    ``data/prepared`` holds them) and bars, oldest first."""
    samples = tuning_samples(splits, params)
    block = _days(splits["validation"])
    folds = params.tune.cv_folds
    panel = isinstance(samples, PanelWindows)
    available = _days(samples)
    if available - folds * block < features.MIN_SAMPLES_PER_SPLIT:
        raise DataError(
            f"tune.cv_folds={folds}: {folds} blocks of {block} days (the validation split's length) leave "
            f"{max(available - folds * block, 0)} of the {available} tuning days to train the first fold on, "
            f"at least {features.MIN_SAMPLES_PER_SPLIT} needed; lower tune.cv_folds")
    if panel:
        assert isinstance(samples, PanelWindows)
        planned = expanding.plan_panel_folds(samples.target_dates, folds * block, folds, 0)
    else:
        planned = expanding.plan_folds(len(samples.targets), folds * block, folds, 0)
    symbols = sorted(map(str, np.unique(samples.symbols))) if isinstance(samples, PanelWindows) else []
    result = []
    for fold in planned:
        train, validation = features.select(samples, fold.train), features.select(samples, fold.forecast)
        per_symbol: Optional[dict[str, Normalisation]] = None
        if isinstance(train, PanelWindows) and isinstance(validation, PanelWindows):
            per_symbol = features.fit_panel_normalisation(train, feature_names, symbols)
            scales = features.symbol_target_scales(validation.symbols, per_symbol)
            data = TrainingData(features.normalise_panel(train, per_symbol), features.normalise_panel(
                validation, per_symbol), features.identity_normalisation(feature_names), tutorial_x, tutorial_y)
        else:
            normalisation = features.fit_normalisation(train, feature_names)
            scales = np.full(len(validation.targets), normalisation.target_scale)
            data = TrainingData(train, validation, normalisation, tutorial_x, tutorial_y)
        realised = validation.targets.astype(np.float64) / scales
        drift = _drift_rates(bars, validation.target_dates[0], validation) / scales
        result.append(TuningFold(
            fold.number, data, per_symbol, str(train.target_dates[0]), str(train.target_dates[-1]),
            str(validation.target_dates[0]), str(validation.target_dates[-1]),
            float(np.mean(np.square(realised))), float(np.mean(np.square(realised - drift)))))
    return result
