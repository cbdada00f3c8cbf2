"""Reading CSV exports and refusing bad bars: every format and every rule."""

import numpy as np
import pandas as pd
import pytest

from nextclose.bars import DataError, bars_hash, load_msft, read_csv_bars, select_dates, validate_bars

from helpers import random_walk_bars

ROWS = [
    ("2018-01-02", 100.0, 102.0, 99.0, 101.0, 1000),
    ("2018-01-03", 101.0, 103.0, 100.5, 102.5, 1100),
    ("2018-01-04", 102.5, 102.9, 101.0, 101.5, 900),
]


def expected_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": pd.to_datetime([r[0] for r in ROWS]),
            "open": [r[1] for r in ROWS],
            "high": [r[2] for r in ROWS],
            "low": [r[3] for r in ROWS],
            "close": [r[4] for r in ROWS],
            "volume": [float(r[5]) for r in ROWS],
        }
    )


def write(tmp_path, text, name="bars.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def check_same(table):
    pd.testing.assert_frame_equal(table[list(expected_table().columns)], expected_table(), check_dtype=False)


def test_english_headers_any_order_and_case_with_extra_columns(tmp_path):
    lines = ["Close,VOLUME,Date,Adj Close,low,High,Open"]
    lines += [f"{c},{v},{d},{c * 0.9},{lo},{h},{o}" for d, o, h, lo, c, v in ROWS]
    check_same(read_csv_bars(write(tmp_path, "\n".join(lines))))


def test_date_index_column_without_header(tmp_path):
    frame = expected_table().set_index("date")
    path = tmp_path / "indexed.csv"
    frame.to_csv(path)  # header row starts with "date"
    check_same(read_csv_bars(path))
    frame.index.name = None
    frame.to_csv(path)  # header row starts with an empty field
    check_same(read_csv_bars(path))


def test_joinquant_get_price_frame(tmp_path):
    # get_price('000300.XSHG', ...) returns a date-indexed frame: open, close, high, low, volume, money
    frame = pd.DataFrame(
        {
            "open": [r[1] for r in ROWS], "close": [r[4] for r in ROWS],
            "high": [r[2] for r in ROWS], "low": [r[3] for r in ROWS],
            "volume": [float(r[5]) for r in ROWS], "money": [1e9, 1.1e9, 0.9e9],
        },
        index=pd.to_datetime([r[0] for r in ROWS]),
    )
    path = tmp_path / "jq.csv"
    frame.to_csv(path)
    check_same(read_csv_bars(path))


def test_akshare_chinese_headers(tmp_path):
    lines = ["日期,开盘,收盘,最高,最低,成交量,成交额"]
    lines += [f"{d},{o},{c},{h},{lo},{v},123.0" for d, o, h, lo, c, v in ROWS]
    check_same(read_csv_bars(write(tmp_path, "\n".join(lines))))


@pytest.mark.parametrize("dates", [
    ["2018/1/2", "2018/1/3", "2018/1/4"],
    ["20180102", "20180103", "20180104"],
    ["2018-01-02 00:00:00", "2018-01-03 00:00:00", "2018-01-04 00:00:00"],
])
def test_date_spellings(tmp_path, dates):
    lines = ["date,open,high,low,close,volume"]
    lines += [f"{d},{o},{h},{lo},{c},{v}" for d, (_, o, h, lo, c, v) in zip(dates, ROWS)]
    check_same(read_csv_bars(write(tmp_path, "\n".join(lines))))


def test_volume_is_optional(tmp_path):
    lines = ["date,open,high,low,close"] + [f"{d},{o},{h},{lo},{c}" for d, o, h, lo, c, _ in ROWS]
    table = read_csv_bars(write(tmp_path, "\n".join(lines)))
    assert "volume" not in table
    validate_bars(table, "x.csv")


def test_columns_mapping_overrides_detection(tmp_path):
    lines = ["Day,First,Top,Bottom,Last,Shares"]
    lines += [f"{d},{o},{h},{lo},{c},{v}" for d, o, h, lo, c, v in ROWS]
    mapping = {"date": "Day", "open": "First", "high": "Top", "low": "Bottom", "close": "Last",
               "volume": "Shares"}
    check_same(read_csv_bars(write(tmp_path, "\n".join(lines)), mapping))


def test_missing_required_column_names_file_and_column(tmp_path):
    lines = ["date,open,high,low"] + [f"{d},{o},{h},{lo}" for d, o, h, lo, c, v in ROWS]
    path = write(tmp_path, "\n".join(lines))
    with pytest.raises(DataError, match=rf"{path}: missing required column 'close'.*data.columns.close"):
        read_csv_bars(path)


def test_unparseable_date_names_the_row(tmp_path):
    lines = ["date,open,high,low,close"] + [f"{d},{o},{h},{lo},{c}" for d, o, h, lo, c, _ in ROWS]
    lines[2] = lines[2].replace("2018-01-03", "03.01.2018")
    path = write(tmp_path, "\n".join(lines))
    with pytest.raises(DataError, match=rf"{path}: row 2: unparseable date '03.01.2018'"):
        read_csv_bars(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope.csv: file not found"):
        read_csv_bars(tmp_path / "nope.csv")


def bad(table, **changes):
    """``table`` with cells changed: ``column=(row, value)``."""
    table = table.copy()
    for column, (row, value) in changes.items():
        table.loc[row, column] = value
    return table


@pytest.mark.parametrize("changes, message", [
    ({"date": (1, pd.Timestamp("2018-01-02"))}, r"row 2 \(2018-01-02\): date repeats the previous row's date"),
    ({"date": (2, pd.Timestamp("2018-01-01"))}, r"row 3 \(2018-01-01\): date comes after 2018-01-03"),
    ({"close": (1, np.nan)}, r"2018-01-03: close is missing"),
    ({"open": (1, np.inf)}, r"2018-01-03: open is not finite"),
    ({"high": (2, 0.0)}, r"2018-01-04: high is not positive"),
    ({"low": (0, -1.0)}, r"2018-01-02: low is not positive"),
    ({"low": (1, 101.5)}, r"2018-01-03: low 101.5 is above min\(open, close\) 101$"),
    ({"high": (2, 102.0)}, r"2018-01-04: high 102 is below max\(open, close\) 102.5"),
    ({"volume": (0, -5.0)}, r"2018-01-02: volume is missing, not finite, negative or too large"),
])
def test_each_rule_names_source_row_and_rule(changes, message):
    with pytest.raises(DataError, match=rf"prices.csv: {message}"):
        validate_bars(bad(expected_table(), **changes), "prices.csv")


def test_valid_bars_pass():
    assert validate_bars(expected_table(), "prices.csv") is None
    assert validate_bars(random_walk_bars(300), "walk") is None


@pytest.mark.parametrize("field, edge, over", [
    ("low", lambda t: np.minimum(t["open"], t["close"]), 1e-9),     # low may touch min(open, close)
    ("high", lambda t: np.maximum(t["open"], t["close"]), -1e-9),   # high may touch max(open, close)
    ("volume", lambda t: t["volume"] * 0.0, -1e-9),                 # no trades is a volume
])
def test_each_rule_holds_exactly_at_its_edge(field, edge, over):
    """On the edge the bars pass; a hair beyond it they are refused, so the rules are <= and >=."""
    table = expected_table()
    table[field] = edge(table)
    assert validate_bars(table, "edge") is None
    table.loc[1, field] = table.loc[1, field] + over * max(1.0, abs(table.loc[1, field]))
    with pytest.raises(DataError, match=rf"edge: 2018-01-03: {field}"):
        validate_bars(table, "edge")


def test_empty_date_range_is_refused():
    with pytest.raises(DataError, match=r"prices.csv: no rows between data.start 2019-01-01"):
        select_dates(expected_table(), pd.Timestamp("2019-01-01").date(), None, "prices.csv")


def test_select_dates_is_inclusive():
    table = select_dates(expected_table(), pd.Timestamp("2018-01-03").date(),
                         pd.Timestamp("2018-01-04").date(), "x")
    assert list(table["date"].dt.day) == [3, 4]


def test_msft_ships_offline_and_is_valid():
    table = load_msft()
    validate_bars(table, "msft")
    assert table["date"].iloc[0] == pd.Timestamp("1986-03-13")
    assert table["date"].iloc[-1] == pd.Timestamp("2017-11-10")


def test_hash_changes_with_any_value():
    table = expected_table()
    changed = bad(table, close=(2, 101.50001))
    assert bars_hash(table) == bars_hash(table.copy())
    assert bars_hash(table) != bars_hash(changed)


# --- hostile input ----------------------------------------------------------------------------

CSV = "Date,Open,High,Low,Close,Volume\n2018-01-02,100,102,99,101,1000\n2018-01-03,101,103,100.5,{close},1100\n"


def test_a_close_that_is_not_a_number_is_named_as_such(tmp_path):
    with pytest.raises(DataError, match=r"bars.csv: row 2 \(2018-01-03\): close 'abc' is not a number"):
        read_csv_bars(write(tmp_path, CSV.format(close="abc")))


def test_an_empty_cell_is_missing_not_garbled(tmp_path):
    table = read_csv_bars(write(tmp_path, CSV.format(close="")))
    with pytest.raises(DataError, match=r"2018-01-03: close is missing"):
        validate_bars(table, "bars.csv")


@pytest.mark.parametrize("close, message", [
    ("1e308", r"close is too large \(the model's float32 inputs hold at most 1e\+15\)"),
    ("inf", r"close is not finite"),
])
def test_prices_the_model_cannot_hold_are_refused(tmp_path, close, message):
    table = read_csv_bars(write(tmp_path, CSV.format(close=close)))
    with pytest.raises(DataError, match=rf"bars.csv: 2018-01-03: {message}"):
        validate_bars(table, "bars.csv")


def test_a_bar_from_the_future_is_refused(tmp_path):
    text = CSV.format(close="102").replace("2018-01-03", "2262-04-01")
    with pytest.raises(DataError, match=r"row 2 \(2262-04-01\): date is in the future"):
        validate_bars(read_csv_bars(write(tmp_path, text)), "bars.csv")


@pytest.mark.parametrize("encoding", ["utf-16", "gbk", "utf-8-sig"])
def test_utf16_and_gbk_exports_are_read(tmp_path, encoding):
    text = "日期,开盘,收盘,最高,最低,成交量\n2018-01-02,100,101,102,99,1000\n2018-01-03,101,102.5,103,100.5,1100\n"
    path = tmp_path / "akshare.csv"
    path.write_bytes(text.encode(encoding))
    table = read_csv_bars(path)
    assert table["close"].tolist() == [101.0, 102.5] and table["volume"].tolist() == [1000.0, 1100.0]


def test_an_undecodable_file_names_the_encodings_tried(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(b"Date,Open\n\x81\xff\xfe\x00\x80\x80")
    with pytest.raises(DataError, match=r"binary.csv: not text in utf-8-sig or gb18030"):
        read_csv_bars(path)


def test_a_directory_is_not_a_csv_file(tmp_path):
    with pytest.raises(DataError, match=r"is a directory, not a CSV file \(check data.path\)"):
        read_csv_bars(tmp_path)
