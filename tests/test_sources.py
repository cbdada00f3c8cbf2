"""Fetching the CSI 300 from jqdatasdk, akshare and baostock, offline.

What each library returns, read from its source (versions on PyPI at the time of writing:
jqdatasdk 1.9.8, akshare 1.19.5, baostock 0.9.4 whose client calls itself 00.9.40; pandas 3.1):

- jqdatasdk ``get_price('000300.XSHG', start_date, end_date, frequency='daily', fields=None,
  skip_paused=False, fq='pre')``: a DataFrame indexed by an unnamed DatetimeIndex (naive
  midnights), float64 columns in the order of ``fields``, by default
  ``open, close, high, low, volume, money``. ``auth(user, password)`` raises a plain
  ``Exception`` carrying the server's text when the login is refused; an unreachable server
  raises thriftpy2's ``TTransportException`` or ``ProtocolError`` (after the library's own 3
  attempts). Without ``start_date`` it starts at 2015-01-01. The library also reads
  ``JQDATA_USER`` / ``JQDATA_PASSWORD`` from the environment by itself.
- akshare ``stock_zh_index_daily(symbol="sh000300")`` (Sina): the WHOLE history, no date
  arguments; a RangeIndex and columns ``date, open, high, low, close, volume``: ``date`` is
  an object column of ``datetime.date``, prices float64, volume int64. No timeout is set on
  its ``requests.get``; an unreachable server raises ``requests.exceptions.ConnectionError``
  (an ``OSError``). (``stock_zh_index_daily_em`` takes a range but answers with the same
  English columns from Eastmoney; ``index_zh_a_hist`` takes "000300" and answers in Chinese.)
- baostock ``login()`` then ``query_history_k_data_plus("sh.000300",
  "date,open,high,low,close,volume", start_date, end_date, frequency="d", adjustflag="3")``:
  never raises for network trouble; the ``ResultData`` carries ``error_code`` ("0" is
  success, 10002xxx network errors, e.g. 10002007 "网络接收错误。", 10001xxx login errors) and
  rows of STRINGS, an empty string where a value is missing. ``get_data()`` builds
  ``pd.DataFrame(rows, columns=fields)`` (a RangeIndex, all text) but calls the removed
  ``DataFrame.append`` once an answer needs a second page (over 2000 rows), so the rows are
  read with ``next()`` / ``get_row_data()`` instead. Without ``start_date`` it starts at
  2015-01-01. It prints "login success!" and the like to stdout.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
import types

import numpy as np
import pandas as pd
import pytest

from nextclose import bars, sources

# A few days of the CSI 300 around the start of 2018: date, open, high, low, close, volume, money.
ROWS = [
    ("2017-12-29", 4029.9560, 4037.2436, 4020.6410, 4030.8548, 8052312700, 1.1253e11),
    ("2018-01-02", 4045.2084, 4087.7816, 4045.2084, 4087.4012, 10612741400, 1.4384e11),
    ("2018-01-03", 4091.4610, 4151.2812, 4091.4610, 4111.3925, 13020898600, 1.7408e11),
    ("2018-01-04", 4114.1219, 4138.9587, 4103.3640, 4128.8119, 11887232100, 1.5463e11),
    ("2018-01-05", 4133.9891, 4151.7446, 4123.2474, 4138.7505, 10867447300, 1.4229e11),
    ("2018-01-08", 4140.8499, 4171.4922, 4133.5270, 4160.1634, 12654556000, 1.6353e11),
]
YEAR_2018 = (dt.date(2018, 1, 1), dt.date(2018, 12, 31))
FAKE_USER, FAKE_PASSWORD = "13800000000", "fake-Pa55w0rd-do-not-log"


def expected_table(rows=ROWS[1:], volume=True) -> pd.DataFrame:
    table = pd.DataFrame({
        "date": pd.to_datetime([r[0] for r in rows]).astype("datetime64[ns]"),
        "open": [r[1] for r in rows], "high": [r[2] for r in rows],
        "low": [r[3] for r in rows], "close": [r[4] for r in rows],
    })
    if volume:
        table["volume"] = [float(r[5]) for r in rows]
    return table


def jqdata_frame(rows=ROWS[1:]) -> pd.DataFrame:
    """get_price's frame: unnamed DatetimeIndex of datetimes, float64 columns in fields order."""
    frame = pd.DataFrame(
        {
            "open": [r[1] for r in rows], "close": [r[4] for r in rows],
            "high": [r[2] for r in rows], "low": [r[3] for r in rows],
            "volume": [float(r[5]) for r in rows], "money": [r[6] for r in rows],
        },
        index=pd.Index([dt.datetime.strptime(r[0], "%Y-%m-%d") for r in rows]),
    )
    assert isinstance(frame.index, pd.DatetimeIndex) and frame.index.name is None
    assert (frame.dtypes == "float64").all()
    return frame


def akshare_frame(rows=ROWS) -> pd.DataFrame:
    """stock_zh_index_daily's frame, built the way akshare builds it from Sina's decoded JSON."""
    decoded = [  # what py_mini_racer's call() gives: JS Dates as ISO strings, numbers as numbers
        {"date": f"{r[0]}T00:00:00.000Z", "open": r[1], "high": r[2], "low": r[3],
         "close": r[4], "volume": r[5]}
        for r in rows
    ]
    frame = pd.DataFrame(decoded)
    frame["date"] = pd.to_datetime(frame["date"], errors="coerce").dt.date
    for column in ("open", "close", "high", "low", "volume"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    assert list(frame.columns) == ["date", "open", "high", "low", "close", "volume"]
    assert frame["date"].dtype == object and isinstance(frame["date"].iloc[0], dt.date)
    assert frame["volume"].dtype == "int64" and isinstance(frame.index, pd.RangeIndex)
    return frame


def baostock_frame(rows=ROWS[1:], volume=None) -> pd.DataFrame:
    """query_history_k_data_plus' rows: lists of strings, framed with the answer's fields."""
    fields = ["date", "open", "high", "low", "close", "volume"]
    data = [
        [r[0], f"{r[1]:.10f}", f"{r[2]:.10f}", f"{r[3]:.10f}", f"{r[4]:.10f}",
         str(r[5]) if volume is None else volume[i]]
        for i, r in enumerate(rows)
    ]
    return pd.DataFrame(data, columns=fields)


def check_equal(table: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(table, expected)
    bars.validate_bars(table, "test")


@pytest.fixture
def jq_credentials(monkeypatch):
    monkeypatch.setenv("JQDATA_USER", FAKE_USER)
    monkeypatch.setenv("JQDATA_PASSWORD", FAKE_PASSWORD)


class Recorder:
    """A stand-in for the library call: answers or raises in turn, and records its arguments."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls: list[tuple] = []

    def __call__(self, code, start, end):
        self.calls.append((code, start, end))
        outcome = self.outcomes[min(len(self.calls), len(self.outcomes)) - 1]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class RequestsConnectionError(OSError):
    """Shaped like requests.exceptions.ConnectionError: RequestException -> OSError."""


RequestsConnectionError.__name__ = "ConnectionError"


class HTTPError(OSError):
    def __init__(self, status_code):
        super().__init__(f"{status_code} Client Error")
        self.response = types.SimpleNamespace(status_code=status_code)


# --- mapping each library's frame ------------------------------------------------------------


def test_jqdata_get_price_frame_maps_onto_the_bars_table():
    check_equal(sources.map_jqdata(jqdata_frame()), expected_table())


def test_akshare_whole_history_frame_maps_onto_the_bars_table():
    check_equal(sources.map_akshare(akshare_frame()), expected_table(ROWS))


def test_baostock_string_rows_map_onto_the_bars_table():
    check_equal(sources.map_baostock(baostock_frame()), expected_table())


def test_baostock_without_any_volume_drops_the_column():
    table = sources.map_baostock(baostock_frame(volume=[""] * 5))
    check_equal(table, expected_table(volume=False))


def test_volume_missing_on_some_days_is_refused_with_its_date():
    call = Recorder(baostock_frame(volume=["1", "", "3", "4", "5"]))
    with pytest.raises(bars.DataError, match=r"baostock:sh.000300: 2018-01-03: volume is missing"):
        sources.fetch("baostock", "000300", *YEAR_2018, call=call)


def test_mapping_sorts_and_drops_extra_columns():
    frame = jqdata_frame().iloc[::-1]
    table = sources.map_jqdata(frame)
    assert list(table.columns) == ["date", "open", "high", "low", "close", "volume"]
    check_equal(table, expected_table())


def test_a_changed_library_format_names_the_missing_column():
    message = r"akshare answer has no close column.*nextclose\[akshare\]"
    with pytest.raises(sources.SourceError, match=message):
        sources.map_akshare(akshare_frame().rename(columns={"close": "收盘"}))


# --- symbols ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "symbol", ["000300", "000300.XSHG", "000300.SH", "sh000300", "SH.000300", " sh.000300 "])
def test_csi300_spellings_map_to_each_library_code(symbol):
    assert [sources.library_symbol(s, symbol) for s in sources.NETWORK_SOURCES] == [
        "000300.XSHG", "sh000300", "sh.000300"]


def test_shenzhen_index_codes_map_to_shenzhen():
    assert [sources.library_symbol(s, "399001") for s in sources.NETWORK_SOURCES] == [
        "399001.XSHE", "sz399001", "sz.399001"]
    assert sources.parse_symbol("399001.XSHE") == ("sz", "399001")


@pytest.mark.parametrize(
    "symbol", ["600519", "sz000300", "000300.XSHE", "CSI300", "00030", "sh0003000", ""])
def test_unknown_codes_name_data_symbol(symbol):
    with pytest.raises(sources.SourceError, match=rf"data.symbol '{symbol}'"):
        sources.library_symbol("akshare", symbol)


def test_a_symbol_yaml_read_as_a_number():
    # `-S data.symbol=399001` reaches params.yaml unquoted and loads as an int: still fine.
    assert sources.library_symbol("baostock", 399001) == "sz.399001"
    # PyYAML reads an unquoted 000300 as the octal number 192: refused, never a wrong index.
    with pytest.raises(sources.SourceError, match=r"data.symbol 192: not an index code"):
        sources.library_symbol("baostock", 192)


def test_unknown_source_is_refused():
    with pytest.raises(sources.SourceError, match=r"data.source 'tushare': not a network source"):
        sources.fetch("tushare", "000300", None, None, call=Recorder(akshare_frame()))


# --- the date range --------------------------------------------------------------------------


def test_whole_history_is_cut_to_the_range_and_the_call_gets_library_code_and_dates():
    call = Recorder(akshare_frame())
    table = sources.fetch("akshare", "000300", dt.date(2018, 1, 3), dt.date(2018, 1, 5), call=call)
    assert call.calls == [("sh000300", dt.date(2018, 1, 3), dt.date(2018, 1, 5))]
    check_equal(table, expected_table(ROWS[2:5]))


def test_open_range_asks_from_the_first_trading_day_to_today():
    call = Recorder(baostock_frame())
    table = sources.fetch("baostock", "sh.000300", None, None, call=call)
    assert call.calls == [("sh.000300", sources.EARLIEST_DATE, dt.date.today())]
    check_equal(table, expected_table())


def test_empty_answer_names_symbol_and_range():
    empty = pd.DataFrame([], columns=["date", "open", "high", "low", "close", "volume"])
    with pytest.raises(sources.SourceError) as caught:
        sources.fetch("baostock", "000300", *YEAR_2018, call=Recorder(empty))
    assert str(caught.value) == (
        "data.source baostock: 000300: no rows between data.start 2018-01-01 and data.end 2018-12-31 "
        "(no rows at all): check data.symbol and the dates")


def test_answer_outside_the_range_says_what_it_covers():
    with pytest.raises(sources.SourceError,
                       match=r"000300: no rows between data.start 2019-01-01 and data.end 2019-12-31 "
                       r"\(the data runs from 2017-12-29 to 2018-01-08\)"):
        sources.fetch("akshare", "000300", dt.date(2019, 1, 1), dt.date(2019, 12, 31),
                      call=Recorder(akshare_frame()))


# --- retries ---------------------------------------------------------------------------------


def test_transient_failures_are_retried_with_growing_waits():
    waits: list[float] = []
    call = Recorder(RequestsConnectionError("Max retries exceeded"), TimeoutError("timed out"),
                    akshare_frame())
    table = sources.fetch("akshare", "000300", *YEAR_2018, call=call, retries=3, backoff=1.0,
                          sleep=waits.append)
    assert waits == [1.0, 2.0] and len(call.calls) == 3
    check_equal(table, expected_table())


def test_waits_grow_but_are_bounded():
    assert sources.backoff_delays(6, 10.0) == [10.0, 20.0, 30.0, 30.0, 30.0, 30.0]
    assert sources.backoff_delays(0, 1.0) == []


def test_a_network_that_stays_down_gives_up_naming_source_and_network():
    waits: list[float] = []
    call = Recorder(RequestsConnectionError("Failed to resolve 'finance.sina.com.cn'"))
    with pytest.raises(sources.NetworkError) as caught:
        sources.fetch("akshare", "000300", *YEAR_2018, call=call, retries=5, backoff=8.0,
                      sleep=waits.append)
    assert waits == [8.0, 16.0, 30.0, 30.0, 30.0] and len(call.calls) == 6
    message = str(caught.value)
    assert message.startswith("data.source akshare: 000300 (sh000300): network error")
    assert "after 6 attempts" in message and "check the network / proxy" in message


@pytest.mark.parametrize("error", [
    ConnectionRefusedError("refused"),
    OSError(101, "Network is unreachable"),
    type("TTransportException", (Exception,), {})("Could not connect to ('39.107.190.114', 7000)"),
    type("ProtocolError", (Exception,), {})("No protocol version header"),
    Exception("连接被关闭，请减少数据查询量或检查网络后重试"),
])
def test_each_library_network_failure_is_retried(error, jq_credentials):
    waits: list[float] = []
    table = sources.fetch("jqdata", "000300", *YEAR_2018, call=Recorder(error, jqdata_frame()),
                          sleep=waits.append)
    assert waits == [1.0]
    check_equal(table, expected_table())


def test_rate_limits_are_retried_then_reported():
    waits: list[float] = []
    call = Recorder(HTTPError(429))
    message = r"rate limited by akshare's upstream .* wait and run again"
    with pytest.raises(sources.RateLimited, match=message):
        sources.fetch("akshare", "000300", *YEAR_2018, call=call, retries=2, sleep=waits.append)
    assert waits == [1.0, 2.0]


def test_jqdata_quota_message_is_a_rate_limit(jq_credentials):
    call = Recorder(Exception("您当天的查询条数超过了每日最大查询限制"))
    with pytest.raises(sources.RateLimited, match=r"JoinQuant.*daily quota resets overnight"):
        sources.fetch("jqdata", "000300", *YEAR_2018, call=call, retries=1, sleep=lambda s: None)


@pytest.mark.parametrize("source, error, kind", [
    ("jqdata", sources.LoginRefused("anything"), "login"),
    ("jqdata", Exception("用户名或密码错误"), "login"),
    ("jqdata", Exception("Please run jqdatasdk.auth first"), "login"),
    ("jqdata", RequestsConnectionError("407 Proxy Authentication Required"), "network"),
    ("jqdata", Exception("请求频率过高，请稍后再试"), "rate"),
    ("akshare", HTTPError(503), "network"),
    ("akshare", HTTPError(404), None),
    ("akshare", Exception("password"), None),
    ("baostock", ConnectionError("baostock login: error_code 10002007 网络接收错误。"), "network"),
    ("baostock", RuntimeError("baostock login: error_code 10001004 客户端版本号过期"), None),
])
def test_failure_kinds(source, error, kind):
    assert sources._failure_kind(error, source) == kind


def test_other_failures_are_not_retried():
    call = Recorder(IndexError("list index out of range"))
    message = r"akshare call failed \(IndexError: list index out of range\): check data.symbol and the dates"
    with pytest.raises(sources.SourceError, match=message):
        sources.fetch("akshare", "000300", *YEAR_2018, call=call, sleep=pytest.fail)
    assert len(call.calls) == 1


# --- credentials and extras ------------------------------------------------------------------


def test_missing_jqdata_credentials_fail_before_any_call(monkeypatch):
    monkeypatch.delenv("JQDATA_USER", raising=False)
    monkeypatch.setenv("JQDATA_PASSWORD", FAKE_PASSWORD)
    call = Recorder(jqdata_frame())
    message = r"set JQDATA_USER and JQDATA_PASSWORD .*missing: JQDATA_USER\)"
    with pytest.raises(sources.CredentialsError, match=message):
        sources.fetch("jqdata", "000300", *YEAR_2018, call=call)
    assert call.calls == []


def test_refused_login_is_not_retried_and_names_the_variables(jq_credentials):
    call = Recorder(sources.LoginRefused("账号或密码错误"))
    with pytest.raises(sources.CredentialsError) as caught:
        sources.fetch("jqdata", "000300", *YEAR_2018, call=call, sleep=pytest.fail)
    assert len(call.calls) == 1
    assert "JoinQuant refused the login" in str(caught.value) and "JQDATA_USER" in str(caught.value)


def fake_jqdatasdk(auth_error=None, answer=None):
    module = types.ModuleType("jqdatasdk")
    module.calls = []
    module.set_params = lambda **params: module.calls.append(("set_params", params))

    def auth(user, password):
        module.calls.append(("auth", user, password))
        print("auth success")
        if auth_error is not None:
            raise auth_error

    def get_price(security, **kwargs):
        module.calls.append(("get_price", security, kwargs))
        return answer

    module.auth, module.get_price = auth, get_price
    module.logout = lambda: module.calls.append(("logout",))
    return module


def test_jqdata_call_logs_in_from_the_environment_and_asks_unadjusted_bars(
        monkeypatch, jq_credentials, capsys):
    module = fake_jqdatasdk(answer=jqdata_frame())
    monkeypatch.setitem(sys.modules, "jqdatasdk", module)
    table = sources.fetch("jqdata", "000300.XSHG", *YEAR_2018)
    check_equal(table, expected_table())
    assert ("auth", FAKE_USER, FAKE_PASSWORD) in module.calls
    (get_price,) = [c for c in module.calls if c[0] == "get_price"]
    assert get_price[1] == "000300.XSHG"
    assert get_price[2] == {"start_date": "2018-01-01", "end_date": "2018-12-31", "frequency": "daily",
                            "fields": list(sources.JQDATA_FIELDS), "skip_paused": True, "fq": None}
    assert module.calls[-1] == ("logout",) and capsys.readouterr().out == ""


def test_jqdata_refused_login_never_reaches_get_price(monkeypatch, jq_credentials):
    module = fake_jqdatasdk(auth_error=Exception(f"用户名或密码错误 ({FAKE_USER}/{FAKE_PASSWORD})"))
    monkeypatch.setitem(sys.modules, "jqdatasdk", module)
    with pytest.raises(sources.CredentialsError, match="check JQDATA_USER and JQDATA_PASSWORD") as caught:
        sources.fetch("jqdata", "000300", *YEAR_2018, sleep=pytest.fail)
    assert not [c for c in module.calls if c[0] == "get_price"]
    assert FAKE_PASSWORD not in str(caught.value) and FAKE_USER not in str(caught.value)


def test_credentials_never_appear_in_error_messages(jq_credentials):
    leaky = [
        RequestsConnectionError(f"proxy said: bad user {FAKE_USER} password {FAKE_PASSWORD}"),
        Exception(f"auth failed for {FAKE_PASSWORD}"),
        Exception(f"您当天的查询条数超过了每日最大查询限制 {FAKE_PASSWORD}"),
        ValueError(f"unexpected {FAKE_PASSWORD}"),
    ]
    for error in leaky:
        with pytest.raises(sources.SourceError) as caught:
            sources.fetch("jqdata", "000300", *YEAR_2018, call=Recorder(error), retries=1,
                          sleep=lambda seconds: None)
        assert FAKE_PASSWORD not in str(caught.value) and FAKE_USER not in str(caught.value)
        assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize("source, module", sources.LIBRARIES.items())
def test_a_missing_extra_names_the_extra_to_install(monkeypatch, jq_credentials, source, module):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(sources.SourceUnavailable) as caught:
        sources.fetch(source, "000300", *YEAR_2018, sleep=pytest.fail)
    assert str(caught.value).startswith(
        f"data.source {source} needs the {source} extra: pip install 'nextclose[{source}]'")


# --- the real call functions against stand-in libraries --------------------------------------


def test_akshare_call_asks_sina_for_the_sh_code(monkeypatch):
    module = types.ModuleType("akshare")
    asked = []
    module.stock_zh_index_daily = lambda symbol: asked.append(symbol) or akshare_frame()
    monkeypatch.setitem(sys.modules, "akshare", module)
    check_equal(sources.fetch("akshare", "000300", *YEAR_2018), expected_table())
    assert asked == ["sh000300"]


class FakeResultData:
    """baostock's ResultData: error_code / error_msg, fields, and rows read with next()."""

    def __init__(self, error_code="0", error_msg="success", rows=(), fields=()):
        self.error_code, self.error_msg = error_code, error_msg
        self.data, self.fields, self.position = list(rows), list(fields), 0

    def next(self):
        return self.position < len(self.data)

    def get_row_data(self):
        self.position += 1
        return self.data[self.position - 1]

    def get_data(self):  # what baostock 0.9.4 does past one page on pandas >= 2
        raise AttributeError("'DataFrame' object has no attribute 'append'")


def test_baostock_call_retries_a_network_error_code_and_reads_rows(monkeypatch, capsys):
    answer = baostock_frame()
    logins = [FakeResultData("10002007", "网络接收错误。"), FakeResultData()]
    module = types.ModuleType("baostock")
    module.queries, module.logouts = [], 0

    def login():
        print("login success!")
        return logins.pop(0)

    def query(code, fields, **kwargs):
        module.queries.append((code, fields, kwargs))
        return FakeResultData(rows=answer.values.tolist(), fields=list(answer.columns))

    def logout():
        module.logouts += 1

    module.login, module.query_history_k_data_plus, module.logout = login, query, logout
    monkeypatch.setitem(sys.modules, "baostock", module)
    waits: list[float] = []
    table = sources.fetch("baostock", "000300", *YEAR_2018, sleep=waits.append)
    check_equal(table, expected_table())
    assert waits == [1.0] and module.logouts == 1
    assert module.queries == [("sh.000300", "date,open,high,low,close,volume",
                               {"start_date": "2018-01-01", "end_date": "2018-12-31",
                                "frequency": "d", "adjustflag": "3"})]
    assert capsys.readouterr().out == ""


def test_baostock_call_reads_the_real_result_class(monkeypatch):
    """Runs where the baostock extra is installed: its own ResultData, fed a canned answer."""
    resultset = pytest.importorskip("baostock.data.resultset")

    def answer():
        result = resultset.ResultData()
        result.error_code, result.error_msg = "0", "success"
        result.setData(json.dumps({"record": baostock_frame().values.tolist()}))
        result.setFields(",".join(sources.BAOSTOCK_FIELDS))
        return result

    module = types.ModuleType("baostock")
    module.login = lambda: types.SimpleNamespace(error_code="0", error_msg="success")
    module.query_history_k_data_plus = lambda *args, **kwargs: answer()
    module.logout = lambda: None
    monkeypatch.setitem(sys.modules, "baostock", module)
    check_equal(sources.fetch("baostock", "000300", *YEAR_2018), expected_table())


def test_baostock_error_codes():
    sources._check_baostock(FakeResultData(), "login")
    with pytest.raises(ConnectionError, match="10002007"):
        sources._check_baostock(FakeResultData("10002007", "网络接收错误。"), "login")
    with pytest.raises(RuntimeError, match="10001004"):
        sources._check_baostock(FakeResultData("10001004", "客户端版本号过期"), "login")


# --- provenance ------------------------------------------------------------------------------


def test_raw_metadata_records_where_when_and_what():
    table = sources.map_baostock(baostock_frame())
    fetched_at = dt.datetime(2024, 5, 6, 15, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    metadata = sources.raw_metadata("baostock", "000300", *YEAR_2018, table, fetched_at=fetched_at)
    assert metadata == {
        "source": "baostock", "symbol": "000300", "library_symbol": "sh.000300",
        "library": "baostock", "library_version": sources.library_version("baostock"),
        "start": "2018-01-01", "end": "2018-12-31", "fetched_at": "2024-05-06T07:30:00+00:00",
        "rows": 5, "first_date": "2018-01-02", "last_date": "2018-01-08",
        "columns": ["date", "open", "high", "low", "close", "volume"],
        "bars_sha256": bars.bars_hash(table),
    }


def test_raw_data_is_reused_only_for_the_same_request():
    table = sources.map_akshare(akshare_frame())
    metadata = sources.raw_metadata("akshare", "000300", *YEAR_2018, table)
    assert sources.is_reusable(metadata, "akshare", "sh000300", *YEAR_2018)
    assert not sources.is_reusable(metadata, "baostock", "000300", *YEAR_2018)
    assert not sources.is_reusable(metadata, "akshare", "000905", *YEAR_2018)
    assert not sources.is_reusable(metadata, "akshare", "000300", dt.date(2017, 1, 1), YEAR_2018[1])
    assert not sources.is_reusable(metadata, "akshare", "000300", YEAR_2018[0], None)
    assert not sources.is_reusable(metadata, "akshare", "nonsense", *YEAR_2018)


def test_importing_the_module_imports_no_vendor_library():
    code = ("import sys, nextclose.sources; "
            "print(sorted({'akshare', 'baostock', 'jqdatasdk'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- the real thing --------------------------------------------------------------------------


@pytest.mark.network
@pytest.mark.parametrize("source", sources.NETWORK_SOURCES)
def test_fetch_a_few_days_for_real(source):
    if importlib.util.find_spec(sources.LIBRARIES[source]) is None:
        pytest.skip(f"{sources.LIBRARIES[source]} is not installed (pip install 'nextclose[{source}]')")
    if source == "jqdata" and not (os.environ.get("JQDATA_USER") and os.environ.get("JQDATA_PASSWORD")):
        pytest.skip("set JQDATA_USER and JQDATA_PASSWORD to fetch from JoinQuant")
    try:
        table = sources.fetch(source, "000300", dt.date(2018, 1, 2), dt.date(2018, 1, 10))
    except sources.NetworkError as error:  # where the network does not allow; anything else fails
        pytest.skip(str(error))
    assert table["date"].iloc[0] == pd.Timestamp("2018-01-02")
    assert table["date"].iloc[-1] <= pd.Timestamp("2018-01-10") and 5 <= len(table) <= 7
    assert np.all((table["close"] > 3800) & (table["close"] < 4400))  # the CSI 300 in early 2018
    bars.validate_bars(table, source)
