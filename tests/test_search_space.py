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


def test_every_row_of_the_table_as_searched():
    tune = parse_params(tiny_params()).tune
    rows = {s.name: s for s in SEARCHED}
    assert [(s.section, s.key, s.type, s.log, s.stepped) for s in SEARCHED] == [
        ("model", "hidden_units", int, True, False),
        ("train", "learning_rate", float, True, False),
        ("train", "steps", int, False, True),
    ]
    assert rows["train.learning_rate"].bounds(tune) == {
        "low": tune.learning_rate_min, "high": tune.learning_rate_max, "log": True}
    assert rows["model.hidden_units"].range_params == ("hidden_units_min", "hidden_units_max")


def test_a_row_suggests_its_type_within_its_bounds():
    tune = parse_params(tiny_params()).tune
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(5):
        trial = study.ask()
        values = {s.name: s.suggest(trial, tune) for s in SEARCHED}
        assert type(values["model.hidden_units"]) is int and 2 <= values["model.hidden_units"] <= 8
        assert type(values["train.learning_rate"]) is float
        assert tune.learning_rate_min <= values["train.learning_rate"] <= tune.learning_rate_max
        assert values["train.steps"] in (20, 40, 60)
        distributions = trial.distributions
        assert distributions["model.hidden_units"] == optuna.distributions.IntDistribution(2, 8, log=True)
        assert distributions["train.steps"] == optuna.distributions.IntDistribution(20, 60, step=20)


@pytest.mark.parametrize("value", [True, False, "3", None, [1]])
def test_coerce_refuses_what_is_not_a_number(value):
    with pytest.raises(ValueError, match=rf"^where: expected a number, got {value!r}$".replace("[", r"\[")):
        SEARCHED[0].coerce(value, "where")


def test_coerce_gives_the_rows_type():
    hidden_units, learning_rate, _ = SEARCHED
    assert type(hidden_units.coerce(48.0)) is int and hidden_units.coerce(48.0) == 48
    assert type(learning_rate.coerce(1)) is float and learning_rate.coerce(1) == 1.0
