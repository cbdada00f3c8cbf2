"""The searched settings come from one table: every place that names them follows it."""

import optuna
import pytest

from nextclose import layout, params, search_space, study
from nextclose.params import parse_params
from nextclose.search_space import SEARCHED, Searched

from helpers import tiny_params


def test_the_table_names_the_three_searched_settings():
    assert [s.name for s in SEARCHED] == ["model.hidden_units", "train.learning_rate", "train.steps"]


@pytest.fixture
def two_rows(monkeypatch):
    """The table without train.steps, in every module that reads it."""
    shorter = tuple(s for s in SEARCHED if s.name != "train.steps")
    for module in (search_space, study, layout, params):
        monkeypatch.setattr(module, "SEARCHED", shorter)
    return shorter


def test_every_consumer_follows_the_table(two_rows):
    tiny = parse_params(tiny_params())
    names = {s.name for s in two_rows}
    assert set(study.search_space(tiny.tune)) == names
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    values = study.suggest_params(trial, tiny.tune)
    assert set(values) == names == set(trial.params)
    # train.steps is no longer searched: it keeps its params value and becomes a fixed setting
    changed = study.with_trial_values(tiny, values)
    assert changed.train.steps == tiny.train.steps and changed.model.hidden_units == values["model.hidden_units"]
    assert "train.steps" in study.fixed_settings(tiny)
    document = layout.best_params_document("s", {"value": 0.5, "params": values})
    assert document == {"study_name": "s", "best_value": 0.5, "model": {"hidden_units": values["model.hidden_units"]},
                        "train": {"learning_rate": values["train.learning_rate"]}}


def test_a_row_draws_its_type_and_scale_from_the_tune_section():
    tune = parse_params(tiny_params()).tune
    rows = {s.name: s for s in SEARCHED}
    assert rows["model.hidden_units"].bounds(tune) == {"low": 2, "high": 8, "log": True}
    assert rows["train.steps"].bounds(tune) == {"low": 20, "high": 60, "step": 20}
    assert rows["train.steps"].range_params == ("steps_min", "steps_max", "steps_step")
    assert Searched("train", "learning_rate", float).coerce(1) == 1.0 and isinstance(
        rows["model.hidden_units"].coerce(48.0), int)
    with pytest.raises(ValueError, match="train.steps: expected a number"):
        rows["train.steps"].coerce("many")


def test_range_rules_come_from_the_table():
    with pytest.raises(params.ParamsError, match=r"tune.learning_rate_max: must not be below tune.learning_rate_min"):
        parse_params(tiny_params(tune={"learning_rate_min": 0.1, "learning_rate_max": 0.01}))
    with pytest.raises(params.ParamsError, match=r"tune.steps_step: must be at least 1 and divide"):
        parse_params(tiny_params(tune={"steps_step": 7}))
