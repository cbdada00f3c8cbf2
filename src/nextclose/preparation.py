"""From checked bars to the prepared data set: the date range, the split, the windows,
the normalisation and the tutorial's sequence. Plain values in, plain values out."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np
import pandas as pd

from nextclose import bars, features, panels
from nextclose.params import DataParams, FeatureParams, SplitParams


@dataclasses.dataclass(frozen=True)
class Prepared:
    """Everything the prepare stage computes, before anything is written."""

    source: str
    bars: pd.DataFrame  # the date range's checked bars, with a `split` column
    splits: dict[str, features.Windows]
    normalisation: features.Normalisation
    tutorial_x: np.ndarray
    tutorial_y: np.ndarray
    source_hash: str
    # A panel (bars with a symbol column): each symbol's statistics, by which its windows are
    # scaled before the global model reads them (its own ``normalisation`` is then the identity).
    panel_normalisation: Optional[dict[str, features.Normalisation]] = None
    # Symbols with too few training samples of their own, scaled by the panel's median statistics
    median_scaled: tuple[str, ...] = ()

    @property
    def is_panel(self) -> bool:
        return self.panel_normalisation is not None

    @property
    def tutorial_target_dates(self) -> np.ndarray:
        """The date of each of the tutorial's targets: every day but the first (none on a panel)."""
        return self.bars["date"].to_numpy().astype("datetime64[D]")[1:1 + len(self.tutorial_y)]

    def summary(self) -> dict[str, Any]:
        """The content of ``prepared.json``."""
        split_info = {}
        for name, part in self.splits.items():
            first, last = features.date_range(part.target_dates) or (None, None)
            split_info[name] = {"samples": int(len(part.targets)), "first_target": first, "last_target": last}
        dates = self.bars["date"]  # a panel is sorted by symbol first: its range is its earliest and latest day
        first, last = (dates.min(), dates.max()) if self.is_panel else (dates.iloc[0], dates.iloc[-1])
        summary: dict[str, Any] = {
            "source": self.source,
            "source_sha256": self.source_hash,
            "rows": int(len(self.bars)),
            "first_date": first.strftime("%Y-%m-%d"),
            "last_date": last.strftime("%Y-%m-%d"),
            "splits": split_info,
            "normalisation": dataclasses.asdict(self.normalisation),
            "tutorial": {"steps": int(len(self.tutorial_y))},
        }
        if self.panel_normalisation is not None:
            summary["panel"] = {
                "symbols": sorted(self.panel_normalisation),
                "scaled_by_panel_median": list(self.median_scaled),
                "normalisation": {symbol: dataclasses.asdict(stats)
                                  for symbol, stats in sorted(self.panel_normalisation.items())},
            }
        return summary


def prepare(
    table: pd.DataFrame, source: str, data: DataParams, split: SplitParams, feature: FeatureParams
) -> Prepared:
    """Check, cut and window the bars; raise ``DataError`` before anything is written."""
    if "symbol" in table:
        return prepare_panel(table, source, data, split, feature)
    bars.validate_bars(table, source)
    if feature.volume and "volume" not in table:
        raise bars.DataError(
            f"{source}: no volume column, but features.volume is true in params "
            f"(set features.volume: false, or map the column with data.columns.volume)"
        )
    selected = bars.select_dates(table, data.start_date, data.end_date, source)
    if not feature.volume:
        selected = selected.drop(columns=["volume"], errors="ignore")
    windows = features.make_windows(selected, feature)
    if len(windows.targets) < 3 * features.MIN_SAMPLES_PER_SPLIT:
        raise bars.DataError(
            f"{source}: too few rows: {len(selected)} rows between data.start and data.end, "
            f"but features.window={feature.window} plus "
            f"{3 * features.MIN_SAMPLES_PER_SPLIT} samples for the three splits need "
            f"{feature.window + 3 * features.MIN_SAMPLES_PER_SPLIT}"
        )
    boundaries = features.split_boundaries(windows.target_dates, split)
    splits = features.split_windows(windows, boundaries, source, feature.window)
    normalisation = features.fit_normalisation(splits["train"], features.feature_names(feature.volume))
    labelled = with_splits(selected, boundaries)
    tutorial_x, tutorial_y = features.tutorial_sequence(selected)
    return Prepared(
        source, labelled, splits, normalisation, tutorial_x, tutorial_y, bars.bars_hash(selected)
    )


def prepare_panel(
    table: pd.DataFrame, source: str, data: DataParams, split: SplitParams, feature: FeatureParams
) -> Prepared:
    """A panel: every symbol windowed on its own calendar, one split by date for all symbols (no
    symbol's test days inform training), each symbol scaled by its own training period."""
    panels.validate_panel(table, source)
    table = table.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)  # each symbol's days in order
    if feature.volume and "volume" not in table:
        raise bars.DataError(
            f"{source}: no volume column, but features.volume is true in params "
            f"(set features.volume: false: close-only panels such as data.source sp500 have no volume)"
        )
    selected = bars.select_dates(table, data.start_date, data.end_date, source)
    if not feature.volume:
        selected = selected.drop(columns=["volume"], errors="ignore")
    windows = features.make_panel_windows(selected, feature)
    days = np.unique(windows.target_dates)
    if len(days) < 3 * features.MIN_SAMPLES_PER_SPLIT:
        raise bars.DataError(
            f"{source}: too few days: {len(days)} target days between data.start and data.end, at least "
            f"{3 * features.MIN_SAMPLES_PER_SPLIT} needed for the three splits (features.window={feature.window})"
        )
    boundaries = features.split_boundaries(days, split)  # fractions of the days, not of the samples
    splits = features.split_windows(windows, boundaries, source, feature.window)
    train = splits["train"]
    assert isinstance(train, features.PanelWindows)
    every_symbol = selected["symbol"].to_numpy().astype(str)
    features.check_panel_symbols(windows, every_symbol, source, feature.window)
    names = features.feature_names(feature.volume, "open" in selected)
    # From every training window of the symbol, a member of the index then or not: its own past
    per_symbol = features.fit_panel_normalisation(train, names, list(np.unique(every_symbol)))
    median_scaled = features.too_few_to_fit(train, list(np.unique(every_symbol)))
    if "member" in selected:  # point-in-time membership: train on and score members' days only
        splits = {name: features.select(part, features.target_membership(selected, part))  # type: ignore[arg-type]
                  for name, part in splits.items()}
        for name, part in splits.items():
            if len(part.targets) < features.MIN_SAMPLES_PER_SPLIT:
                raise bars.DataError(f"{source}: the {name} split holds {len(part.targets)} samples of index "
                                     f"members, at least {features.MIN_SAMPLES_PER_SPLIT} needed")
    labelled = with_splits(selected, boundaries)
    no_sequence = np.zeros((0, 4), np.float32), np.zeros((0, 1), np.float32)  # the tutorial reads one series
    return Prepared(source, labelled, splits, features.identity_normalisation(names), *no_sequence,
                    panels.panel_hash(selected), per_symbol, tuple(median_scaled))


def with_splits(selected: pd.DataFrame, boundaries: tuple[np.datetime64, np.datetime64]) -> pd.DataFrame:
    """The bars with a ``split`` column: each row in the split its date falls in."""
    validation_start, test_start = (pd.Timestamp(b) for b in boundaries)
    labelled = selected.copy()
    labelled["split"] = np.where(
        labelled["date"] < validation_start, "train",
        np.where(labelled["date"] < test_start, "validation", "test"),
    )
    return labelled
