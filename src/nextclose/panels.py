"""The panel table: daily closes (or bars) of many symbols in one long table.

A panel has the columns ``date`` (``datetime64[ns]``, whole days), ``symbol`` (str) and
``close``, optionally ``open, high, low`` (all three or none), ``volume`` and ``member``
(bool: the symbol belonged to the index that day, point in time; an index's constituents
keep their bars before they joined and after they left, for the windows' history), sorted by
(symbol, date). Each symbol keeps its own calendar: a day it did not trade has no row.
:func:`read_panel_csv` reads a long file (a symbol column) or a wide one (a column of
closes per symbol) into it; every error names the file, the row, the symbol and the rule.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from nextclose import bars
from nextclose.errors import DataError

SYMBOL_ALIASES = ("symbol", "ticker", "code", "instrument", "代码", "股票代码")
OHLC_COLUMNS = ("open", "high", "low")
VALUE_COLUMNS = ("open", "high", "low", "close", "volume")
MEMBER_COLUMN = "member"  # bool: a member of the index that day (the constituent sources)
PANEL_COLUMNS = ("date", "symbol") + VALUE_COLUMNS + (MEMBER_COLUMN,)
LONG_LAYOUT = "a long panel has date, symbol, close and optionally open, high, low, volume"
WIDE_LAYOUT = "a wide panel has a date column and one column of closes per symbol"


def load_sp500() -> pd.DataFrame:
    """The daily adjusted closes of 20 S&P 500 stocks (1990-2022) shipped in skfolio's wheel, offline."""
    from skfolio.datasets import load_sp500_dataset

    wide = load_sp500_dataset()
    dates = pd.Series(wide.index)
    parts = [pd.DataFrame({"date": dates, "symbol": str(symbol), "close": wide[symbol].to_numpy(dtype=float)})
             for symbol in wide.columns]
    long = pd.concat(parts, ignore_index=True)
    return _finish(long.loc[long["close"].notna()])


def read_panel_csv(path: str | Path, columns: Optional[Mapping[str, str]] = None) -> pd.DataFrame:
    """Read a long or wide panel CSV into the panel table, checked by the rules of :func:`validate_panel`.

    Long: a symbol column (:data:`SYMBOL_ALIASES`, or ``columns["symbol"]``), date, close,
    and optionally open, high, low and volume; any other column is refused. Wide: no symbol
    column, a date column and one column of closes per symbol; an empty cell is a day the
    symbol did not trade. Headers are matched as :func:`nextclose.bars.read_csv_bars` does;
    ``columns`` maps fields to headers. The rules run before sorting, so errors cite the file's rows.
    """
    source = str(path)
    cells = bars.read_text_frame(path, header=None)
    headers = [str(header) for header in cells.iloc[0]] if len(cells) else []
    body = cells.iloc[1:].reset_index(drop=True)
    found = _detect_columns(headers, columns, source)
    if "symbol" in found:
        raw = _long_cells(body, headers, found, source)
    else:
        raw = _wide_cells(body, headers, found, source)
    rows = raw.pop("row").to_numpy()
    table = _parse_values(raw, rows, source)
    _check_rules(table, rows, source)
    return _finish(table)


def validate_panel(table: pd.DataFrame, source: str) -> None:
    """Refuse a panel that breaks a rule; the error names ``source``, the row (its position in
    ``table``, from 1), its date and symbol, and the rule.

    Not checked here: whether each symbol has enough days (that depends on the window and the split).
    """
    _check_rules(table, np.arange(1, len(table) + 1), source)


def panel_hash(table: pd.DataFrame) -> str:
    """SHA-256 of the panel's values (symbols included), stable across sources and file layouts."""
    digest = hashlib.sha256()
    digest.update(",".join(table.columns).encode())
    digest.update(table["date"].to_numpy().astype("datetime64[ns]").astype(np.int64).tobytes())
    codes, names = pd.factorize(table["symbol"].astype(str))  # names in order of appearance
    for name in names:
        encoded = str(name).encode()
        digest.update(len(encoded).to_bytes(4, "little") + encoded)  # prefixed: no two lists hash alike
    digest.update(codes.astype(np.int64).tobytes())
    for column in table.columns:
        if column == MEMBER_COLUMN:  # one byte a flag
            digest.update(table[column].to_numpy(dtype=bool).astype(np.uint8).tobytes())
        elif column not in ("date", "symbol"):
            digest.update(table[column].to_numpy(dtype=np.float64).tobytes())
    return digest.hexdigest()


# --- reading --------------------------------------------------------------------------------------


def _detect_columns(headers: list[str], overrides: Optional[Mapping[str, str]], source: str) -> dict[str, int]:
    """Each field's column position: the aliases, then ``overrides`` (which win)."""
    normalised = [header.strip().lower() for header in headers]
    aliases = {**bars.HEADER_ALIASES, "symbol": SYMBOL_ALIASES}
    found: dict[str, int] = {}
    for field, names in aliases.items():
        position = next((normalised.index(name) for name in names if name in normalised), None)
        if position is not None:
            found[field] = position
    for field, header in (overrides or {}).items():
        if header not in headers:
            raise DataError(
                f"{source}: column {header!r} given for {field} (data.columns.{field}) is not in the file "
                f"(found: {_listed(headers)})"
            )
        found = {f: p for f, p in found.items() if p != headers.index(header)}  # the override claims it
        found[field] = headers.index(header)
    if "date" not in found and headers and headers[0].strip() == "":
        found["date"] = 0  # the index column of a date-indexed frame
    return found


def _long_cells(body: pd.DataFrame, headers: list[str], found: dict[str, int], source: str) -> pd.DataFrame:
    """The long file's cells by field (strings), with their row numbers; its columns checked."""
    _refuse_repeated(headers, source, "column {h!r} appears twice (columns {a} and {b}); give it once")
    for field in ("date", "symbol", "close"):
        if field not in found:
            raise DataError(
                f"{source}: missing required column {field!r} (found: {_listed(headers)}; {LONG_LAYOUT}; "
                f"map yours with data.columns.{field} in params.yaml)"
            )
    known = set(found.values())
    for position, header in enumerate(headers):
        if position not in known:
            raise DataError(
                f"{source}: unknown column {header!r} ({LONG_LAYOUT}; map yours with data.columns in params.yaml)"
            )
    _refuse_partial_ohlc([f for f in OHLC_COLUMNS if f in found], source)
    raw = pd.DataFrame({"row": np.arange(1, len(body) + 1)})
    raw["date"] = bars.parse_dates(body[found["date"]], source)
    raw["symbol"] = body[found["symbol"]].astype(str).str.strip()
    for field in VALUE_COLUMNS:
        if field in found:
            raw[field] = body[found[field]].astype(str)
    return raw


def _wide_cells(body: pd.DataFrame, headers: list[str], found: dict[str, int], source: str) -> pd.DataFrame:
    """The wide file's non-empty cells as long rows (date, symbol, close strings), in the file's order."""
    symbols = _wide_symbols(headers, found, source)
    dates = bars.parse_dates(body[found["date"]], source)
    parts = []
    for position, symbol in symbols.items():
        cells = body[position].astype(str)
        traded = (cells.str.strip() != "").to_numpy()  # an empty cell: the symbol did not trade that day
        parts.append(pd.DataFrame({
            "row": np.flatnonzero(traded) + 1, "column": position, "date": dates[traded].to_numpy(),
            "symbol": symbol, "close": cells[traded].to_numpy(),
        }))
    raw = pd.concat(parts, ignore_index=True).sort_values(["row", "column"], kind="stable")
    return raw.drop(columns="column").reset_index(drop=True)


def _wide_symbols(headers: list[str], found: dict[str, int], source: str) -> dict[int, str]:
    """Each column's symbol (every column but the date's); a header that cannot be a symbol is refused."""
    if "date" not in found:
        raise DataError(
            f"{source}: no date column (found: {_listed(headers)}): {WIDE_LAYOUT}, a long panel a symbol column "
            f"as well; map yours with data.columns in params.yaml"
        )
    fields = {name: field for field, names in bars.HEADER_ALIASES.items() for name in names}
    mapped = {position: field for field, position in found.items()}
    symbols: dict[int, str] = {}
    for position, header in enumerate(headers):
        if position == found["date"]:
            continue
        field = mapped.get(position, fields.get(header.strip().lower()))
        if field is not None:  # e.g. a single series' close: read as a symbol named close, it would pass
            raise DataError(
                f"{source}: column {header!r} is a field ({field}), not a symbol, but the file has no symbol "
                f"column: {WIDE_LAYOUT}; a long panel needs a symbol column (name it symbol, or map it with "
                f"data.columns.symbol in params.yaml)"
            )
        if not header.strip():
            raise DataError(f"{source}: column {position + 1} has no symbol in its header; {WIDE_LAYOUT}")
        symbols[position] = header.strip()
    _refuse_repeated([symbols.get(position) for position in range(len(headers))], source,
                     "symbol {h!r} has two columns ({a} and {b}); give each symbol one column")
    if not symbols:
        raise DataError(f"{source}: no symbol columns after the date column; {WIDE_LAYOUT}")
    return symbols


def _parse_values(raw: pd.DataFrame, rows: np.ndarray, source: str) -> pd.DataFrame:
    """The panel (unsorted) with its numbers parsed; a cell that is not a number is refused."""
    table = pd.DataFrame({"date": raw["date"].dt.normalize().astype("datetime64[ns]"),
                          "symbol": raw["symbol"].astype(str)})
    _refuse_empty_symbols(table, rows, source)
    for field in VALUE_COLUMNS:
        if field not in raw:
            continue
        values, garbled = bars.parse_numbers(raw[field])
        if garbled.any():
            position = int(np.flatnonzero(garbled.to_numpy())[0])
            raise DataError(f"{_where(table, rows, position, source)}: {field} {raw[field].iloc[position]!r} "
                            f"is not a number")
        table[field] = values.to_numpy(dtype=float)
    return table


def _finish(table: pd.DataFrame) -> pd.DataFrame:
    """The panel's column order, types and row order."""
    ordered = table[[column for column in PANEL_COLUMNS if column in table]].copy()
    ordered["date"] = ordered["date"].dt.normalize().astype("datetime64[ns]")
    ordered["symbol"] = ordered["symbol"].astype(str)
    return ordered.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)


def _listed(headers: list[str]) -> str:
    return ", ".join(repr(header) for header in headers)


def _refuse_repeated(names: Sequence[Optional[str]], source: str, message: str) -> None:
    """The first name (None: not counted) given twice, with both column numbers."""
    seen: dict[str, int] = {}
    for position, name in enumerate(names):
        if name is None:
            continue
        if name in seen:
            raise DataError(f"{source}: " + message.format(h=name, a=seen[name] + 1, b=position + 1))
        seen[name] = position


def _refuse_partial_ohlc(present: list[str], source: str) -> None:
    if 0 < len(present) < len(OHLC_COLUMNS):
        missing = [field for field in OHLC_COLUMNS if field not in present]
        raise DataError(
            f"{source}: has {', '.join(present)} but no {', '.join(missing)}: open, high and low come all three "
            f"or none (map yours with data.columns in params.yaml)"
        )


# --- the rules ------------------------------------------------------------------------------------


def _where(table: pd.DataFrame, rows: np.ndarray, position: int, source: str) -> str:
    """``<source>: row N (YYYY-MM-DD, symbol S)`` for the row at ``position``."""
    date = table["date"].iloc[position]
    day = "no date" if pd.isna(date) else f"{date:%Y-%m-%d}"
    return f"{source}: row {rows[position]} ({day}, symbol {table['symbol'].iloc[position]})"


def _refuse_empty_symbols(table: pd.DataFrame, rows: np.ndarray, source: str) -> None:
    symbols = table["symbol"]
    empty = (symbols.isna() | (symbols.astype(str).str.strip() == "")).to_numpy()
    if empty.any():
        position = int(np.flatnonzero(empty)[0])
        raise DataError(f"{source}: row {rows[position]} ({table['date'].iloc[position]:%Y-%m-%d}): "
                        f"symbol is empty; every row needs its symbol")


def _check_rules(table: pd.DataFrame, rows: np.ndarray, source: str) -> None:
    """Every rule of a panel; ``rows[i]`` is the row number the message gives for ``table``'s row i."""
    for column in ("date", "symbol", "close"):
        if column not in table:
            raise DataError(f"{source}: no {column} column; {LONG_LAYOUT}")
    _refuse_partial_ohlc([f for f in OHLC_COLUMNS if f in table], source)
    if len(table) == 0:
        raise DataError(f"{source}: no rows")
    _refuse_empty_symbols(table, rows, source)
    _refuse_repeated_days(table, rows, source)
    future = (table["date"] > pd.Timestamp(dt.date.today() + dt.timedelta(days=1))).to_numpy()
    if future.any():
        raise DataError(f"{_where(table, rows, int(np.flatnonzero(future)[0]), source)}: date is in the future")
    _check_values(table, rows, source)
    if "open" in table:
        _check_range(table, rows, source)
    if MEMBER_COLUMN in table:
        _check_member(table, rows, source)


def _refuse_repeated_days(table: pd.DataFrame, rows: np.ndarray, source: str) -> None:
    """One row per symbol and date; the later row (by row number) is the one refused."""
    keys = pd.DataFrame({"symbol": table["symbol"].astype(str).to_numpy(),
                         "date": table["date"].to_numpy(), "row": rows})
    in_order = keys.sort_values("row", kind="stable")
    repeated = in_order.duplicated(["symbol", "date"]).to_numpy()
    if repeated.any():
        later = in_order.index[int(np.flatnonzero(repeated)[0])]
        same = (keys["symbol"] == keys.at[later, "symbol"]) & (keys["date"] == keys.at[later, "date"])
        raise DataError(f"{_where(table, rows, int(later), source)}: repeats row {keys.loc[same, 'row'].min()}'s "
                        f"date and symbol; each symbol may have one row per date")


def _check_values(table: pd.DataFrame, rows: np.ndarray, source: str) -> None:
    """Prices finite, positive and small enough for float32; volumes finite and not negative."""
    for field in ("open", "high", "low", "close"):
        if field not in table:
            continue
        values = table[field].to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values <= 0) | (values > bars.LARGEST_VALUE)
        if bad.any():
            position = int(np.flatnonzero(bad)[0])
            value = values[position]
            what = "missing" if np.isnan(value) else (
                "not finite" if not np.isfinite(value) else "not positive" if value <= 0 else
                f"too large (the model's float32 inputs hold at most {bars.LARGEST_VALUE:g})"
            )
            raise DataError(f"{_where(table, rows, position, source)}: {field} is {what} ({value:g})")
    if "volume" in table:
        volume = table["volume"].to_numpy(dtype=float)
        bad = ~np.isfinite(volume) | (volume < 0) | (volume > bars.LARGEST_VOLUME)
        if bad.any():
            position = int(np.flatnonzero(bad)[0])
            raise DataError(f"{_where(table, rows, position, source)}: volume is missing, not finite, negative "
                            f"or too large ({volume[position]:g})")


def _check_member(table: pd.DataFrame, rows: np.ndarray, source: str) -> None:
    """``member`` is a bool column (true or false on every row, no missing value)."""
    flags = table[MEMBER_COLUMN]
    bad = flags.isna().to_numpy() | ~flags.isin([True, False]).to_numpy()
    if bad.any() or not pd.api.types.is_bool_dtype(flags.dtype):
        where = _where(table, rows, int(np.flatnonzero(bad)[0]), source) if bad.any() else source
        raise DataError(f"{where}: member must be true or false on every row (the symbol's membership of the "
                        f"index that day; the column's type is {flags.dtype})")


def _check_range(table: pd.DataFrame, rows: np.ndarray, source: str) -> None:
    """low <= min(open, close) and high >= max(open, close)."""
    open_, high, low, close = (table[f].to_numpy(dtype=float) for f in ("open", "high", "low", "close"))
    low_bad = low > np.minimum(open_, close)
    if low_bad.any():
        position = int(np.flatnonzero(low_bad)[0])
        raise DataError(f"{_where(table, rows, position, source)}: low {low[position]:g} is above "
                        f"min(open, close) {min(open_[position], close[position]):g}")
    high_bad = high < np.maximum(open_, close)
    if high_bad.any():
        position = int(np.flatnonzero(high_bad)[0])
        raise DataError(f"{_where(table, rows, position, source)}: high {high[position]:g} is below "
                        f"max(open, close) {max(open_[position], close[position]):g}")
