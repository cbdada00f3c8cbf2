"""The CSI 300's members as a panel, point in time, offline: index-constitution's data, and
akshare / baostock answers recorded as the libraries shape them.

What each library returns, read from its source (index-constitution 1.0.1, akshare 1.19.5,
baostock 0.9.4; pandas 3.1):

- index-constitution ``history("csi300")``: one row per membership period, ``symbol``
  (``SH600000``, ``SZ000001``; a string dtype), ``name``, ``opt-in`` and ``opt-out``
  (``datetime64[us]``, ``NaT`` while a member); a member on ``d`` when ``opt-in <= d < opt-out``
  (``constituents_at``). An unknown index raises ``ValueError``. Shipped in the wheel (pickles).
- akshare ``stock_zh_a_hist(symbol="600000", period="daily", start_date="20180601",
  end_date="20190628", adjust="hfq", timeout=None)`` (Eastmoney): splits each kline string
  ``date,open,close,high,low,volume,amount,amplitude,pct,change,turnover``, names the columns in
  Chinese, ``日期`` as ``datetime.date``, the rest ``pd.to_numeric`` (volume int64, in lots),
  reordered 日期, 股票代码, 开盘, 收盘, 最高, 最低, 成交量, 成交额, 振幅, 涨跌幅, 涨跌额, 换手率; no kline
  (a suspended or delisted stock): an empty ``pd.DataFrame()``. Suspended days have no kline.
- baostock ``query_history_k_data_plus("sh.600000", "date,open,...,tradestatus", start_date,
  end_date, frequency="d", adjustflag="1")`` (1: back-adjusted, 2: forward, 3: none): rows of
  strings; a suspended day is a row with ``tradestatus`` "0", the previous close as every price
  and volume "0".
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import types

import numpy as np
import pandas as pd
import pytest

from nextclose import cli, constituents, panels, sources
from nextclose.errors import DataError
from nextclose.params import PANEL_SOURCES, ParamsError, load_params

from helpers import tiny_params, write_params

ic = pytest.importorskip("index_constitution")

START, END = dt.date(2018, 6, 1), dt.date(2019, 6, 28)
JOINS, LEAVES = "SH600004", "SZ000060"  # joined 2018-12-17 (a member 2005-2012 too); left 2018-12-17
ALWAYS = ("SH600000", "SZ000001")  # members since 2005
NEVER = "SH600005"  # a member 2005-2013 and 2015-2017 only
CHANGE = pd.Timestamp("2018-12-17")
RECORDED = (JOINS, LEAVES, NEVER) + ALWAYS
DAYS = pd.bdate_range(START, END)
SKIPPED = {"SH600000": pd.Timestamp("2018-07-02")}  # a suspended day: no kline, and a row with tradestatus 0


class RequestsConnectionError(OSError):
    """Shaped like requests.exceptions.ConnectionError: RequestException -> OSError."""


RequestsConnectionError.__name__ = "ConnectionError"


@pytest.fixture
def recorded_history(monkeypatch):
    """index-constitution's real CSI 300 history, cut to the five stocks the answers are recorded for."""
    real = ic.history

    def history(index):
        frame = real(index)
        return frame.loc[frame["symbol"].isin(RECORDED)].reset_index(drop=True)

    monkeypatch.setattr(ic, "history", history)


def walk(symbol: str) -> pd.DataFrame:
    """A stock's back-adjusted bars over DAYS, rounded to cents as Eastmoney sends them."""
    rng = np.random.default_rng(int(symbol[2:]))
    close = 20 * np.exp(np.cumsum(rng.normal(0, 0.015, len(DAYS))))
    open_ = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, 0.003, len(DAYS)))
    table = pd.DataFrame({
        "date": DAYS, "open": open_.round(2), "close": close.round(2),
        "high": (np.maximum(open_, close) * 1.01).round(2), "low": (np.minimum(open_, close) * 0.99).round(2),
        "volume": rng.integers(10_000, 900_000, len(DAYS)),
    })
    return table.loc[table["date"] != SKIPPED.get(symbol)].reset_index(drop=True)


def akshare_answer(code: str, start: str, end: str) -> pd.DataFrame:
    """stock_zh_a_hist's frame, built the way akshare builds it from Eastmoney's klines."""
    symbol = ("SH" if code.startswith("6") else "SZ") + code
    bars = walk(symbol)
    bars = bars.loc[(bars["date"] >= pd.Timestamp(start)) & (bars["date"] <= pd.Timestamp(end))]
    klines = [f"{r.date:%Y-%m-%d},{r.open:.2f},{r.close:.2f},{r.high:.2f},{r.low:.2f},{r.volume},"
              f"{r.volume * r.close * 100:.2f},1.50,0.20,0.04,0.33" for r in bars.itertuples()]
    if not klines:
        return pd.DataFrame()
    temp_df = pd.DataFrame([item.split(",") for item in klines])
    temp_df["股票代码"] = code
    temp_df.columns = ["日期", "开盘", "收盘", "最高", "最低", "成交量", "成交额", "振幅", "涨跌幅", "涨跌额", "换手率",
                       "股票代码"]
    temp_df["日期"] = pd.to_datetime(temp_df["日期"], errors="coerce").dt.date
    for column in ("开盘", "收盘", "最高", "最低", "成交量", "成交额", "振幅", "涨跌幅", "涨跌额", "换手率"):
        temp_df[column] = pd.to_numeric(temp_df[column], errors="coerce")
    temp_df = temp_df[["日期", "股票代码", "开盘", "收盘", "最高", "最低", "成交量", "成交额", "振幅", "涨跌幅",
                       "涨跌额", "换手率"]]
    assert isinstance(temp_df["日期"].iloc[0], dt.date) and temp_df["成交量"].dtype == "int64"
    return temp_df


def fake_akshare(monkeypatch, failures: dict[str, list[BaseException]] | None = None) -> list[dict]:
    """An akshare module whose stock_zh_a_hist answers from the recording (or raises ``failures[code]`` first)."""
    asked: list[dict] = []
    pending = {code: list(errors) for code, errors in (failures or {}).items()}
    module = types.ModuleType("akshare")

    def stock_zh_a_hist(symbol="000001", period="daily", start_date="19700101", end_date="20500101", adjust="",
                        timeout=None):
        asked.append({"symbol": symbol, "period": period, "start_date": start_date, "end_date": end_date,
                      "adjust": adjust, "timeout": timeout})
        if pending.get(symbol):
            raise pending[symbol].pop(0)
        return akshare_answer(symbol, start_date, end_date)

    module.stock_zh_a_hist = stock_zh_a_hist
    monkeypatch.setitem(sys.modules, "akshare", module)
    return asked


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


def baostock_rows(code: str, fields: list[str]) -> list[list[str]]:
    """query_history_k_data_plus' rows (strings) of the recording, a suspended day included."""
    symbol = code.replace(".", "").upper()
    bars = walk(symbol).assign(tradestatus="1")
    skipped = SKIPPED.get(symbol)
    if skipped is not None:  # baostock sends the suspended day: last close everywhere, no volume
        before = bars.loc[bars["date"] < skipped].iloc[-1]
        row = {"date": skipped, **{f: before["close"] for f in ("open", "high", "low", "close")},
               "volume": 0, "tradestatus": "0"}
        bars = pd.concat([bars, pd.DataFrame([row])]).sort_values("date")
    return [[f"{r['date']:%Y-%m-%d}" if f == "date" else r[f] if f == "tradestatus" else
             str(int(r[f])) if f == "volume" else f"{r[f]:.4f}" for f in fields] for _, r in bars.iterrows()]


def fake_baostock(monkeypatch, logins=None):
    module = types.ModuleType("baostock")
    module.queries, module.logins, module.logouts = [], 0, 0
    answers = list(logins or [])

    def login():
        module.logins += 1
        print("login success!")
        return answers.pop(0) if answers else FakeResultData()

    def query(code, fields, **kwargs):
        module.queries.append((code, fields, kwargs))
        names = fields.split(",")
        return FakeResultData(rows=baostock_rows(code, names), fields=names)

    def logout():
        module.logouts += 1

    module.login, module.query_history_k_data_plus, module.logout = login, query, logout
    monkeypatch.setitem(sys.modules, "baostock", module)
    return module


def fetch(source="akshare_constituents", **kwargs):
    kwargs.setdefault("sleep", lambda seconds: None)
    kwargs.setdefault("pause", 0.0)
    return constituents.fetch_constituent_panel(source, "000300", START, END, **kwargs)


# --- membership, point in time -------------------------------------------------------------------


def test_the_mask_matches_index_constitutions_dates_for_a_stock_that_joined_and_one_that_left():
    periods = constituents.membership("000300")
    days = pd.bdate_range("2018-11-26", "2019-01-04").append(pd.DatetimeIndex([START, END]))
    for symbol in (JOINS, LEAVES):
        expected = [ic.is_member("csi300", symbol, day) for day in days]
        assert constituents.member_mask(periods, symbol, days).tolist() == expected, symbol
    assert constituents.member_mask(periods, JOINS, [CHANGE - pd.Timedelta(days=3), CHANGE]).tolist() == [False, True]
    assert constituents.member_mask(periods, LEAVES, [CHANGE - pd.Timedelta(days=3), CHANGE]).tolist() == [True, False]
    # SH600004 belonged once before, 2005-04-08 .. 2012-01-01
    assert constituents.member_mask(periods, JOINS, ["2011-12-30", "2012-01-04"]).tolist() == [True, False]


def test_the_members_of_a_period_are_those_of_any_of_its_days():
    periods = constituents.membership("000300")
    members = constituents.members_between(periods, START, END)
    every_day = set().union(*(set(ic.constituents_at("csi300", day)["symbol"]) for day in (START, CHANGE, END)))
    assert every_day <= set(members) and len(members) > 300
    assert {JOINS, LEAVES, "SZ000008"} <= set(members)  # SZ000008 left on 2018-06-11, a week into the period
    assert NEVER not in members
    assert constituents.membership("399300").equals(periods)  # the Shenzhen code of the same index
    assert len(constituents.members_between(constituents.membership("000905"), START, END)) > 500


def test_an_index_without_membership_data_names_data_symbol(monkeypatch):
    with pytest.raises(DataError, match=r"data.symbol '000016': no point-in-time membership.*000300 \(CSI 300\)"):
        constituents.membership("000016")

    def history(index):
        raise ValueError(f"Unknown index {index!r}. Available: sp500")

    monkeypatch.setattr(ic, "history", history)
    with pytest.raises(DataError, match=r"data.symbol '000905': index-constitution .* has no membership of csi500"):
        constituents.membership("000905")


def test_a_period_before_the_index_existed_is_refused(recorded_history):
    with pytest.raises(DataError, match=r"no stock was a member of the CSI 300 \(000300\) between data.start "
                                        r"2001-01-01 and data.end 2004-12-31 .* from 2005-04-08"):
        constituents.fetch_constituent_panel("akshare_constituents", "000300", dt.date(2001, 1, 1),
                                             dt.date(2004, 12, 31), call=pytest.fail)


# --- akshare ---------------------------------------------------------------------------------------


def test_akshare_members_become_a_panel_with_their_member_days(monkeypatch, recorded_history):
    asked = fake_akshare(monkeypatch)
    waits: list[float] = []
    told: list[tuple] = []
    panel = fetch(sleep=waits.append, pause=0.5, progress=lambda *args: told.append(args))
    # every stock of the period, once, back-adjusted, over the whole period; NEVER not even asked
    assert [a["symbol"] for a in asked] == ["600000", "600004", "000001", "000060"]
    assert all(a == {"symbol": a["symbol"], "period": "daily", "start_date": "20180601", "end_date": "20190628",
                     "adjust": "hfq", "timeout": sources.TIMEOUT_SECONDS} for a in asked)
    assert waits == [0.5] * 3 and told[-1] == (4, 4, "SZ000060")
    assert list(panel.columns) == ["date", "symbol", "open", "high", "low", "close", "volume", "member"]
    assert panel["member"].dtype == bool and panel["date"].dtype == "datetime64[ns]"
    assert sorted(panel["symbol"].unique()) == sorted(set(RECORDED) - {NEVER})
    panels.validate_panel(panel, "test")
    pd.testing.assert_frame_equal(panel, panel.sort_values(["symbol", "date"]).reset_index(drop=True))
    # bars on non-member days are kept (the windows' history); member says which days count
    joined, left = (panel.loc[panel["symbol"] == s].set_index("date") for s in (JOINS, LEAVES))
    assert len(joined) == len(left) == len(DAYS)
    assert (joined["member"] == (joined.index >= CHANGE)).all()
    assert (left["member"] == (left.index < CHANGE)).all()
    for symbol in ALWAYS:
        assert panel.loc[panel["symbol"] == symbol, "member"].all()
    # the recorded prices, mapped: 收盘 is close, 成交量 volume
    expected = walk(JOINS).set_index("date")
    np.testing.assert_array_equal(joined["close"].to_numpy(), expected["close"].to_numpy())
    np.testing.assert_array_equal(joined["volume"].to_numpy(), expected["volume"].to_numpy(dtype=float))
    assert SKIPPED["SH600000"] not in set(panel.loc[panel["symbol"] == "SH600000", "date"])


def test_a_transient_error_is_retried_for_that_stock(monkeypatch, recorded_history):
    asked = fake_akshare(monkeypatch, {"600004": [RequestsConnectionError("Connection aborted."),
                                                  TimeoutError("read timed out")]})
    waits: list[float] = []
    panel = fetch(sleep=waits.append)
    assert waits == [1.0, 2.0]
    assert [a["symbol"] for a in asked] == ["600000", "600004", "600004", "600004", "000001", "000060"]
    assert JOINS in set(panel["symbol"])


def test_a_stock_that_keeps_failing_names_the_stock_and_the_source(monkeypatch, recorded_history):
    fake_akshare(monkeypatch, {"000060": [RequestsConnectionError("Max retries exceeded")] * 9})
    with pytest.raises(sources.NetworkError) as caught:
        fetch()
    message = str(caught.value)
    assert message.startswith("data.source akshare_constituents: stock SZ000060 (000060), a member of the CSI 300 "
                              "(000300): network error, could not reach Eastmoney")
    assert "after 4 attempts" in message and "push2his.eastmoney.com" in message


def test_a_stock_whose_answer_is_broken_fails_at_once(monkeypatch, recorded_history):
    asked = fake_akshare(monkeypatch, {"600004": [KeyError("klines")]})
    with pytest.raises(sources.SourceError, match=r"^data.source akshare_constituents: stock SH600004 \(600004\).*"
                                                  r"the akshare call failed \(KeyError: 'klines'\)"):
        fetch(sleep=pytest.fail)
    assert [a["symbol"] for a in asked] == ["600000", "600004"]


def test_a_member_without_bars_is_left_out_and_named(monkeypatch, recorded_history):
    module = types.ModuleType("akshare")
    module.stock_zh_a_hist = lambda symbol, **kwargs: (pd.DataFrame() if symbol == "000060" else
                                                       akshare_answer(symbol, kwargs["start_date"],
                                                                      kwargs["end_date"]))
    monkeypatch.setitem(sys.modules, "akshare", module)
    panel = fetch()
    assert LEAVES not in set(panel["symbol"])
    metadata = constituents.raw_metadata("akshare_constituents", "000300", START, END, panel)
    assert metadata["missing"] == [LEAVES] and (metadata["constituents"], metadata["symbols"]) == (4, 3)


def test_a_changed_akshare_format_names_the_missing_column(monkeypatch, recorded_history):
    module = types.ModuleType("akshare")
    module.stock_zh_a_hist = lambda **kwargs: akshare_answer("600000", "20180601", "20190628").drop(columns="收盘")
    monkeypatch.setitem(sys.modules, "akshare", module)
    with pytest.raises(sources.SourceError, match="stock SH600000: the akshare answer has no 收盘 column"):
        fetch()


def test_a_missing_extra_names_the_extra(monkeypatch, recorded_history):
    monkeypatch.setitem(sys.modules, "akshare", None)
    with pytest.raises(sources.SourceUnavailable, match=r"pip install 'nextclose\[akshare\]'"):
        fetch()


# --- baostock --------------------------------------------------------------------------------------


def test_baostock_logs_in_once_and_asks_back_adjusted_bars(monkeypatch, capsys, recorded_history):
    module = fake_baostock(monkeypatch)
    panel = fetch("baostock_constituents")
    assert (module.logins, module.logouts) == (1, 1)
    assert [q[0] for q in module.queries] == ["sh.600000", "sh.600004", "sz.000001", "sz.000060"]
    assert module.queries[0][1:] == ("date,open,high,low,close,volume,tradestatus",
                                     {"start_date": "2018-06-01", "end_date": "2019-06-28", "frequency": "d",
                                      "adjustflag": "1"})
    assert capsys.readouterr().out == ""
    # the suspended day (tradestatus 0) is dropped: the same panel as akshare's, prices and all
    fake_akshare(monkeypatch)
    pd.testing.assert_frame_equal(panel, fetch())


def test_baostock_logs_in_again_after_a_network_error(monkeypatch, recorded_history):
    module = fake_baostock(monkeypatch, logins=[FakeResultData(), FakeResultData("10002007", "网络接收错误。")])
    real_query = module.query_history_k_data_plus
    failed = []

    def query(code, fields, **kwargs):
        if code == "sh.600004" and not failed:
            failed.append(code)
            return FakeResultData("10002007", "网络接收错误。")
        return real_query(code, fields, **kwargs)

    module.query_history_k_data_plus = query
    waits: list[float] = []
    panel = fetch("baostock_constituents", sleep=waits.append)
    assert waits == [1.0, 2.0] and module.logins == 3 and module.logouts == 2
    assert JOINS in set(panel["symbol"])


# --- provenance, reuse, params ----------------------------------------------------------------------


def test_raw_metadata_records_the_index_and_the_membership_data(monkeypatch, recorded_history):
    fake_akshare(monkeypatch)
    panel = fetch()
    fetched_at = dt.datetime(2024, 5, 6, 15, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    metadata = constituents.raw_metadata("akshare_constituents", "000300", START, END, panel, fetched_at=fetched_at)
    assert metadata == {
        "source": "akshare_constituents", "symbol": "000300", "index": "csi300", "index_name": "CSI 300",
        "library": "akshare", "library_version": sources.library_version("akshare"), "adjust": "hfq",
        "membership": {"library": "index-constitution", "version": "1.0.1",
                       "known_until": metadata["membership"]["known_until"], "rule": "opt-in <= date < opt-out"},
        "start": "2018-06-01", "end": "2019-06-28", "fetched_at": "2024-05-06T07:30:00+00:00",
        "constituents": 4, "symbols": 4, "missing": [], "member_rows": int(panel["member"].sum()),
        "rows": len(panel), "first_date": "2018-06-01", "last_date": "2019-06-28",
        "columns": ["date", "symbol", "open", "high", "low", "close", "volume", "member"],
        "bars_sha256": panels.panel_hash(panel),
    }
    assert metadata["membership"]["known_until"] == "2021-06-11"  # the last change of the five recorded stocks
    assert constituents.is_reusable(metadata, "akshare_constituents", "sh000300", START, END)
    assert constituents.is_reusable(metadata, "akshare_constituents", "399300", START, END)
    assert not constituents.is_reusable(metadata, "baostock_constituents", "000300", START, END)
    assert not constituents.is_reusable(metadata, "akshare_constituents", "000905", START, END)
    assert not constituents.is_reusable(metadata, "akshare_constituents", "000300", START, None)
    assert not constituents.is_reusable({**metadata, "membership": {**metadata["membership"], "version": "0.9"}},
                                        "akshare_constituents", "000300", START, END)


def test_the_panel_hash_and_rules_cover_the_member_column(monkeypatch, recorded_history):
    fake_akshare(monkeypatch)
    panel = fetch()
    flipped = panel.copy()
    flipped.loc[0, "member"] = not flipped.loc[0, "member"]
    assert panels.panel_hash(flipped) != panels.panel_hash(panel)
    assert panels.panel_hash(panel.drop(columns="member")) != panels.panel_hash(panel)
    text = panel.assign(member=panel["member"].astype(object))
    text.loc[3, "member"] = "yes"
    with pytest.raises(DataError, match=r"test: row 4 \(2018-06-06, symbol SH600000\): member must be true or false"):
        panels.validate_panel(text, "test")
    with pytest.raises(DataError, match="member must be true or false .* type is int64"):
        panels.validate_panel(panel.assign(member=panel["member"].astype(int)), "test")


@pytest.mark.parametrize("source", ["akshare_constituents", "baostock_constituents"])
def test_params_accept_the_constituent_sources_as_panels(tmp_path, source):
    params = load_params(write_params(tmp_path, tiny_params(data={"source": source, "symbol": "000905"})))
    assert params.data.source == source and source in PANEL_SOURCES


def test_params_require_data_start_and_a_known_index(tmp_path):
    no_start = tiny_params(data={"source": "akshare_constituents", "symbol": "000300", "start": None})
    with pytest.raises(ParamsError, match=r"data.start: required when data.source is akshare_constituents"):
        load_params(write_params(tmp_path, no_start))
    sse50 = tiny_params(data={"source": "baostock_constituents", "symbol": "000016"})
    with pytest.raises(ParamsError, match=r"data.symbol: data.symbol '000016': no point-in-time membership"):
        load_params(write_params(tmp_path, sse50))
    stock = tiny_params(data={"source": "baostock_constituents", "symbol": "600519"})
    with pytest.raises(ParamsError, match="data.symbol"):
        load_params(write_params(tmp_path, stock))
    tutorial = tiny_params(data={"source": "akshare_constituents"}, model={"kind": "tutorial"})
    with pytest.raises(ParamsError, match="model.kind: tutorial reads one series"):
        load_params(write_params(tmp_path, tutorial))


# --- the prepare stage -------------------------------------------------------------------------------


def test_prepare_fetches_the_panel_once_then_reuses_data_raw(workspace, monkeypatch, capsys, recorded_history):
    from nextclose import layout

    asked = fake_akshare(monkeypatch)
    monkeypatch.setitem(constituents.PAUSE_SECONDS, "akshare", 0.0)
    data = {"source": "akshare_constituents", "symbol": "000300", "start": START.isoformat(),
            "end": END.isoformat()}
    write_params(workspace, tiny_params(data=data))
    assert cli.main(["prepare"]) == 0
    out = capsys.readouterr().out
    assert "akshare_constituents 000300: 4/4 constituents fetched (SZ000060)" in out
    assert "fetched akshare_constituents 000300 bars" in out
    raw = json.loads((workspace / "data/raw/raw.json").read_text())
    assert (raw["index"], raw["constituents"], raw["missing"]) == ("csi300", 4, [])
    metadata, table = layout.read_raw()
    assert table["member"].dtype == bool and table["symbol"].dtype != float
    assert panels.panel_hash(table) == raw["bars_sha256"]
    # only members' target days are trained on and scored (features.target_membership)
    windows = layout.read_windows()
    for name, part in windows.items():
        joined = part.target_dates[part.symbols == JOINS]
        left = part.target_dates[part.symbols == LEAVES]
        assert (joined >= np.datetime64(CHANGE, "D")).all() and (left < np.datetime64(CHANGE, "D")).all(), name
    assert LEAVES not in set(windows["test"].symbols)
    prepared = layout.read_prepared_bars()
    assert "member" in prepared.columns and len(prepared) == len(table)
    # the same request again: data/raw is read back, nothing fetched
    calls = len(asked)
    assert cli.main(["prepare"]) == 0
    assert "reused akshare_constituents 000300 bars" in capsys.readouterr().out and len(asked) == calls
