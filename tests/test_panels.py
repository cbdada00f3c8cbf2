"""Panels of many symbols: the shipped S&P 500 stocks, long and wide CSV files, every rule."""

import socket

import numpy as np
import pandas as pd
import pytest

from nextclose.errors import DataError
from nextclose.panels import load_sp500, panel_hash, read_panel_csv, validate_panel
from nextclose.params import parse_params
from nextclose.stages import prepare

from helpers import tiny_params

# (date, symbol, open, high, low, close, volume)
ROWS = [
    ("2018-01-02", "AAA", 100.0, 102.0, 99.0, 101.0, 1000),
    ("2018-01-02", "BBB", 20.0, 21.0, 19.5, 20.5, 500),
    ("2018-01-03", "AAA", 101.0, 103.0, 100.5, 102.5, 1100),
    ("2018-01-03", "BBB", 20.5, 20.9, 20.0, 20.2, 400),
    ("2018-01-04", "AAA", 102.5, 102.9, 101.0, 101.5, 900),
]


def write(tmp_path, text, name="panel.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def long_csv(header="date,symbol,open,high,low,close,volume", rows=ROWS):
    lines = [header] + [",".join(str(cell) for cell in row) for row in rows]
    return "\n".join(lines) + "\n"


def close_only_csv(rows=ROWS):
    return long_csv("date,symbol,close", [(d, s, c) for d, s, _, _, _, c, _ in rows])


def expected(columns=("open", "high", "low", "close", "volume")) -> pd.DataFrame:
    order = sorted(range(len(ROWS)), key=lambda i: (ROWS[i][1], ROWS[i][0]))
    fields = {"open": 2, "high": 3, "low": 4, "close": 5, "volume": 6}
    table = pd.DataFrame({
        "date": pd.to_datetime([ROWS[i][0] for i in order]).astype("datetime64[ns]"),
        "symbol": pd.Series([ROWS[i][1] for i in order], dtype=str),
    })
    for field in columns:
        table[field] = [float(ROWS[i][fields[field]]) for i in order]
    return table


# --- the shipped panel ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sp500():
    return load_sp500()


def test_sp500_ships_20_symbols_offline(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("load_sp500 reached for the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    table = load_sp500()
    assert list(table.columns) == ["date", "symbol", "close"]
    assert table["symbol"].nunique() == 20 and {"AAPL", "MSFT", "XOM"} <= set(table["symbol"])
    assert table["date"].dtype == "datetime64[ns]" and table["close"].dtype == np.float64
    assert table["date"].min() == pd.Timestamp("1990-01-02") and table["date"].max().year == 2022


def test_sp500_is_sorted_by_symbol_then_increasing_date_and_valid(sp500):
    assert list(sp500["symbol"]) == sorted(sp500["symbol"])
    for _, dates in sp500.groupby("symbol")["date"]:
        assert dates.is_monotonic_increasing and dates.is_unique
    assert (sp500.groupby("symbol").size() == 8313).all()
    assert validate_panel(sp500, "sp500") is None


# --- reading ----------------------------------------------------------------------------------------

def test_ohlcv_long_panel(tmp_path):
    table = read_panel_csv(write(tmp_path, long_csv()))
    pd.testing.assert_frame_equal(table, expected())


def test_close_only_long_panel(tmp_path):
    table = read_panel_csv(write(tmp_path, close_only_csv()))
    pd.testing.assert_frame_equal(table, expected(("close",)))


def test_long_and_wide_files_give_the_same_panel(tmp_path):
    wide = "Date,AAA,BBB\n2018-01-02,101,20.5\n2018-01-03,102.5,20.2\n2018-01-04,101.5,\n"
    from_wide = read_panel_csv(write(tmp_path, wide, "wide.csv"))
    from_long = read_panel_csv(write(tmp_path, close_only_csv(), "long.csv"))
    pd.testing.assert_frame_equal(from_wide, from_long)
    assert panel_hash(from_wide) == panel_hash(from_long)


def test_a_wide_file_with_gaps_keeps_each_symbols_calendar(tmp_path):
    wide = "date,AAA,BBB\n2018-01-02,101,\n2018-01-03,,20.2\n2018-01-04,\"1,101.5\",20.4\n2018-01-05,,\n"
    table = read_panel_csv(write(tmp_path, wide))
    by_symbol = {s: list(d.dt.strftime("%m-%d")) for s, d in table.groupby("symbol")["date"]}
    assert by_symbol == {"AAA": ["01-02", "01-04"], "BBB": ["01-03", "01-04"]}
    assert table["close"].tolist() == [101.0, 1101.5, 20.2, 20.4]  # a thousands separator read too


def test_a_date_indexed_wide_frame_as_pandas_writes_it(tmp_path, sp500):
    recent = sp500[sp500["date"] >= "2022-12-01"].reset_index(drop=True)
    path = tmp_path / "wide.csv"
    recent.pivot(index="date", columns="symbol", values="close").to_csv(path)
    pd.testing.assert_frame_equal(read_panel_csv(path), recent)


def test_symbol_header_aliases_and_the_columns_mapping(tmp_path):
    aliased = read_panel_csv(write(tmp_path, close_only_csv().replace("symbol", "Ticker", 1)))
    pd.testing.assert_frame_equal(aliased, expected(("close",)))
    mapped = read_panel_csv(write(tmp_path, close_only_csv().replace("date,symbol,close", "Day,Name,Last", 1)),
                            {"date": "Day", "symbol": "Name", "close": "Last"})
    pd.testing.assert_frame_equal(mapped, expected(("close",)))


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gbk"])
def test_chinese_headers_in_utf8_with_bom_and_gbk(tmp_path, encoding):
    text = "日期,代码,收盘\n2018-01-02,600000,10.5\n2018-01-02,000001,12\n2018-01-03,600000,10.7\n"
    path = tmp_path / "akshare.csv"
    path.write_bytes(text.encode(encoding))
    table = read_panel_csv(path)
    assert table["symbol"].tolist() == ["000001", "600000", "600000"]  # codes kept as text, zeros and all
    assert table["close"].tolist() == [12.0, 10.5, 10.7]


# --- malformed files: each names the file, the row, the symbol and the rule --------------------------

def test_a_repeated_date_and_symbol_names_both_rows(tmp_path):
    rows = ROWS + [("2018-01-03", "BBB", 20.5, 20.9, 20.0, 20.3, 400)]
    path = write(tmp_path, long_csv(rows=rows))
    with pytest.raises(DataError, match=rf"^{path}: row 6 \(2018-01-03, symbol BBB\): repeats row 4's date and "
                                        rf"symbol; each symbol may have one row per date$"):
        read_panel_csv(path)


def test_a_repeated_date_in_a_wide_file(tmp_path):
    path = write(tmp_path, "date,AAA,BBB\n2018-01-02,101,\n2018-01-03,102,20\n2018-01-03,,21\n")
    with pytest.raises(DataError, match=r"row 3 \(2018-01-03, symbol BBB\): repeats row 2's date and symbol"):
        read_panel_csv(path)


def test_an_unknown_column_is_refused(tmp_path):
    path = write(tmp_path, long_csv("date,symbol,open,high,low,close,xyz"))
    with pytest.raises(DataError) as error:
        read_panel_csv(path)
    assert str(error.value) == (
        f"{path}: unknown column 'xyz' (a long panel has date, symbol, close and optionally open, high, low, "
        f"volume; map yours with data.columns in params.yaml)"
    )


@pytest.mark.parametrize("text, message", [
    (close_only_csv().replace("20.2", "abc"), r"row 4 \(2018-01-03, symbol BBB\): close 'abc' is not a number"),
    (long_csv().replace(",400", ",many"), r"row 4 \(2018-01-03, symbol BBB\): volume 'many' is not a number"),
    ("date,AAA,BBB\n2018-01-02,101,\n2018-01-03,102,n/a\n",
     r"row 2 \(2018-01-03, symbol BBB\): close 'n/a' is not a number"),
])
def test_a_cell_that_is_not_a_number(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=rf"^{path}: {message}$"):
        read_panel_csv(path)


def test_open_high_low_come_all_three_or_none(tmp_path):
    text = long_csv("date,symbol,open,close", [(d, s, o, c) for d, s, o, _, _, c, _ in ROWS])
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=rf"^{path}: has open but no high, low: open, high and low come all three"):
        read_panel_csv(path)


def test_an_empty_symbol_is_refused(tmp_path):
    path = write(tmp_path, close_only_csv().replace("2018-01-03,BBB", "2018-01-03,  "))
    with pytest.raises(DataError, match=rf"^{path}: row 4 \(2018-01-03\): symbol is empty"):
        read_panel_csv(path)


@pytest.mark.parametrize("header, message", [
    ("date,AAA,", r"column 3 has no symbol in its header; a wide panel has a date column and one column"),
    ("date,AAA,AAA", r"symbol 'AAA' has two columns \(2 and 3\); give each symbol one column"),
])
def test_a_wide_symbol_header_that_is_empty_or_repeated(tmp_path, header, message):
    path = write(tmp_path, f"{header}\n2018-01-02,101,20\n")
    with pytest.raises(DataError, match=rf"^{path}: {message}"):
        read_panel_csv(path)


def test_a_single_series_file_is_not_read_as_a_wide_panel(tmp_path):
    path = write(tmp_path, "Date,Open,High,Low,Close\n2018-01-02,100,102,99,101\n")
    with pytest.raises(DataError, match=r"column 'Open' is a field \(open\), not a symbol, but the file has no "
                                        r"symbol column"):
        read_panel_csv(path)


def test_a_second_date_column_in_a_wide_file_is_not_a_symbol(tmp_path):
    path = write(tmp_path, "Date,Time,AAA\n2018-01-02,10:00,1\n")
    with pytest.raises(DataError, match=r"column 'Time' is a field \(date\), not a symbol"):
        read_panel_csv(path)


@pytest.mark.parametrize("old, new, message", [
    (",20.2,", ",0,", r"row 4 \(2018-01-03, symbol BBB\): close is not positive \(0\)"),
    (",20.2,", ",-3,", r"row 4 \(2018-01-03, symbol BBB\): close is not positive \(-3\)"),
    (",20.2,", ",,", r"row 4 \(2018-01-03, symbol BBB\): close is missing \(nan\)"),
    ("20.9,20.0,20.2", "20.1,20.0,20.2", r"row 4 \(2018-01-03, symbol BBB\): high 20.1 is below max\(open, close\) "
                                         r"20.5$"),
    ("20.9,20.0,20.2", "20.9,20.3,20.2", r"row 4 \(2018-01-03, symbol BBB\): low 20.3 is above min\(open, close\) "
                                         r"20.2$"),
    (",400", ",-1", r"row 4 \(2018-01-03, symbol BBB\): volume is missing, not finite, negative or too large"),
    ("2018-01-04", "2262-04-01", r"row 5 \(2262-04-01, symbol AAA\): date is in the future"),
])
def test_each_value_rule_names_file_row_date_and_symbol(tmp_path, old, new, message):
    path = write(tmp_path, long_csv().replace(old, new))
    with pytest.raises(DataError, match=rf"^{path}: {message}"):
        read_panel_csv(path)


def test_an_empty_file_has_no_rows(tmp_path):
    path = write(tmp_path, "date,symbol,close\n")
    with pytest.raises(DataError, match=rf"^{path}: no rows$"):
        read_panel_csv(path)


def test_a_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.csv: file not found"):
        read_panel_csv(tmp_path / "nope.csv")


# --- validating a table -----------------------------------------------------------------------------

@pytest.mark.parametrize("column, row, value, message", [
    ("symbol", 1, "AAA", r"row 2 \(2018-01-02, symbol AAA\): repeats row 1's date and symbol"),
    ("symbol", 0, "", r"row 1 \(2018-01-02\): symbol is empty"),
    ("close", 3, -1.0, r"row 4 \(2018-01-03, symbol BBB\): close is not positive"),
    ("high", 0, 100.5, r"row 1 \(2018-01-02, symbol AAA\): high 100.5 is below max\(open, close\) 101"),
])
def test_validate_panel_names_the_tables_row(column, row, value, message):
    table = expected().sort_values(["date", "symbol"]).reset_index(drop=True)  # rows in the order of ROWS
    table.loc[row, column] = value
    with pytest.raises(DataError, match=rf"^prices: {message}"):
        validate_panel(table, "prices")


def test_validate_panel_refuses_an_empty_table_and_passes_a_valid_one():
    assert validate_panel(expected(), "prices") is None
    with pytest.raises(DataError, match=r"^prices: no rows$"):
        validate_panel(expected().iloc[:0], "prices")


def test_the_hash_covers_symbols_and_values():
    table = expected()
    assert panel_hash(table) == panel_hash(table.copy())
    renamed = table.assign(symbol=table["symbol"].replace("BBB", "BBC"))
    changed = table.assign(close=table["close"] + np.where(table.index == 4, 1e-9, 0.0))
    assert len({panel_hash(table), panel_hash(renamed), panel_hash(changed)}) == 3


# --- the prepare stage's sources --------------------------------------------------------------------

def test_the_prepare_stage_reads_a_panel_csv_and_describes_it(tmp_path):
    path = write(tmp_path, close_only_csv())
    loaded = prepare.load_source(parse_params(tiny_params(data={"source": "panel_csv", "path": str(path)})).data)
    pd.testing.assert_frame_equal(loaded.table, expected(("close",)))
    assert loaded.name == str(path)
    assert loaded.metadata == {"source": "panel_csv", "path": str(path), "rows": 5, "first_date": "2018-01-02",
                               "last_date": "2018-01-04", "bars_sha256": panel_hash(loaded.table), "symbols": 2}


def test_the_prepare_stage_loads_the_sp500_panel(sp500, monkeypatch):
    monkeypatch.setattr("nextclose.panels.load_sp500", lambda: sp500)
    loaded = prepare.load_source(parse_params(tiny_params(data={"source": "sp500", "path": None})).data)
    assert loaded.name == "skfolio.datasets.load_sp500_dataset" and not loaded.reused
    assert loaded.metadata["symbols"] == 20 and loaded.metadata["rows"] == 20 * 8313
    assert (loaded.metadata["first_date"], loaded.metadata["last_date"]) == ("1990-01-02", "2022-12-28")

