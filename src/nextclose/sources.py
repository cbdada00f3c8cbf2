"""Daily index bars from the network: JoinQuant (jqdatasdk), akshare and baostock.

Each source is one optional extra (``pip install 'nextclose[akshare]'``, ...) and has two
halves: ``_call_<source>(code, start, end)`` makes the library call and nothing else, and
the pure ``map_<source>(frame)`` turns the library's answer into the bars table of
:mod:`nextclose.bars` (``date`` at midnight, float ``open, high, low, close`` and ``volume``
when the library has one). :func:`fetch` ties them together: it checks the symbol and the
credentials before any network call, retries transient failures (connection errors,
timeouts, rate limits) with a bounded exponential back-off, keeps ``start..end`` and checks
the bars. Every failure is a :class:`SourceError` (a ``DataError``) whose message names the
source, the symbol and what to try; credentials never appear in one.

Nothing here writes files, logs or prints: the prepare stage saves what :func:`fetch`
returns together with :func:`raw_metadata`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import importlib
import importlib.metadata
import io
import os
import re
import socket
import time
from typing import Any, Callable, Iterator, Mapping, Optional, TypeVar

import numpy as np
import pandas as pd

from nextclose import bars, symbols

NETWORK_SOURCES = ("jqdata", "akshare", "baostock")
T = TypeVar("T")

# The module each source imports, which is also its distribution name on PyPI.
LIBRARIES = {"jqdata": "jqdatasdk", "akshare": "akshare", "baostock": "baostock"}
SERVERS = {"jqdata": "JoinQuant", "akshare": "akshare's upstream (Sina Finance)", "baostock": "baostock"}
# What to check when the server cannot be reached: only akshare speaks HTTP(S), the other
# two open plain TCP connections that an HTTP proxy does not carry.
NETWORK_HINTS = {
    "jqdata": "check the network and that TCP port 7000 of JoinQuant's server is not blocked",
    "akshare": "check the network / proxy (HTTPS_PROXY) and that finance.sina.com.cn is reachable",
    "baostock": "check the network and that public-api.baostock.com port 10030 (TCP) is not blocked",
}
JQDATA_USER_VARIABLE = "JQDATA_USER"
JQDATA_PASSWORD_VARIABLE = "JQDATA_PASSWORD"

# Used when data.start / data.end is null: the Shanghai exchange's first trading day, today.
EARLIEST_DATE = dt.date(1990, 12, 19)
TIMEOUT_SECONDS = 30.0  # per network operation, where the library lets us set one
MAX_BACKOFF_SECONDS = 30.0  # no single wait between retries is longer than this
DATE_DTYPE = "datetime64[ns]"

JQDATA_FIELDS = ("open", "close", "high", "low", "volume", "money")  # get_price's default fields
BAOSTOCK_FIELDS = ("date", "open", "high", "low", "close", "volume")

# Exception classes (matched by name anywhere in the class's MRO, so nothing is imported)
# that mean the server could not be reached: requests' ConnectionError / Timeout, thriftpy2's
# TTransportException / ProtocolError (jqdatasdk), socket errors and the built-in ones.
NETWORK_ERROR_NAMES = frozenset({
    "ConnectionError", "TimeoutError", "Timeout", "timeout", "gaierror", "herror",
    "TTransportException", "ProtocolError", "ChunkedEncodingError", "RemoteDisconnected",
    "IncompleteRead", "NewConnectionError", "MaxRetryError",
})
NETWORK_ERRNOS = frozenset({
    errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ECONNREFUSED, errno.ECONNRESET,
    errno.ECONNABORTED, errno.ETIMEDOUT, errno.EPIPE, errno.ENETDOWN, errno.ENOTCONN,
})
NETWORK_WORDS = re.compile(r"network|connection|timed? ?out|网络|连接", re.IGNORECASE)
RATE_LIMIT_WORDS = re.compile(
    r"\b429\b|too many requests|rate.?limit|请求频率|频繁|最大查询限制|查询条数|超过.{0,8}限制",
    re.IGNORECASE,
)
# In a JoinQuant error message: the login itself was refused (not, say, a date outside the
# account's data window, which is reported as it is).
LOGIN_WORDS = re.compile(r"password|passwd|\bauth|密码|用户名|未开通", re.IGNORECASE)


class SourceError(bars.DataError):
    """A network source could not deliver the bars; the message says what to try."""


class SourceUnavailable(SourceError):
    """The library of the chosen source is not installed."""


class CredentialsError(SourceError):
    """Credentials are missing or were refused (jqdata)."""


class NetworkError(SourceError):
    """The server could not be reached, even after retries."""


class RateLimited(SourceError):
    """The server refused because of too many requests or an exhausted quota, even after retries."""


class LoginRefused(Exception):
    """Raised by ``_call_jqdata`` when JoinQuant answers the login with an error."""


# --- symbols -------------------------------------------------------------------------------


def parse_symbol(symbol: str | int) -> tuple[str, str]:
    """``(exchange, code)`` of an index symbol (:func:`nextclose.symbols.parse_symbol`),
    refused as a :class:`SourceError`."""
    try:
        return symbols.parse_symbol(symbol)
    except symbols.SymbolError as error:
        raise SourceError(str(error)) from None


def library_symbol(source: str, symbol: str | int) -> str:
    """The code ``source``'s library uses for ``data.symbol``: 000300.XSHG, sh000300 or sh.000300."""
    _check_source(source)
    exchange, code = parse_symbol(symbol)
    if source == "jqdata":
        return f"{code}.{'XSHG' if exchange == 'sh' else 'XSHE'}"
    if source == "akshare":
        return f"{exchange}{code}"
    return f"{exchange}.{code}"


def _check_source(source: str) -> None:
    if source not in NETWORK_SOURCES:
        raise SourceError(
            f"data.source {source!r}: not a network source (known: {', '.join(NETWORK_SOURCES)})"
        )


# --- credentials ---------------------------------------------------------------------------


def jqdata_credentials(environ: Optional[Mapping[str, str]] = None) -> tuple[str, str]:
    """JoinQuant user and password from ``JQDATA_USER`` / ``JQDATA_PASSWORD`` (never from params)."""
    environ = os.environ if environ is None else environ
    user = environ.get(JQDATA_USER_VARIABLE, "").strip()
    password = environ.get(JQDATA_PASSWORD_VARIABLE, "")
    given = {JQDATA_USER_VARIABLE: user, JQDATA_PASSWORD_VARIABLE: password}
    missing = [name for name, value in given.items() if not value]
    if missing:
        raise CredentialsError(
            f"data.source jqdata needs a JoinQuant account with jqdatasdk access: set "
            f"{JQDATA_USER_VARIABLE} and {JQDATA_PASSWORD_VARIABLE} in the environment "
            f"(missing: {', '.join(missing)}); credentials are never read from params.yaml"
        )
    return user, password


# --- the library calls: nothing but the call -------------------------------------------------


def _import(source: str):
    """The source's library, or :class:`SourceUnavailable` naming the extra to install."""
    try:
        return importlib.import_module(LIBRARIES[source])
    except ImportError as error:
        raise SourceUnavailable(
            f"data.source {source} needs the {source} extra: pip install 'nextclose[{source}]' "
            f"({error})"
        ) from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Swallow what jqdatasdk and baostock print ("auth success", "login success!")."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


@contextlib.contextmanager
def _default_socket_timeout(seconds: float) -> Iterator[None]:
    """baostock opens plain sockets without a timeout; new sockets take this default."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _call_jqdata(code: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    """``jqdatasdk.get_price`` of ``code`` (e.g. 000300.XSHG), unadjusted, daily."""
    jqdatasdk = _import("jqdata")
    user, password = jqdata_credentials()
    with _quiet():
        # One attempt per call: fetch() owns the retry policy.
        jqdatasdk.set_params(request_timeout=TIMEOUT_SECONDS)
        jqdatasdk.set_params(request_attempt_count=1)
        try:
            jqdatasdk.auth(user, password)
        except Exception as error:
            if _failure_kind(error) is not None:
                raise
            raise LoginRefused(str(error)) from None
        try:
            return jqdatasdk.get_price(
                code, start_date=start.isoformat(), end_date=end.isoformat(), frequency="daily",
                fields=list(JQDATA_FIELDS), skip_paused=True, fq=None,
            )
        finally:
            with contextlib.suppress(Exception):
                jqdatasdk.logout()


def _call_akshare(code: str, _start: dt.date, _end: dt.date) -> pd.DataFrame:
    """``akshare.stock_zh_index_daily`` of ``code`` (e.g. sh000300): Sina's whole history, whatever
    the dates (fetch cuts it to them)."""
    akshare = _import("akshare")
    return akshare.stock_zh_index_daily(symbol=code)


def _call_baostock(code: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    """``baostock.query_history_k_data_plus`` of ``code`` (e.g. sh.000300), unadjusted, daily.

    Rows are collected with ``next()`` / ``get_row_data()``: ``ResultData.get_data()`` calls
    ``DataFrame.append``, which pandas 2 removed, as soon as the answer has a second page.
    """
    baostock = _import("baostock")
    with _quiet(), _default_socket_timeout(TIMEOUT_SECONDS):
        _check_baostock(baostock.login(), "login")
        try:
            result = baostock.query_history_k_data_plus(
                code, ",".join(BAOSTOCK_FIELDS), start_date=start.isoformat(),
                end_date=end.isoformat(), frequency="d", adjustflag="3",
            )
            _check_baostock(result, "query_history_k_data_plus")
            rows = []
            while result.next():
                rows.append(result.get_row_data())
            _check_baostock(result, "query_history_k_data_plus")  # a later page can fail
            return pd.DataFrame(rows, columns=result.fields)
        finally:
            with contextlib.suppress(Exception):
                baostock.logout()


def _check_baostock(result: Any, step: str) -> None:
    """baostock reports failures in ``error_code``; codes 10002xxx are network errors."""
    if result is None:
        raise RuntimeError(f"baostock {step} returned nothing")
    code, message = str(result.error_code), str(result.error_msg)
    if code == "0":
        return
    if code.startswith("10002"):
        raise ConnectionError(f"baostock {step}: error_code {code} {message}")
    raise RuntimeError(f"baostock {step}: error_code {code} {message}")


CALLS: dict[str, Callable[[str, dt.date, dt.date], pd.DataFrame]] = {
    "jqdata": _call_jqdata, "akshare": _call_akshare, "baostock": _call_baostock,
}


# --- mapping the answers onto the bars table (pure) -----------------------------------------


def _require_columns(frame: pd.DataFrame, columns: tuple[str, ...], source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SourceError(
            f"data.source {source}: the {LIBRARIES[source]} answer has no {', '.join(missing)} "
            f"column (found: {', '.join(map(str, frame.columns))}); the library's format may have "
            f"changed: install a version this project supports (pip install 'nextclose[{source}]')"
        )


def _midnight(dates: object) -> pd.Series:
    """Dates of any library form (date objects, strings, Timestamps) as naive midnights."""
    return pd.to_datetime(pd.Series(dates), errors="coerce").dt.normalize().astype(DATE_DTYPE)


def _bars_table(dates: object, frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Assemble the bars table; volume is dropped only when every value is missing."""
    table = pd.DataFrame({"date": _midnight(dates).to_numpy()})
    if table["date"].isna().any():
        position = int(np.flatnonzero(table["date"].isna().to_numpy())[0])
        raise SourceError(
            f"data.source {source}: row {position + 1} of the {LIBRARIES[source]} answer has an "
            f"unparseable date {pd.Series(dates).iloc[position]!r}"
        )
    for field in bars.PRICE_COLUMNS + ("volume",):
        if field not in frame.columns:
            continue
        # Strings (baostock) become numbers; an empty string becomes NaN.
        values = pd.to_numeric(pd.Series(frame[field].to_numpy(dtype=object)), errors="coerce")
        table[field] = values.to_numpy(dtype=float)
    # Index bars without any volume (an empty field on every day) lose the column, so
    # features.volume must be false; a volume missing on some days only is an error,
    # reported by bars.validate_bars with its date.
    if "volume" in table and table["volume"].isna().all():
        table = table.drop(columns=["volume"])
    return table.sort_values("date", kind="stable").reset_index(drop=True)


def map_jqdata(frame: pd.DataFrame) -> pd.DataFrame:
    """``get_price``'s frame (unnamed DatetimeIndex; open, close, high, low, volume, money)."""
    _require_columns(frame, bars.PRICE_COLUMNS, "jqdata")
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise SourceError(
            f"data.source jqdata: expected get_price's date index, got {type(frame.index).__name__}; "
            f"the library's format may have changed"
        )
    return _bars_table(frame.index, frame, "jqdata")


def map_akshare(frame: pd.DataFrame) -> pd.DataFrame:
    """``stock_zh_index_daily``'s frame (RangeIndex; date objects, open, high, low, close, volume)."""
    _require_columns(frame, ("date",) + bars.PRICE_COLUMNS, "akshare")
    return _bars_table(frame["date"], frame, "akshare")


def map_baostock(frame: pd.DataFrame) -> pd.DataFrame:
    """``query_history_k_data_plus``' rows as a frame of strings (RangeIndex; '' when missing)."""
    _require_columns(frame, ("date",) + bars.PRICE_COLUMNS, "baostock")
    return _bars_table(frame["date"], frame, "baostock")


MAPPERS: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "jqdata": map_jqdata, "akshare": map_akshare, "baostock": map_baostock,
}


# --- fetching --------------------------------------------------------------------------------


def _failure_kind(error: BaseException, source: Optional[str] = None) -> Optional[str]:
    """``"rate"``, ``"network"`` (both retried), ``"login"`` or None for anything else."""
    text = str(error)
    if isinstance(error, LoginRefused):
        return "login"
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status == 429 or RATE_LIMIT_WORDS.search(text):
        return "rate"
    names = {cls.__name__ for cls in type(error).__mro__}
    if names & NETWORK_ERROR_NAMES or (isinstance(error, OSError) and error.errno in NETWORK_ERRNOS):
        return "network"
    if status in (500, 502, 503, 504):  # a server or gateway that is briefly down
        return "network"
    # Exception classes first: "Proxy Authentication Required" is a network problem.
    if source == "jqdata" and LOGIN_WORDS.search(text):
        return "login"
    if NETWORK_WORDS.search(text):
        return "network"
    return None


def backoff_delays(retries: int, backoff: float) -> list[float]:
    """The waits before each retry: ``backoff``, doubling, each at most MAX_BACKOFF_SECONDS."""
    return [min(backoff * 2**attempt, MAX_BACKOFF_SECONDS) for attempt in range(retries)]


def _describe(error: BaseException, secrets: tuple[str, ...]) -> str:
    """``Type: first line of the message``, shortened, with any secret blanked out."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text if len(text) <= 300 else text[:297] + "..."


def fetch(
    source: str,
    symbol: str,
    start: Optional[dt.date],
    end: Optional[dt.date],
    *,
    call: Optional[Callable[[str, dt.date, dt.date], pd.DataFrame]] = None,
    retries: int = 3,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> pd.DataFrame:
    """The checked daily bars of ``symbol`` from ``source`` between ``start`` and ``end``.

    ``call`` replaces the library call (tests); it receives the library's code and the
    dates, ``None`` resolved to :data:`EARLIEST_DATE` and today. Connection errors,
    timeouts and rate limits are retried ``retries`` times after waits of
    :func:`backoff_delays`; a missing extra, missing or refused credentials and anything
    else fail at once. The answer is mapped, cut to ``start..end`` (akshare sends the whole
    history) and checked with :func:`nextclose.bars.validate_bars`. Raises
    :class:`SourceError` (or ``DataError`` for bars that break a rule).
    """
    _check_source(source)
    code = library_symbol(source, symbol)
    secrets: tuple[str, ...] = jqdata_credentials() if source == "jqdata" else ()
    if start is not None and end is not None and start > end:
        raise SourceError(f"data.source {source}: data.start {start} is after data.end {end}")
    call = CALLS[source] if call is None else call
    first, last = start or EARLIEST_DATE, end or dt.date.today()
    where = f"data.source {source}: {symbol} ({code})"
    frame = call_with_retries(lambda: call(code, first, last), source, where, retries=retries, backoff=backoff,
                              sleep=sleep, secrets=secrets)
    if frame is None or len(frame) == 0:
        table = pd.DataFrame({"date": pd.Series([], dtype=DATE_DTYPE)})
    else:
        table = MAPPERS[source](frame)
    table = bars.select_dates(
        table, start, end, f"data.source {source}: {symbol}", error=SourceError,
        hint="check data.symbol and the dates",
    )
    bars.validate_bars(table, f"{source}:{code}")
    return table


def call_with_retries(
    call: Callable[[], T],
    source: str,
    where: str,
    *,
    retries: int = 3,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    secrets: tuple[str, ...] = (),
    server: Optional[str] = None,
    hint: Optional[str] = None,
) -> T:
    """``call()``, retried like :func:`fetch` retries: connection errors, timeouts and rate limits
    ``retries`` times after the waits of :func:`backoff_delays`, anything else not at all.

    ``source`` is the library's source (jqdata, akshare, baostock: its messages and failure
    kinds); ``where`` starts every message; ``server`` and ``hint`` replace the source's
    :data:`SERVERS` and :data:`NETWORK_HINTS` entries when the call reaches another server.
    Raises :class:`SourceError`, with any of ``secrets`` blanked out.
    """
    delays = backoff_delays(retries, backoff)
    for attempt in range(retries + 1):
        try:
            return call()
        except SourceError:
            raise
        except Exception as error:
            kind = _failure_kind(error, source)
            if kind in ("network", "rate") and attempt < retries:
                sleep(delays[attempt])
                continue
            _raise_failure(source, where, kind, _describe(error, secrets), attempt + 1, server, hint)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _raise_failure(source: str, where: str, kind: Optional[str], what: str, attempts: int,
                   server: Optional[str] = None, hint: Optional[str] = None) -> None:
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    server = server or SERVERS[source]
    if kind == "network":
        raise NetworkError(
            f"{where}: network error, could not reach {server} after {tries} ({what}): "
            f"{hint or NETWORK_HINTS[source]}, then run again"
        ) from None
    if kind == "rate":
        raise RateLimited(
            f"{where}: rate limited by {server} after {tries} ({what}): wait and run "
            f"again" + (" (JoinQuant's daily quota resets overnight)" if source == "jqdata" else "")
        ) from None
    if kind == "login":
        raise CredentialsError(
            f"{where}: JoinQuant refused the login ({what}): check {JQDATA_USER_VARIABLE} and "
            f"{JQDATA_PASSWORD_VARIABLE} and that the account has jqdatasdk access"
        ) from None
    raise SourceError(
        f"{where}: the {LIBRARIES[source]} call failed ({what}): check data.symbol and the "
        f"dates; if it persists, update the library (pip install -U 'nextclose[{source}]')"
    ) from None


# --- provenance ------------------------------------------------------------------------------


def library_version(source: str) -> Optional[str]:
    """The installed version of ``source``'s library, or None."""
    try:
        return importlib.metadata.version(LIBRARIES[source])
    except importlib.metadata.PackageNotFoundError:
        return None


def raw_metadata(
    source: str,
    symbol: str,
    start: Optional[dt.date],
    end: Optional[dt.date],
    table: pd.DataFrame,
    *,
    fetched_at: Optional[dt.datetime] = None,
) -> dict[str, object]:
    """What to store beside the fetched table: where it came from, when, and its hash."""
    fetched_at = fetched_at or dt.datetime.now(dt.timezone.utc)
    return {
        "source": source,
        "symbol": symbol,
        "library_symbol": library_symbol(source, symbol),
        "library": LIBRARIES[source],
        "library_version": library_version(source),
        "start": None if start is None else start.isoformat(),
        "end": None if end is None else end.isoformat(),
        "fetched_at": fetched_at.astimezone(dt.timezone.utc).isoformat(timespec="seconds"),
        "rows": int(len(table)),
        "first_date": table["date"].iloc[0].strftime("%Y-%m-%d"),
        "last_date": table["date"].iloc[-1].strftime("%Y-%m-%d"),
        "columns": [str(c) for c in table.columns],
        "bars_sha256": bars.bars_hash(table),
    }


def is_reusable(
    metadata: Mapping[str, object], source: str, symbol: str,
    start: Optional[dt.date], end: Optional[dt.date],
) -> bool:
    """Whether raw data described by ``metadata`` answers this request (no new fetch needed)."""
    try:
        wanted_code = library_symbol(source, symbol)
    except SourceError:
        return False
    return (
        metadata.get("source") == source
        and metadata.get("library_symbol") == wanted_code
        and metadata.get("start") == (None if start is None else start.isoformat())
        and metadata.get("end") == (None if end is None else end.isoformat())
    )
