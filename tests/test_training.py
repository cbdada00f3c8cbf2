"""Both networks: they learn, they are exact replicas where promised, they repeat bit for bit."""

import dataclasses
import math
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from nextclose import features, training
from nextclose import model as models
from nextclose.params import parse_params

from helpers import lstm_splits, predictable_bars, random_walk_bars, tiny_params


def tiny(**overrides):
    """Tiny params with one member, the single network these tests are about, unless a test
    asks for more (tests/test_ensemble.py is about several)."""
    overrides["train"] = {"seeds": 1, **overrides.get("train", {})}
    return parse_params(tiny_params(**overrides))


def test_untrained_lstm_predicts_no_change():
    parts, normalisation = lstm_splits(random_walk_bars(200))
    network = models.build_lstm(10, normalisation, tiny().model)
    assert np.all(np.asarray(network(parts["test"].inputs)) == 0.0)


def test_lstm_loss_falls_and_beats_persistence_on_a_learnable_series():
    parts, normalisation = lstm_splits(predictable_bars())
    params = tiny(model={"hidden_units": 8}, train={"steps": 300, "learning_rate": 0.01,
                                                   "eval_every": 50, "steps_per_call": 25})
    result = training.train_lstm(parts["train"], parts["validation"], normalisation,
                                 params.model, params.train, seed=3)
    first, best = result.history[0], min(result.history, key=lambda e: e.val_loss)
    assert first.step == 0 and first.loss == pytest.approx(1.0, rel=1e-5)  # persistence
    assert result.history[-1].loss < 0.7 * first.loss
    assert best.val_loss < 0.7 * first.val_loss
    assert result.best_loss == best.val_loss and result.best_step == best.step
    # the returned model carries the best weights
    x, y = parts["validation"].inputs, parts["validation"].targets
    predicted = np.asarray(result.model(x))
    kept = np.mean(((predicted - y) / normalisation.target_scale) ** 2)
    assert kept == pytest.approx(result.best_loss, rel=1e-4)


def validation_loss_of(network, validation, normalisation) -> float:
    predicted = np.asarray(network(validation.inputs), dtype=np.float64)
    return float(np.mean(((predicted - validation.targets) / normalisation.target_scale) ** 2))


def test_early_stopping_keeps_persistence_when_nothing_beats_it():
    parts, normalisation = lstm_splits(random_walk_bars(200))
    params = tiny(train={"steps": 400, "learning_rate": 0.05, "eval_every": 20, "patience": 2})
    result = training.train_lstm(parts["train"], parts["validation"], normalisation,
                                 params.model, params.train, seed=0)
    # A random walk has nothing to learn: no evaluation beats step 0, persistence.
    assert [p.step for p in result.history] == [0, 20, 40]
    assert all(p.val_loss > result.history[0].val_loss for p in result.history[1:])
    assert result.stopped_early and result.steps_run == 40 and result.best_step == 0
    # ...so the model handed back is the untrained one: it forecasts "no change" exactly.
    assert np.all(np.asarray(result.model(parts["validation"].inputs)) == 0.0)
    assert result.best_loss == result.history[0].val_loss


def test_the_returned_model_has_the_best_weights_not_the_last():
    parts, normalisation = lstm_splits(predictable_bars())
    params = tiny(model={"hidden_units": 8}, train={"steps": 600, "learning_rate": 0.05, "eval_every": 25,
                                                   "steps_per_call": 25, "patience": 3})
    result = training.train_lstm(parts["train"], parts["validation"], normalisation,
                                 params.model, params.train, seed=3)
    best = min(result.history, key=lambda p: p.val_loss)
    assert result.best_step == best.step > 0 and result.best_loss == best.val_loss
    assert result.history[-1].val_loss > best.val_loss  # training went on past the best point
    kept = validation_loss_of(result.model, parts["validation"], normalisation)
    assert kept == pytest.approx(best.val_loss, rel=1e-5)
    assert kept != pytest.approx(result.history[-1].val_loss, rel=1e-5)


@pytest.mark.parametrize("patience", [1, 3])
def test_patience_stops_exactly_that_many_evaluations_after_the_best(patience):
    parts, normalisation = lstm_splits(random_walk_bars(200))
    params = tiny(train={"steps": 1000, "learning_rate": 0.05, "eval_every": 10, "patience": patience})
    result = training.train_lstm(parts["train"], parts["validation"], normalisation,
                                 params.model, params.train, seed=0)
    assert result.steps_run == result.best_step + patience * 10
    assert [p.step for p in result.history][-patience - 1] == result.best_step
    assert result.stopped_early


def test_no_patience_runs_every_step():
    parts, normalisation = lstm_splits(random_walk_bars(200))
    params = tiny(train={"steps": 60, "learning_rate": 0.05, "eval_every": 20, "patience": None})
    result = training.train_lstm(parts["train"], parts["validation"], normalisation,
                                 params.model, params.train, seed=0)
    assert result.steps_run == 60 and not result.stopped_early
    assert [p.step for p in result.history] == [0, 20, 40, 60]


def test_steps_per_call_changes_speed_only():
    parts, normalisation = lstm_splits(random_walk_bars(200))

    def run(steps_per_call):
        params = tiny(train={"steps": 60, "eval_every": 20, "steps_per_call": steps_per_call})
        result = training.train_lstm(parts["train"], parts["validation"], normalisation,
                                     params.model, params.train, seed=4)
        return result

    one, many = run(1), run(20)
    assert [p.step for p in one.history] == [p.step for p in many.history] == [0, 20, 40, 60]
    assert [p.val_loss for p in one.history] == [p.val_loss for p in many.history]
    # training losses are means of per-step losses summed in other groupings: equal to rounding
    assert [p.loss for p in one.history] == pytest.approx([p.loss for p in many.history], rel=1e-6)
    for a, b in zip(one.model.get_weights(), many.model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_stacked_layers_and_dropout_are_built_and_start_at_no_change():
    parts, normalisation = lstm_splits(random_walk_bars(200))
    params = tiny(model={"layers": 2, "dropout": 0.3}, train={"steps": 20, "eval_every": 10})
    network = models.build_lstm(10, normalisation, params.model)
    lstms = [layer for layer in network.layers if isinstance(layer, keras.layers.LSTM)]
    dropouts = [layer for layer in network.layers if isinstance(layer, keras.layers.Dropout)]
    assert [layer.return_sequences for layer in lstms] == [True, False]
    assert [layer.rate for layer in dropouts] == [0.3]
    assert np.all(np.asarray(network(parts["test"].inputs)) == 0.0)
    result = training.train_lstm(parts["train"], parts["validation"], normalisation,
                                 params.model, params.train, seed=0)
    # the trained ensemble stacks the same two layers: the second reads the first's units
    assert [tuple(kernel.shape) for kernel, _, _ in result.model.lstm_weights] == [(1, 5, 16), (1, 4, 16)]
    assert result.model.dropout == 0.3
    assert all(np.isfinite(p.loss) and np.isfinite(p.val_loss) for p in result.history)
    assert build_count(tiny().model) == 1


def build_count(model_params) -> int:
    """LSTM layers the default params build: one, and no dropout layer."""
    parts, normalisation = lstm_splits(random_walk_bars(60))
    network = models.build_lstm(10, normalisation, model_params)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in network.layers)
    return len([layer for layer in network.layers if isinstance(layer, keras.layers.LSTM)])


def test_lstm_training_is_bit_identical_across_runs():
    parts, normalisation = lstm_splits(random_walk_bars(200))
    params = tiny()

    def run(normalisation):
        result = training.train_lstm(parts["train"], parts["validation"], normalisation,
                                     params.model, params.train, seed=7)
        return result.history, [w.copy() for w in result.model.get_weights()]

    # The second run's target scale is a NumPy float (a float all the same): the losses are
    # float32 whatever type of float the normalisation holds.
    as_numpy = dataclasses.replace(normalisation, target_scale=np.float64(normalisation.target_scale))
    (history_a, weights_a), (history_b, weights_b) = run(normalisation), run(as_numpy)
    assert history_a == history_b
    for a, b in zip(weights_a, weights_b):
        np.testing.assert_array_equal(a, b)


def test_batch_schedule_is_epochwise_and_seeded():
    schedule = training.batch_schedule(10, 4, 7, seed=1)
    assert schedule.shape == (7, 4)
    first_epoch = schedule[:2].ravel()
    assert len(set(first_epoch)) == 8  # no repeats within an epoch
    np.testing.assert_array_equal(schedule, training.batch_schedule(10, 4, 7, seed=1))
    assert not np.array_equal(schedule, training.batch_schedule(10, 4, 7, seed=2))


def test_tutorial_network_shapes_and_initialisation():
    keras.utils.set_random_seed(0)
    network = models.TutorialNetwork(n_step=50, hidden_units=16)
    assert np.all(network.input_kernel.numpy() == 0.25)
    assert network.input_kernel.shape == (4, 1)
    assert network.input_bias.shape == (50, 1) and not network.input_bias.numpy().any()
    assert network.output_kernel.shape == (16, 50)
    assert not network.output_bias.numpy().any() and network.output_bias.shape == (50,)
    assert network.lstm_kernel.shape == (1 + 16, 64)
    limit = math.sqrt(6 / (17 + 64))
    assert np.abs(network.lstm_kernel.numpy()).max() <= limit
    big = models.TutorialNetwork(n_step=400, hidden_units=128).output_kernel.numpy()
    assert abs(big.mean()) < 0.01 and abs(big.std() - 1.0) < 0.01  # N(0, 1)
    x = np.ones((1, 50, 4), np.float32)
    assert network(x).shape == (1, 50)
    assert network(np.ones((3, 50, 4), np.float32)).shape == (3, 50)


def reference_tutorial_forward(network, x):
    """The tutorial's graph written out in NumPy, TF1 LSTMCell gate order i, j, f, o."""
    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    daily = x @ network.input_kernel.numpy() + network.input_bias.numpy()
    kernel, bias = network.lstm_kernel.numpy(), network.lstm_bias.numpy()
    units = network.hidden_units
    c, h = np.zeros((1, units)), np.zeros((1, units))
    for t in range(len(x)):
        gates = np.concatenate([daily[t : t + 1], h], axis=1) @ kernel + bias
        i, j, f, o = np.split(gates, 4, axis=1)
        c = sigmoid(f + 1.0) * c + sigmoid(i) * np.tanh(j)
        h = sigmoid(o) * np.tanh(c)
    return h @ network.output_kernel.numpy() + network.output_bias.numpy()


def test_tutorial_forward_matches_the_tutorials_graph():
    keras.utils.set_random_seed(1)
    network = models.TutorialNetwork(n_step=30, hidden_units=8)
    bars = random_walk_bars(31)
    x, y = features.tutorial_sequence(bars)
    x = x / 100  # keep the gates out of saturation so the comparison means something
    expected = reference_tutorial_forward(network, x.astype(np.float64))
    np.testing.assert_allclose(np.asarray(network(x[None])), expected, rtol=1e-4, atol=1e-5)


def test_tutorial_cost_broadcasts_like_the_tutorial():
    predictions = tf.constant([[1.0, 2.0, 3.0]])
    y = tf.constant([[1.0], [2.0], [4.0]])
    # every prediction against every target: ((1-1)^2+(2-1)^2+(3-1)^2 + ... ) / 9
    expected = np.mean([(p - t) ** 2 for p in (1, 2, 3) for t in (1, 2, 4)])
    assert float(models.tutorial_cost(predictions, y)) == pytest.approx(expected)


def test_tutorial_training_reports_like_the_tutorial_and_trains_the_data():
    bars = random_walk_bars(41)
    x, y = features.tutorial_sequence(bars)
    params = tiny(model={"kind": "tutorial", "hidden_units": 4},
                  train={"steps": 25, "eval_every": 10, "learning_rate": 0.1, "steps_per_call": 7})
    result = training.train_tutorial(x, y, params.model, params.train, seed=0)
    assert [e.step for e in result.history] == [0, 10, 20, 24]  # after update i, i % 10 == 0, and the last
    assert result.steps_run == 25
    # at step 0 the cost is about mean(y^2): the predictions are still tiny next to the prices
    assert result.history[0].loss == pytest.approx(float(np.mean(y.astype(np.float64) ** 2)), rel=0.2)
    assert result.history[-1].loss < result.history[0].loss
    # the tutorial's x and y are tf.Variables, so Adam moves them too
    assert not np.array_equal(result.trained_inputs, x)
    assert not np.array_equal(result.trained_targets, y)
    assert result.trained_targets.shape == (1, *y.shape)  # one copy per member


def test_tutorial_cost_at_step_zero_on_a_known_series():
    """One Adam step from a known start: the cost equals the tutorial's formula."""
    bars = random_walk_bars(21)
    x, y = features.tutorial_sequence(bars)
    params = tiny(model={"kind": "tutorial", "hidden_units": 4}, train={"steps": 1, "eval_every": 1})
    result = training.train_tutorial(x, y, params.model, params.train, seed=5)
    trained_prediction = np.asarray(result.model(result.trained_inputs))  # the one member on its own x
    expected = np.mean((trained_prediction - result.trained_targets[0]) ** 2)
    assert result.history[0].loss == pytest.approx(expected, rel=1e-5)
    assert result.history[0].last_prediction == pytest.approx(trained_prediction[-1][-1], rel=1e-5)


def test_tutorial_training_is_bit_identical_across_runs():
    x, y = features.tutorial_sequence(random_walk_bars(31))
    params = tiny(model={"kind": "tutorial", "hidden_units": 4}, train={"steps": 12, "eval_every": 5})
    a = training.train_tutorial(x, y, params.model, params.train, seed=2)
    # the same numbers in float64: the tutorial's x and y are float32 variables whatever they are given as
    b = training.train_tutorial(x.astype(np.float64), y.astype(np.float64), params.model, params.train, seed=2)
    assert a.history == b.history
    assert b.trained_inputs.dtype == b.trained_targets.dtype == np.float32
    np.testing.assert_array_equal(a.trained_inputs, b.trained_inputs)
    np.testing.assert_array_equal(a.trained_targets, b.trained_targets)
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.parametrize("kind", ["lstm", "tutorial"])
def test_save_and_load_round_trip_gives_identical_predictions(tmp_path, kind):
    if kind == "lstm":
        parts, normalisation = lstm_splits(random_walk_bars(200))
        params = tiny()
        network = training.train_lstm(parts["train"], parts["validation"], normalisation,
                                      params.model, params.train, seed=0).model
        x = parts["test"].inputs
    else:
        x, y = features.tutorial_sequence(random_walk_bars(31))
        params = tiny(model={"kind": "tutorial", "hidden_units": 4}, train={"steps": 5})
        network = training.train_tutorial(x, y, params.model, params.train, seed=0).model
        x = x[None]
    path = tmp_path / "model.keras"
    network.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(network(x)))


def test_chunks_end_on_every_boundary():
    assert training._chunks(10, 4, 3, 4) == [3, 1, 3, 1, 2]
    assert sum(training._chunks(1000, 50, 50, 1)) == 1000


def test_a_diverging_lstm_stops_with_a_clear_error():
    parts, normalisation = lstm_splits(random_walk_bars(200))
    params = tiny(train={"learning_rate": 1e36, "steps": 40, "seeds": 2})
    with pytest.raises(training.TrainingDiverged, match="lower train.learning_rate") as raised:
        training.train_lstm(parts["train"], parts["validation"], normalisation,
                            params.model, params.train, seed=5)
    # both members diverge in the first call (10 steps): it names the first, by number and seed
    said = re.search(r"member 1 of 2 \(seed 5\) became (nan|inf) by step 10:", str(raised.value))
    assert said is not None, str(raised.value)


def test_the_tutorials_network_can_overflow_and_says_so():
    """MSFT's 2017 bars with base.seed 42: the replica's gradients through the 216-day
    recurrence overflow within ten updates, as the tutorial's TF1 code does for some starts.
    Two members from base.seed 41: the second (seed 42) overflows, the first does not."""
    import datetime as dt

    from nextclose.bars import load_msft, select_dates

    year = select_dates(load_msft(), dt.date(2017, 1, 1), None, "msft")
    x, y = features.tutorial_sequence(year)
    params = tiny(model={"kind": "tutorial", "hidden_units": 128},
                  train={"learning_rate": 0.1, "steps": 40, "eval_every": 10, "seeds": 2})
    with pytest.raises(training.TrainingDiverged, match="try another base.seed") as raised:
        training.train_tutorial(x, y, params.model, params.train, seed=41)
    # it names the member that overflowed and the update after which the cost was checked (0, 10, ...)
    said = re.search(r"member 2 of 2, seed 42\) became (nan|inf) by update (\d+):", str(raised.value))
    assert said is not None and int(said.group(2)) % 10 == 0, str(raised.value)
