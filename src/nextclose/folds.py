"""Expanding-window folds over date-ordered samples: what the walk-forward backtest and the
tuner's folds (:mod:`nextclose.tuning_folds`) cut the prepared windows into.

Plain values in, plain values out.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from nextclose import features
from nextclose.errors import DataError
from nextclose.params import BacktestParams


@dataclasses.dataclass(frozen=True)
class Fold:
    """Sample indices into the date-ordered samples: what trains, what early-stops, what is forecast."""

    number: int  # 1-based
    train: np.ndarray
    validation: np.ndarray
    forecast: np.ndarray


def concatenate(parts: list[features.Windows]) -> features.Windows:
    kind = type(parts[0])  # a panel's windows keep their symbols
    return kind(*(
        np.concatenate([getattr(part, field.name) for part in parts])
        for field in dataclasses.fields(kind)
    ))


def all_samples(splits: dict[str, features.Windows]) -> features.Windows:
    """The samples of every split in date order: the backtest draws its own boundaries."""
    return concatenate([splits[name] for name in features.SPLITS])


def take(samples: features.Windows, index: np.ndarray) -> features.Windows:
    return features.select(samples, index)


def plan_folds(n_samples: int, days: int, folds: int, validation_days: int) -> list[Fold]:
    """The folds over the last ``days`` of ``n_samples`` date-ordered samples, as equal as can
    be (the first folds one longer when ``days`` does not divide), each with every earlier
    sample: the last ``validation_days`` of them to early-stop, the rest to train."""
    if not 1 <= folds <= days:
        raise DataError(f"backtest.folds={folds} must lie in 1 .. backtest.days ({days})")
    first = n_samples - days
    if first - validation_days < features.MIN_SAMPLES_PER_SPLIT:
        raise DataError(
            f"backtest: {n_samples} samples are too few for backtest.days={days} and "
            f"backtest.validation_days={validation_days}: the first fold would train on "
            f"{max(first - validation_days, 0)} samples, at least {features.MIN_SAMPLES_PER_SPLIT} needed"
        )
    plan = []
    for number, forecast in enumerate(np.array_split(np.arange(first, n_samples), folds), 1):
        start = int(forecast[0])
        plan.append(Fold(number, np.arange(0, start - validation_days),
                         np.arange(start - validation_days, start), forecast))
    return plan


def plan_panel_folds(target_dates: np.ndarray, days: int, folds: int, validation_days: int) -> list[Fold]:
    """:func:`plan_folds` for a panel's samples (ordered by date): the folds are cut in days, and
    every symbol's samples of a day go where that day goes."""
    unique, day = np.unique(target_dates, return_inverse=True)
    return [Fold(fold.number, *(np.flatnonzero(np.isin(day, part)) for part in
                                (fold.train, fold.validation, fold.forecast)))
            for fold in plan_folds(len(unique), days, folds, validation_days)]


def resolve_lengths(params: BacktestParams, splits: dict[str, features.Windows]) -> tuple[int, int]:
    """``backtest.days`` and ``backtest.validation_days``, null meaning the prepared split's length
    (in days: a panel's split holds several samples a day)."""
    def length(part: features.Windows) -> int:
        return len(np.unique(part.target_dates)) if isinstance(part, features.PanelWindows) else len(part.targets)

    days = params.days if params.days is not None else length(splits["test"])
    validation_days = params.validation_days if params.validation_days is not None else length(splits["validation"])
    return days, validation_days


