"""Daily OHLC(V) bars: reading the supported sources into one checked table.

The table every source produces has a ``date`` column (``datetime64``, strictly
increasing) and float columns ``open, high, low, close`` plus ``volume`` when the
source has it. :func:`validate_bars` enforces the rules; every error names the
source, the row (its date) and the rule broken.
"""

from __future__ import annotations

import codecs
import datetime as dt
import hashlib
import io
from pathlib import Path
from typing import Mapping, Optional

import numpy as np
import pandas as pd

from nextclose.errors import DataError

PRICE_COLUMNS = ("open", "high", "low", "close")

# Header spellings recognised without configuration, after stripping and lower-casing:
# English exports (Yahoo, Stooq, Kaggle), JoinQuant's get_price frame and akshare's Chinese headers.
HEADER_ALIASES = {
    "date": ("date", "datetime", "time", "trade_date", "timestamp", "日期", "时间", "交易日期"),
    "open": ("open", "开盘", "开盘价"),
    "high": ("high", "最高", "最高价"),
    "low": ("low", "最低", "最低价"),
    "close": ("close", "收盘", "收盘价"),
    "volume": ("volume", "vol", "成交量"),
}
# The largest price accepted: the tutorial's network reads raw prices as float32, and its
# squared errors must stay finite too. Volumes enter as logs; they need only fit float32.
LARGEST_VALUE = 1e15
LARGEST_VOLUME = float(np.finfo(np.float32).max)
DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S")


def load_msft() -> pd.DataFrame:
    """Microsoft daily bars shipped inside pmdarima (1986-03-13 to 2017-11-10), offline."""
    from pmdarima.datasets import load_msft as pmdarima_load_msft

    frame = pmdarima_load_msft()
    table = pd.DataFrame(
        {
            "date": pd.to_datetime(frame["Date"], format="%Y-%m-%d"),
            "open": frame["Open"].astype(float),
            "high": frame["High"].astype(float),
            "low": frame["Low"].astype(float),
            "close": frame["Close"].astype(float),
            "volume": frame["Volume"].astype(float),
        }
    )
    return table


def _detect_columns(headers: list[str], overrides: Optional[Mapping[str, str]]) -> dict[str, str]:
    """Map each field to the file's header that holds it; unknown headers are ignored."""
    normalised = {header.strip().lower(): header for header in headers}
    found: dict[str, str] = {}
    for field, aliases in HEADER_ALIASES.items():
        for alias in aliases:
            if alias in normalised:
                found[field] = normalised[alias]
                break
    if overrides:
        found.update(overrides)
    return found


def parse_dates(raw: pd.Series, source: str) -> pd.Series:
    """Parse a column of date strings written in one of :data:`DATE_FORMATS`."""
    text = raw.astype("string").str.strip()
    best: Optional[pd.Series] = None
    for date_format in DATE_FORMATS:
        parsed = pd.to_datetime(text, format=date_format, errors="coerce")
        if best is None or parsed.notna().sum() > best.notna().sum():
            best = parsed
        if parsed.notna().all():
            break
    assert best is not None
    bad = best.isna()
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        value = raw.iloc[position]
        raise DataError(
            f"{source}: row {position + 1}: unparseable date {value!r} "
            f"(expected e.g. 2018-01-02, 2018/1/2 or 20180102)"
        )
    return best


def read_csv_bars(path: str | Path, columns: Optional[Mapping[str, str]] = None) -> pd.DataFrame:
    """Read a daily OHLC(V) CSV export into the bars table (not yet validated).

    Headers are matched in any order and case (:data:`HEADER_ALIASES`); a date
    index column without a header (pandas' ``to_csv`` of a date-indexed frame, as
    JoinQuant's ``get_price`` gives) is recognised too. ``columns`` maps fields
    (``date``, ``open``, ...) to header names and overrides detection.
    """
    source = str(path)
    frame = read_text_frame(path)
    headers = list(frame.columns)
    mapping = _detect_columns(headers, columns)
    if "date" not in mapping and headers and (
        headers[0].startswith("Unnamed") or headers[0].strip() == ""
    ):
        mapping["date"] = headers[0]  # the index column of a date-indexed frame
    for field in ("date",) + PRICE_COLUMNS:
        if field not in mapping or mapping[field] not in headers:
            wanted = mapping.get(field, field)
            raise DataError(
                f"{source}: missing required column {wanted!r} for {field} "
                f"(found: {', '.join(repr(h) for h in headers)}; "
                f"map it with data.columns.{field} in params.yaml)"
            )
    if "volume" in mapping and mapping["volume"] not in headers:
        raise DataError(f"{source}: column {mapping['volume']!r} given for volume is not in the file")
    dates = parse_dates(frame[mapping["date"]], source)
    table = pd.DataFrame({"date": dates})
    for field in PRICE_COLUMNS + ("volume",):
        if field not in mapping:
            continue
        values, garbled = parse_numbers(frame[mapping[field]])
        if garbled.any():
            position = int(np.flatnonzero(garbled.to_numpy())[0])
            raise DataError(
                f"{source}: row {position + 1} ({dates.iloc[position]:%Y-%m-%d}): {field} "
                f"{frame[mapping[field]].iloc[position]!r} is not a number"
            )
        table[field] = values
    return table


def read_text_frame(path: str | Path, header: Optional[int] = 0) -> pd.DataFrame:
    """Every cell of a CSV file as a string (empty cells as ""); errors name the file."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{source}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{source}: is a directory, not a CSV file (check data.path)") from None
    except OSError as error:
        raise DataError(f"{source}: cannot be read: {error.strerror}") from None
    text, encoding = _decode(raw, source)
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, header=header)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise DataError(f"{source}: not a readable CSV file ({encoding}): {error}") from None


def parse_numbers(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The cells as floats (empty: NaN; "1,234.5": 1234.5) and which cells are not numbers."""
    cells = raw.astype("string").str.strip().str.replace(",", "", regex=False)
    values = pd.to_numeric(cells.replace("", pd.NA), errors="coerce").astype(float)
    return values, values.isna() & (cells != "")


# Tried in this order when a file is not UTF-8: UTF-16 only with its byte-order mark;
# GB18030 (a superset of GBK and GB2312) is how Excel and akshare users save Chinese headers.
FALLBACK_ENCODINGS = ("gb18030",)


def _decode(raw: bytes, source: str) -> tuple[str, str]:
    """The file's text and the encoding it was read with."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates: tuple[str, ...] = ("utf-16",)
    else:
        candidates = ("utf-8-sig", *FALLBACK_ENCODINGS)
    for encoding in candidates:
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise DataError(
        f"{source}: not text in {' or '.join(candidates)}; save the file as UTF-8 (or GBK, or UTF-16 "
        f"with a byte-order mark)"
    )


def validate_bars(table: pd.DataFrame, source: str) -> None:
    """Refuse bars that break a rule; the error names the source, the date and the rule."""

    def day(position: int) -> str:
        return table["date"].iloc[position].strftime("%Y-%m-%d")

    if len(table) == 0:
        raise DataError(f"{source}: no rows")
    dates = table["date"].to_numpy()
    steps = np.diff(dates).astype("timedelta64[ns]").astype(np.int64)
    if (steps <= 0).any():
        position = int(np.flatnonzero(steps <= 0)[0]) + 1
        rule = "repeats the previous row's date" if steps[position - 1] == 0 else (
            f"comes after {day(position - 1)}"
        )
        raise DataError(
            f"{source}: row {position + 1} ({day(position)}): date {rule}; "
            f"dates must be unique and increasing"
        )
    future = dates > np.datetime64(dt.date.today() + dt.timedelta(days=1), "ns")
    if future.any():
        position = int(np.flatnonzero(future)[0])
        raise DataError(f"{source}: row {position + 1} ({day(position)}): date is in the future")
    for field in PRICE_COLUMNS:
        values = table[field].to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values <= 0) | (values > LARGEST_VALUE)
        if bad.any():
            position = int(np.flatnonzero(bad)[0])
            value = values[position]
            what = "missing" if np.isnan(value) else (
                "not finite" if not np.isfinite(value) else "not positive" if value <= 0 else
                f"too large (the model's float32 inputs hold at most {LARGEST_VALUE:g})"
            )
            raise DataError(f"{source}: {day(position)}: {field} is {what} ({value:g})")
    if "volume" in table:
        volume = table["volume"].to_numpy(dtype=float)
        bad = ~np.isfinite(volume) | (volume < 0) | (volume > LARGEST_VOLUME)
        if bad.any():
            position = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{source}: {day(position)}: volume is missing, not finite, negative or too large "
                f"({volume[position]:g})"
            )
    open_, high, low, close = (table[f].to_numpy(dtype=float) for f in PRICE_COLUMNS)
    low_bad = low > np.minimum(open_, close)
    if low_bad.any():
        position = int(np.flatnonzero(low_bad)[0])
        raise DataError(
            f"{source}: {day(position)}: low {low[position]:g} is above min(open, close) "
            f"{min(open_[position], close[position]):g}"
        )
    high_bad = high < np.maximum(open_, close)
    if high_bad.any():
        position = int(np.flatnonzero(high_bad)[0])
        raise DataError(
            f"{source}: {day(position)}: high {high[position]:g} is below max(open, close) "
            f"{max(open_[position], close[position]):g}"
        )


def select_dates(
    table: pd.DataFrame, start: Optional[dt.date], end: Optional[dt.date], source: str,
    *, error: type[DataError] = DataError, hint: str = "",
) -> pd.DataFrame:
    """Rows with ``start <= date <= end`` (either bound may be None).

    No row at all raises ``error`` naming ``source``, the range, what the table covers
    and ``hint``.
    """
    keep = np.ones(len(table), dtype=bool)
    if len(table):
        if start is not None:
            keep &= (table["date"] >= pd.Timestamp(start)).to_numpy()
        if end is not None:
            keep &= (table["date"] <= pd.Timestamp(end)).to_numpy()
    if not keep.any():
        covers = " (no rows at all)" if not len(table) else (
            f" (the data runs from {table['date'].iloc[0]:%Y-%m-%d} "
            f"to {table['date'].iloc[-1]:%Y-%m-%d})"
        )
        raise error(
            f"{source}: no rows between data.start {start or 'null'} and data.end "
            f"{end or 'null'}{covers}" + (f": {hint}" if hint else "")
        )
    return table.loc[keep].reset_index(drop=True)


def bars_hash(table: pd.DataFrame) -> str:
    """SHA-256 of the table's values, stable across sources and file layouts."""
    digest = hashlib.sha256()
    digest.update(",".join(table.columns).encode())
    digest.update(table["date"].to_numpy().astype("datetime64[ns]").astype(np.int64).tobytes())
    for column in table.columns[1:]:
        digest.update(table[column].to_numpy(dtype=np.float64).tobytes())
    return digest.hexdigest()
