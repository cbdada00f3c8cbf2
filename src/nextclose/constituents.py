"""An index's stocks as a panel, point in time: the CSI 300 or CSI 500 members from akshare or baostock.

Who belonged to the index when comes from ``index-constitution`` (in the akshare and baostock
extras; its wheel ships the data, so nothing is fetched for it): ``index_constitution.history(
"csi300")`` is one row per membership period, ``symbol`` (``SH600000``, ``SZ000001``), ``name``,
``opt-in`` and ``opt-out`` (``NaT``: still a member), a stock that left and came back having a row
per period. A stock is a member on day ``d`` when ``opt-in <= d < opt-out``, the package's own rule
(``constituents_at``). Its dates are those of the index provider's announcements: for most
changes the first day of the new composition, for some (June 2021 on) the last day of the old one,
so a change can be off by one trading day.

:func:`fetch_constituent_panel` fetches the daily bars of every stock that was a member at any
time between ``start`` and ``end`` over the whole period, members or not on each day: a stock's
windows need its history from before it joined. The ``member`` column says which days it
belonged to the index; training and scoring keep to those days (``features.target_membership``),
so no stock enters the data set because it is a member today (no survivorship bias).

Prices are back-adjusted (后复权, hfq): splits and dividends make no jumps, every price stays
positive and a past price never changes when a later dividend is paid, so fetching the same
period again gives the same bars. Volumes are in each library's unit (Eastmoney: lots of 100
shares; baostock: shares). Suspended days (no trade) have no row.

Like :mod:`nextclose.sources`, nothing here writes files, logs or prints.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import importlib
import importlib.metadata
import time
from typing import Any, Callable, Iterator, Mapping, Optional

import numpy as np
import pandas as pd

from nextclose import panels, sources, symbols
from nextclose.errors import DataError
from nextclose.params import CONSTITUENT_SOURCES

# The library each constituent source fetches bars with: also its extra and its retry rules.
LIBRARIES = {"akshare_constituents": "akshare", "baostock_constituents": "baostock"}
MEMBERSHIP_MODULE, MEMBERSHIP_DISTRIBUTION = "index_constitution", "index-constitution"
SERVERS = {"akshare": "Eastmoney (akshare's stock_zh_a_hist)", "baostock": sources.SERVERS["baostock"]}
NETWORK_HINTS = {
    "akshare": "check the network / proxy (HTTPS_PROXY) and that push2his.eastmoney.com is reachable",
    "baostock": sources.NETWORK_HINTS["baostock"],
}
ADJUST = "hfq"  # back-adjusted (后复权): akshare's adjust="hfq", baostock's adjustflag="1"
BAOSTOCK_ADJUSTFLAG = "1"
BAOSTOCK_FIELDS = ("date", "open", "high", "low", "close", "volume", "tradestatus")
# stock_zh_a_hist's columns (Eastmoney): 日期 is datetime.date, the rest numbers.
AKSHARE_COLUMNS = {"日期": "date", "开盘": "open", "最高": "high", "最低": "low", "收盘": "close", "成交量": "volume"}
# A pause between two stocks: Eastmoney blocks a client that asks too fast.
PAUSE_SECONDS = {"akshare": 0.5, "baostock": 0.0}
DATE_DTYPE = "datetime64[ns]"

# (index code, start, end) -> the library's answer for one stock
StockCall = Callable[[str, dt.date, dt.date], pd.DataFrame]


def _check_source(source: str) -> str:
    """The library of a constituent source."""
    if source not in CONSTITUENT_SOURCES:
        raise sources.SourceError(
            f"data.source {source!r}: not a constituent source (known: {', '.join(CONSTITUENT_SOURCES)})"
        )
    return LIBRARIES[source]


def _import(module: str, source: str) -> Any:
    """A library the source needs, or :class:`nextclose.sources.SourceUnavailable` naming its extra."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        extra = LIBRARIES.get(source, "akshare")
        raise sources.SourceUnavailable(
            f"data.source {source} needs the {extra} extra (with index-constitution): "
            f"pip install 'nextclose[{extra}]' ({error})"
        ) from None


# --- membership (offline) --------------------------------------------------------------------


def membership(index_code: str, source: str = "akshare_constituents") -> pd.DataFrame:
    """The membership periods of the index ``index_code`` (``data.symbol``): one row per period,
    ``symbol`` (str, e.g. SH600000), ``opt_in`` and ``opt_out`` (``NaT`` while still a member), by symbol.

    Raises ``DataError`` naming ``data.symbol`` for an index index-constitution has no data for.
    """
    try:
        name = symbols.constituent_index(index_code)
    except symbols.SymbolError as error:
        raise DataError(str(error)) from None
    library = _import(MEMBERSHIP_MODULE, source)
    try:
        history = library.history(name)
    except (ValueError, FileNotFoundError) as error:
        raise DataError(f"data.symbol {index_code!r}: {MEMBERSHIP_DISTRIBUTION} {membership_version()} has no "
                        f"membership of {name} ({error}); update it (pip install -U "
                        f"{MEMBERSHIP_DISTRIBUTION})") from None
    missing = [column for column in ("symbol", "opt-in", "opt-out") if column not in history.columns]
    if missing or len(history) == 0:
        raise DataError(f"data.symbol {index_code!r}: {MEMBERSHIP_DISTRIBUTION} {membership_version()}'s {name} "
                        f"history has no rows or no {', '.join(missing)} column; install the version "
                        f"constraints.txt pins")
    periods = pd.DataFrame({
        "symbol": history["symbol"].astype(str).to_numpy(),
        "opt_in": pd.to_datetime(history["opt-in"]).dt.normalize().astype(DATE_DTYPE).to_numpy(),
        "opt_out": pd.to_datetime(history["opt-out"]).dt.normalize().astype(DATE_DTYPE).to_numpy(),
    })
    return periods.sort_values(["symbol", "opt_in"], kind="stable").reset_index(drop=True)


def membership_version() -> Optional[str]:
    """The installed version of index-constitution (its ``__version__`` lags: the distribution's)."""
    try:
        return importlib.metadata.version(MEMBERSHIP_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def known_until(periods: pd.DataFrame) -> dt.date:
    """The last date the membership data mentions: changes after it are unknown."""
    return max(periods["opt_in"].max(), periods["opt_out"].max()).date()


def members_between(periods: pd.DataFrame, start: dt.date, end: dt.date) -> list[str]:
    """Every symbol that was a member on at least one day of ``start..end``, sorted."""
    first, last = pd.Timestamp(start), pd.Timestamp(end)
    overlaps = (periods["opt_in"] <= last) & (periods["opt_out"].isna() | (periods["opt_out"] > first))
    return sorted(set(periods.loc[overlaps, "symbol"]))


def member_mask(periods: pd.DataFrame, symbol: str, dates: pd.Series | np.ndarray) -> np.ndarray:
    """Whether ``symbol`` was a member on each of ``dates``: ``opt_in <= date < opt_out`` for one of its periods."""
    days = pd.to_datetime(pd.Series(np.asarray(dates))).astype(DATE_DTYPE).to_numpy()
    mask = np.zeros(len(days), dtype=bool)
    for opt_in, opt_out in periods.loc[periods["symbol"] == symbol, ["opt_in", "opt_out"]].itertuples(index=False):
        inside = days >= np.datetime64(opt_in)
        if not pd.isna(opt_out):
            inside &= days < np.datetime64(opt_out)
        mask |= inside
    return mask


# --- one stock from each library -------------------------------------------------------------


def library_code(library: str, symbol: str) -> str:
    """The code ``library`` asks for: SH600000 is akshare's 600000 and baostock's sh.600000."""
    exchange, code = symbol[:2].lower(), symbol[2:]
    if exchange not in ("sh", "sz") or len(code) != 6 or not code.isdigit():
        raise DataError(f"index-constitution symbol {symbol!r}: not SHxxxxxx or SZxxxxxx")
    return code if library == "akshare" else f"{exchange}.{code}"


def _akshare_call(akshare: Any) -> StockCall:
    def call(code: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        return akshare.stock_zh_a_hist(symbol=code, period="daily", start_date=start.strftime("%Y%m%d"),
                                       end_date=end.strftime("%Y%m%d"), adjust=ADJUST,
                                       timeout=sources.TIMEOUT_SECONDS)
    return call


class _BaostockSession:
    """One login for every stock; a network error logs in again on the next attempt."""

    def __init__(self, baostock: Any) -> None:
        self.baostock, self.logged_in = baostock, False

    def __call__(self, code: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        try:
            if not self.logged_in:
                sources._check_baostock(self.baostock.login(), "login")
                self.logged_in = True
            result = self.baostock.query_history_k_data_plus(
                code, ",".join(BAOSTOCK_FIELDS), start_date=start.isoformat(), end_date=end.isoformat(),
                frequency="d", adjustflag=BAOSTOCK_ADJUSTFLAG,
            )
            sources._check_baostock(result, "query_history_k_data_plus")
            rows = []
            while result.next():  # not get_data(): it calls DataFrame.append, gone in pandas 2
                rows.append(result.get_row_data())
            sources._check_baostock(result, "query_history_k_data_plus")
            return pd.DataFrame(rows, columns=result.fields)
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self.logged_in:
            self.logged_in = False
            with contextlib.suppress(Exception):
                self.baostock.logout()


@contextlib.contextmanager
def _library_call(source: str) -> Iterator[StockCall]:
    """The per-stock call of ``source``'s library, for as long as the context lasts."""
    library = LIBRARIES[source]
    module = _import(library, source)
    if library == "akshare":
        yield _akshare_call(module)
        return
    session = _BaostockSession(module)
    with sources._quiet(), sources._default_socket_timeout(sources.TIMEOUT_SECONDS):
        try:
            yield session
        finally:
            session.close()


def _require(frame: pd.DataFrame, columns: tuple[str, ...], source: str, symbol: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        library = LIBRARIES[source]
        raise sources.SourceError(
            f"data.source {source}: stock {symbol}: the {library} answer has no {', '.join(missing)} column "
            f"(found: {', '.join(map(str, frame.columns))}); the library's format may have changed: install a "
            f"version this project supports (pip install 'nextclose[{library}]')"
        )


def map_akshare(frame: pd.DataFrame, source: str = "akshare_constituents", symbol: str = "") -> pd.DataFrame:
    """``stock_zh_a_hist``'s frame (日期, 股票代码, 开盘, 收盘, 最高, 最低, 成交量, ...) as bars."""
    _require(frame, tuple(AKSHARE_COLUMNS), source, symbol)
    return _bars(frame.rename(columns=AKSHARE_COLUMNS), source, symbol)


def map_baostock(frame: pd.DataFrame, source: str = "baostock_constituents", symbol: str = "") -> pd.DataFrame:
    """``query_history_k_data_plus``' rows (strings) as bars, suspended days (tradestatus 0) dropped."""
    _require(frame, BAOSTOCK_FIELDS, source, symbol)
    traded = frame.loc[frame["tradestatus"].astype(str).str.strip() != "0"]
    return _bars(traded, source, symbol)


def _bars(frame: pd.DataFrame, source: str, symbol: str) -> pd.DataFrame:
    dates = pd.to_datetime(pd.Series(frame["date"].to_numpy()), errors="coerce").dt.normalize()
    if dates.isna().any():
        position = int(np.flatnonzero(dates.isna().to_numpy())[0])
        raise sources.SourceError(f"data.source {source}: stock {symbol}: row {position + 1} of the answer has an "
                                  f"unparseable date {frame['date'].iloc[position]!r}")
    table = pd.DataFrame({"date": dates.astype(DATE_DTYPE).to_numpy()})
    for field in ("open", "high", "low", "close", "volume"):
        values = pd.to_numeric(pd.Series(frame[field].to_numpy(dtype=object)), errors="coerce")
        table[field] = values.to_numpy(dtype=float)
    return table.sort_values("date", kind="stable").reset_index(drop=True)


MAPPERS: dict[str, Callable[[pd.DataFrame, str, str], pd.DataFrame]] = {
    "akshare": map_akshare, "baostock": map_baostock,
}


# --- the panel -------------------------------------------------------------------------------


def fetch_constituent_panel(
    source: str,
    index_code: str,
    start: dt.date,
    end: Optional[dt.date],
    *,
    call: Optional[StockCall] = None,
    retries: int = 3,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    pause: Optional[float] = None,
    progress: Optional[Callable[[int, int, str], None]] = None,
) -> pd.DataFrame:
    """The panel of every stock that was a member of the index ``index_code`` at any time in
    ``start..end`` (``end`` None: today), with its bars over the whole period and ``member``.

    ``call`` replaces the library call (tests): it gets the library's code of one stock and the
    dates. Each stock is retried like :func:`nextclose.sources.fetch` retries (connection
    errors, timeouts, rate limits); a stock that still fails stops the whole fetch with a
    :class:`nextclose.sources.SourceError` naming the stock and the source. ``pause`` seconds
    (default :data:`PAUSE_SECONDS`) pass between two stocks; ``progress(done, total, symbol)``
    is told of each stock. A member whose answer has no bars in the period (a stock the library
    no longer serves) is left out: :func:`missing_members` names them. Columns: date, symbol,
    open, high, low, close, volume, member, sorted by (symbol, date), checked by
    :func:`nextclose.panels.validate_panel`.
    """
    library = _check_source(source)
    last = end or dt.date.today()
    if start > last:
        raise sources.SourceError(f"data.source {source}: data.start {start} is after data.end {last}")
    periods = membership(index_code, source)
    stocks = members_between(periods, start, last)
    if not stocks:
        raise DataError(
            f"data.source {source}: no stock was a member of {_index_label(index_code)} between data.start {start} "
            f"and data.end {last} ({MEMBERSHIP_DISTRIBUTION} knows its members from "
            f"{periods['opt_in'].min():%Y-%m-%d} to {known_until(periods)}): move data.start / data.end"
        )
    pause = PAUSE_SECONDS[library] if pause is None else pause
    parts = []
    with contextlib.ExitStack() as stack:
        ask = call if call is not None else stack.enter_context(_library_call(source))
        for number, symbol in enumerate(stocks, start=1):
            if number > 1 and pause > 0:
                sleep(pause)
            code = library_code(library, symbol)
            where = f"data.source {source}: stock {symbol} ({code}), a member of {_index_label(index_code)}"
            frame = sources.call_with_retries(
                functools.partial(ask, code, start, last), library, where, retries=retries, backoff=backoff,
                sleep=sleep, server=SERVERS[library], hint=NETWORK_HINTS[library],
            )
            if progress is not None:
                progress(number, len(stocks), symbol)
            if frame is None or len(frame) == 0:
                continue
            table = MAPPERS[library](frame, source, symbol)
            keep = ((table["date"] >= pd.Timestamp(start)) & (table["date"] <= pd.Timestamp(last))).to_numpy()
            table = table.loc[keep].reset_index(drop=True)
            if len(table) == 0:
                continue
            table.insert(1, "symbol", symbol)
            table[panels.MEMBER_COLUMN] = member_mask(periods, symbol, table["date"])
            parts.append(table)
    if not parts:
        raise sources.SourceError(
            f"data.source {source}: none of the {len(stocks)} members of {_index_label(index_code)} between "
            f"{start} and {last} has bars in {library}'s answers: check the dates"
        )
    panel = pd.concat(parts, ignore_index=True).sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
    panels.validate_panel(panel, f"data.source {source} ({_index_label(index_code)})")
    return panel


def _index_label(index_code: str) -> str:
    name = symbols.constituent_index(index_code)
    return f"the {symbols.INDEX_NAMES[name]} ({index_code})"


def missing_members(periods: pd.DataFrame, start: dt.date, end: Optional[dt.date], table: pd.DataFrame) -> list[str]:
    """The members of ``start..end`` without a single bar in ``table`` (left out of the panel)."""
    return sorted(set(members_between(periods, start, end or dt.date.today())) - set(table["symbol"].astype(str)))


# --- provenance ------------------------------------------------------------------------------


def raw_metadata(
    source: str,
    index_code: str,
    start: dt.date,
    end: Optional[dt.date],
    table: pd.DataFrame,
    *,
    fetched_at: Optional[dt.datetime] = None,
) -> dict[str, object]:
    """``data/raw/raw.json`` of a constituent panel: the index, the membership data, the fetch, the hash."""
    library = _check_source(source)
    fetched_at = fetched_at or dt.datetime.now(dt.timezone.utc)
    periods = membership(index_code, source)
    name = symbols.constituent_index(index_code)
    missing = missing_members(periods, start, end, table)
    return {
        "source": source,
        "symbol": index_code,
        "index": name,
        "index_name": symbols.INDEX_NAMES[name],
        "library": library,
        "library_version": sources.library_version(library),
        "adjust": ADJUST,
        "membership": {
            "library": MEMBERSHIP_DISTRIBUTION,
            "version": membership_version(),
            "known_until": known_until(periods).isoformat(),
            "rule": "opt-in <= date < opt-out",
        },
        "start": start.isoformat(),
        "end": None if end is None else end.isoformat(),
        "fetched_at": fetched_at.astimezone(dt.timezone.utc).isoformat(timespec="seconds"),
        "constituents": len(missing) + int(table["symbol"].nunique()),  # members at any time in the period
        "symbols": int(table["symbol"].nunique()),  # those with bars: the panel's
        "missing": missing,  # members without bars in the period, left out
        "member_rows": int(table[panels.MEMBER_COLUMN].sum()),
        "rows": int(len(table)),
        "first_date": table["date"].min().strftime("%Y-%m-%d"),
        "last_date": table["date"].max().strftime("%Y-%m-%d"),
        "columns": [str(column) for column in table.columns],
        "bars_sha256": panels.panel_hash(table),
    }


def is_reusable(metadata: Mapping[str, object], source: str, index_code: str,
                start: Optional[dt.date], end: Optional[dt.date]) -> bool:
    """Whether the raw panel described by ``metadata`` answers this request (no new fetch needed):
    the same source, index (any spelling of its code), dates and membership data."""
    try:
        name = symbols.constituent_index(index_code)
    except symbols.SymbolError:
        return False
    recorded = metadata.get("membership")
    return (
        metadata.get("source") == source
        and metadata.get("index") == name
        and metadata.get("start") == (None if start is None else start.isoformat())
        and metadata.get("end") == (None if end is None else end.isoformat())
        and isinstance(recorded, Mapping) and recorded.get("version") == membership_version()
    )


def check_reused(table: pd.DataFrame, metadata: Mapping[str, object]) -> bool:
    """Whether ``data/raw``'s table is the one its metadata describes (its hash)."""
    return "symbol" in table and panels.panel_hash(table) == metadata.get("bars_sha256")

