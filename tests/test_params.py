import pytest
import yaml

from nextclose.params import KIND_DEFAULTS, ParamsError, load_params, parse_params

from helpers import REPO, repo_params, tiny_params, write_params


def test_repo_params_load_with_kind_defaults():
    params = load_params(REPO / "params.yaml")
    assert params.data.source == "msft"
    assert params.model.kind == "lstm"
    assert params.model.hidden_units == KIND_DEFAULTS["lstm"]["hidden_units"]
    assert params.train.steps == KIND_DEFAULTS["lstm"]["steps"]


def test_tutorial_kind_defaults_follow_the_tutorial():
    raw = repo_params()
    raw["model"]["kind"] = "tutorial"
    params = parse_params(raw)
    assert (params.model.hidden_units, params.train.learning_rate, params.train.steps) == (128, 0.1, 30000)


def test_explicit_values_win_over_kind_defaults():
    raw = repo_params()
    raw["model"].update(kind="tutorial", hidden_units=8)
    assert parse_params(raw).model.hidden_units == 8


def test_view_is_frozen():
    params = parse_params(repo_params())
    with pytest.raises(AttributeError):
        params.model.hidden_units = 3


@pytest.mark.parametrize(
    "section, key, value, message",
    [
        ("model", "hidden_units", "big", "model.hidden_units: expected an integer"),
        ("model", "hidden_units", 2.5, "model.hidden_units: expected an integer"),
        ("train", "learning_rate", "fast", "train.learning_rate: expected a number"),
        ("features", "volume", "yes", "features.volume: expected true or false"),
        ("data", "source", "yahoo", "data.source: 'yahoo' is not one of"),
        ("model", "kind", "gru", "model.kind: 'gru' is not one of"),
        ("data", "start", "2018-13-01", "data.start: '2018-13-01' is not an ISO date"),
        # Python reads these as dates too; NumPy would read 20200103 as the year 20200103
        ("data", "end", "20200103", "data.end: '20200103' is not an ISO date (YYYY-MM-DD)"),
        ("data", "start", "2020-W01-5", "data.start: '2020-W01-5' is not an ISO date (YYYY-MM-DD)"),
        ("train", "seeds", 0, "train.seeds: must lie in 1 .. 64"),
        ("split", "test_fraction", 1.5, "split.test_fraction: must lie strictly between 0 and 1"),
        ("features", "window", 1, "features.window: must be at least 2"),
        ("train", "steps", 0, "train.steps: must be at least 1"),
        ("data", "columns", {"closing": "Close"}, "data.columns.closing: unknown field"),
    ],
)
def test_bad_values_name_file_and_key(tmp_path, section, key, value, message):
    raw = tiny_params()
    raw[section][key] = value
    path = write_params(tmp_path, raw)
    with pytest.raises(ParamsError) as error:
        load_params(path)
    assert str(path) in str(error.value)
    assert message in str(error.value)


def test_unknown_key_is_refused(tmp_path):
    raw = tiny_params()
    raw["train"]["epochs"] = 3
    path = write_params(tmp_path, raw)
    with pytest.raises(ParamsError, match=r"params.yaml: train.epochs: unknown key"):
        load_params(path)


def test_unknown_section_is_refused(tmp_path):
    raw = tiny_params()
    raw["optimiser"] = {"name": "sgd"}
    with pytest.raises(ParamsError, match="optimiser: unknown section"):
        load_params(write_params(tmp_path, raw))


def test_missing_key_is_refused(tmp_path):
    raw = tiny_params()
    del raw["base"]["seed"]
    with pytest.raises(ParamsError, match=r"params.yaml: base.seed: missing key"):
        load_params(write_params(tmp_path, raw))


def test_csv_source_needs_a_path(tmp_path):
    raw = tiny_params(data={"source": "csv", "path": None})
    with pytest.raises(ParamsError, match="data.path: required when data.source is csv"):
        load_params(write_params(tmp_path, raw))


def test_split_dates_come_in_pairs(tmp_path):
    raw = tiny_params(split={"validation_start": "2017-01-02"})
    with pytest.raises(ParamsError, match="split.test_start"):
        load_params(write_params(tmp_path, raw))


def test_unquoted_yaml_dates_are_accepted(tmp_path):
    path = tmp_path / "params.yaml"
    text = yaml.safe_dump(tiny_params(), sort_keys=False).replace("'2016-01-01'", "2016-01-01")
    path.write_text(text)
    assert load_params(path).data.start == "2016-01-01"


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ParamsError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: [unclosed")
    with pytest.raises(ParamsError, match="bad.yaml: not valid YAML"):
        load_params(bad)


def test_the_old_kind_name_seed_is_refused_with_the_new_name(tmp_path):
    raw = repo_params()
    raw["model"]["kind"] = "seed"
    with pytest.raises(ParamsError, match=r"params.yaml: model.kind: 'seed' was renamed 'tutorial'"):
        parse_params(raw)


@pytest.mark.parametrize("section, key, value, message", [
    ("train", "learning_rate", float("nan"), "train.learning_rate: expected a finite number"),
    ("train", "learning_rate", float("inf"), "train.learning_rate: expected a finite number"),
    ("model", "dropout", float("-inf"), "model.dropout: expected a finite number"),
    ("base", "seed", -1, r"base.seed: must lie in 0 .. 4294967295"),
    ("base", "seed", 2**32, r"base.seed: must lie in 0 .. 4294967295"),
    ("tune", "seed", 2**40, r"tune.seed: must lie in 0 .. 4294967295"),
    ("data", "end", "2262-12-31", r"data.end: 2262-12-31 is outside 1900-01-01 .. 2200-12-31"),
    ("split", "validation_start", "1800-01-01", r"split.validation_start: 1800-01-01 is outside"),
])
def test_values_no_stage_could_use_are_refused(tmp_path, section, key, value, message):
    raw = tiny_params(**{section: {key: value}})
    if section == "split":
        raw["split"]["test_start"] = "2017-01-02"
    with pytest.raises(ParamsError, match=rf"params.yaml: {message}"):
        load_params(write_params(tmp_path, raw))


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path):
    text = (REPO / "params.yaml").read_text().replace("  seed: 42 ", "  seed: 42\n  seed: 7 ", 1)
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError, match=r"params.yaml: line 5: key 'seed' is given twice \(first on line 4\)"):
        load_params(tmp_path / "params.yaml")


def test_panel_csv_source_needs_a_path(tmp_path):
    raw = tiny_params(data={"source": "panel_csv", "path": None})
    with pytest.raises(ParamsError, match="data.path: required when data.source is csv or panel_csv"):
        load_params(write_params(tmp_path, raw))


def test_panel_sources_and_a_symbol_column_are_accepted(tmp_path):
    shipped = load_params(write_params(tmp_path, tiny_params(data={"source": "sp500", "path": None})))
    assert shipped.data.source == "sp500"
    raw = tiny_params(data={"source": "panel_csv", "path": "stocks.csv", "columns": {"symbol": "Ticker"}})
    panel = load_params(write_params(tmp_path, raw))
    assert (panel.data.source, panel.data.path, panel.data.columns) == ("panel_csv", "stocks.csv",
                                                                        {"symbol": "Ticker"})
