"""Several seeds in one run: members train together in one graph, each exactly as it would alone.

"Exactly" is bit for bit for the default model: a member of a K-member run has the same
weights, curve and stopping step as a one-member run with its seed, and a one-member run is
the single Keras network trained step for step (checked here against a plain Keras loop).
The tutorial's members agree with one-member runs, and its one-member run with the single
TutorialNetwork, to float32 rounding: its batch-of-one recurrence is a row-vector product,
which XLA rounds differently when batched over members (the replica's own tests allow for
rounding anyway).
"""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from nextclose import features, training
from nextclose import model as models
from nextclose.params import parse_params

from helpers import lstm_splits, predictable_bars, random_walk_bars, tiny_params


def tiny(**overrides):
    return parse_params(tiny_params(**overrides))


def train(parts, normalisation, params, seeds, seed):
    return training.train_lstm(parts["train"], parts["validation"], normalisation, params.model,
                               dataclasses.replace(params.train, seeds=seeds), seed=seed)


def member(weights, k):
    return [w[k] for w in weights]


def test_members_start_from_different_weights_and_forecast_differently():
    parts, normalisation = lstm_splits(predictable_bars())
    params = tiny(model={"hidden_units": 4}, train={"steps": 100, "learning_rate": 0.02, "eval_every": 25})
    ensemble = models.EnsembleLSTM.initialised(10, normalisation, params.model, [5, 6, 7], training.set_determinism)
    kernels = ensemble.lstm_weights[0][0].numpy()
    assert not np.array_equal(kernels[0], kernels[1]) and not np.array_equal(kernels[1], kernels[2])
    result = train(parts, normalisation, params, 3, seed=5)
    forecasts = np.asarray(result.model.member_outputs(parts["test"].inputs))
    assert forecasts.shape == (3, len(parts["test"].targets))
    assert not np.allclose(forecasts[0], forecasts[1]) and not np.allclose(forecasts[1], forecasts[2])


def test_member_i_starts_as_the_single_network_does_with_seed_base_plus_i():
    _, normalisation = lstm_splits(random_walk_bars(200))
    params = tiny(model={"hidden_units": 4, "layers": 2})
    ensemble = models.EnsembleLSTM.initialised(10, normalisation, params.model, [11, 12], training.set_determinism)
    for k, seed in enumerate([11, 12]):
        training.set_determinism(seed)
        single = models.build_lstm(10, normalisation, params.model).get_weights()
        for stacked, alone in zip(ensemble.get_weights(), single, strict=True):
            np.testing.assert_array_equal(stacked[k], alone)


def reference_single_training(parts, normalisation, params, seed, steps):
    """The single Keras network trained the plain way: one tf.function step per batch, the same
    batch order. What a one-member run must equal, bit for bit."""
    training.set_determinism(seed)
    network = models.build_lstm(10, normalisation, params.model)
    optimizer = keras.optimizers.Adam(learning_rate=params.train.learning_rate)
    optimizer.build(network.trainable_variables)
    scale = tf.constant(normalisation.target_scale, tf.float32)
    x, y = tf.constant(parts["train"].inputs), tf.constant(parts["train"].targets)
    schedule = training.batch_schedule(len(parts["train"].targets), params.train.batch_size, steps, seed)

    @tf.function(jit_compile=True)
    def step(index):
        with tf.GradientTape() as tape:
            predicted = network(tf.gather(x, index), training=True)
            loss = tf.reduce_mean(tf.square((predicted - tf.gather(y, index)) / scale))
        optimizer.apply(tape.gradient(loss, network.trainable_variables), network.trainable_variables)

    for index in schedule:
        step(tf.constant(index))
    return network.get_weights()


def test_a_one_member_run_is_the_single_network_trained_bit_for_bit():
    parts, normalisation = lstm_splits(predictable_bars())
    params = tiny(model={"hidden_units": 4, "layers": 2},
                  train={"steps": 30, "eval_every": 30, "steps_per_call": 10, "learning_rate": 0.01})
    expected = reference_single_training(parts, normalisation, params, seed=9, steps=30)
    result = train(parts, normalisation, params, 1, seed=9)
    assert result.steps_run == 30 and result.best_step == 30  # the kept weights are the last
    for stacked, alone in zip(result.model.get_weights(), expected, strict=True):
        np.testing.assert_array_equal(stacked[0], alone)


def test_each_member_equals_a_one_member_run_with_its_seed_bit_for_bit():
    """Early stopping per member included: the members stop at different steps."""
    parts, normalisation = lstm_splits(predictable_bars())
    params = tiny(model={"hidden_units": 8}, train={"steps": 400, "learning_rate": 0.02, "eval_every": 25,
                                                   "steps_per_call": 25, "patience": 2})
    together = train(parts, normalisation, params, 3, seed=3)
    assert len(set(together.member_stop_steps)) > 1  # else "per member" would not be tested
    for k in range(3):
        alone = train(parts, normalisation, params, 1, seed=3 + k)
        assert together.member_best_steps[k] == alone.best_step
        assert together.member_best_losses[k] == alone.best_loss
        assert together.member_stop_steps[k] == alone.steps_run
        curve = [p.member_val_losses[k] for p in together.history if p.member_val_losses[k] is not None]
        assert curve == [p.member_val_losses[0] for p in alone.history]
        for stacked, single in zip(together.model.get_weights(), alone.model.get_weights(), strict=True):
            np.testing.assert_array_equal(stacked[k], single[0])
    assert together.steps_run == max(together.member_stop_steps)  # ends when the last member stops


def test_members_with_dropout_equal_one_member_runs_too():
    parts, normalisation = lstm_splits(predictable_bars())
    settings = {"steps": 40, "eval_every": 40, "learning_rate": 0.01}
    params = tiny(model={"hidden_units": 4, "dropout": 0.3}, train=settings)
    together = train(parts, normalisation, params, 2, seed=1)
    alone = train(parts, normalisation, params, 1, seed=2)
    assert alone.best_step == 40  # trained weights kept, so the masks mattered
    for stacked, single in zip(together.model.get_weights(), alone.model.get_weights(), strict=True):
        np.testing.assert_array_equal(stacked[1], single[0])
    # dropout acts in training: a run without it ends elsewhere
    plain = train(parts, normalisation, tiny(model={"hidden_units": 4}, train=settings), 1, 2)
    assert plain.best_step == 40
    assert not np.array_equal(plain.model.get_weights()[0], alone.model.get_weights()[0])


def test_a_member_drops_units_with_the_masks_of_its_own_stream():
    """A member's dropout masks are drawn from ``default_rng([its seed, 1])``, one ``[batch, units]``
    mask per step in step order, the stream carried on across calls: a plain loop, one step per
    call, given those masks ends on the same weights."""
    parts, normalisation = lstm_splits(predictable_bars())
    params = tiny(model={"hidden_units": 4, "dropout": 0.3},
                  train={"steps": 20, "eval_every": 20, "steps_per_call": 10, "learning_rate": 0.01})
    result = train(parts, normalisation, params, 1, seed=2)
    assert result.best_step == 20  # the trained weights are kept, so the masks mattered

    def plain_loop(stream):
        network = models.EnsembleLSTM.initialised(10, normalisation, params.model, [2], training.set_determinism)
        optimizer = keras.optimizers.Adam(learning_rate=params.train.learning_rate)
        optimizer.build(network.trainable_variables)
        scale = tf.constant(normalisation.target_scale, tf.float32)
        x, y = tf.constant(parts["train"].inputs), tf.constant(parts["train"].targets)
        schedule = training.batch_schedule(len(parts["train"].targets), params.train.batch_size, 20, 2)
        masks = training._dropout_masks([stream], 20, schedule.shape[1], 4, 0.3)

        @tf.function(jit_compile=True)
        def step(index, mask):
            with tf.GradientTape() as tape:
                predicted = network.member_outputs(tf.gather(x, index), mask)[0]
                loss = tf.reduce_mean(tf.square((predicted - tf.gather(y, index)) / scale))
            optimizer.apply(tape.gradient(loss, network.trainable_variables), network.trainable_variables)

        for index, mask in zip(schedule, masks):
            step(tf.constant(index), tf.constant(mask))
        return network.get_weights()

    # equal to float32 rounding (not bit for bit: the graphs differ)
    for trained, expected in zip(result.model.get_weights(), plain_loop(np.random.default_rng([2, 1])),
                                 strict=True):
        np.testing.assert_allclose(trained, expected, rtol=1e-5, atol=1e-6)
    # and the comparison tells streams apart: another stream's masks train other weights
    other = plain_loop(np.random.default_rng([2, 2]))
    assert not np.allclose(result.model.get_weights()[0], other[0], rtol=1e-3, atol=1e-4)


def test_the_served_forecast_is_the_members_mean_and_the_losses_say_so():
    parts, normalisation = lstm_splits(predictable_bars())
    params = tiny(model={"hidden_units": 8}, train={"steps": 200, "learning_rate": 0.02, "eval_every": 25,
                                                   "steps_per_call": 25, "patience": 2})
    result = train(parts, normalisation, params, 3, seed=0)
    x, y = parts["validation"].inputs, parts["validation"].targets
    members = np.asarray(result.model.member_outputs(x))
    np.testing.assert_allclose(np.asarray(result.model(x)), members.mean(axis=0), rtol=1e-6, atol=1e-9)

    def loss(predicted):
        return float(np.mean(((predicted - y) / normalisation.target_scale) ** 2))

    # best_loss is the served ensemble's validation loss; each member's best is its own
    assert result.best_loss == pytest.approx(loss(members.mean(axis=0)), rel=1e-5)
    for k in range(3):
        assert result.member_best_losses[k] == pytest.approx(loss(members[k]), rel=1e-5)
    # the served loss at the end is the last point's; the curve's val_loss is the standing ensemble's
    assert result.best_loss == result.history[-1].served_val_loss
    assert result.history[0].val_loss == result.history[0].served_val_loss  # step 0: nothing kept yet
    # at the end the last member to stop stands at weights past its best: the standing ensemble is not the served
    assert result.history[-1].val_loss != result.history[-1].served_val_loss


def test_a_stopped_member_leaves_the_curve():
    parts, normalisation = lstm_splits(random_walk_bars(200))
    params = tiny(train={"steps": 400, "learning_rate": 0.05, "eval_every": 20, "patience": 2})
    result = train(parts, normalisation, params, 3, seed=0)
    for point in result.history:
        for k, stop in enumerate(result.member_stop_steps):
            assert (point.member_val_losses[k] is None) == (point.step > stop)
            assert (point.member_losses[k] is None) == (point.step > stop)
    # step 0 has every member's training loss: each starts at no change, which scores 1.0
    assert result.history[0].member_losses == pytest.approx((1.0, 1.0, 1.0), rel=1e-5)
    assert result.stopped_early and result.steps_run == max(result.member_stop_steps) < 400


def test_a_points_training_loss_is_the_mean_over_the_steps_since_the_last_point():
    """After one step, the first point's training loss is that step's: an untrained member predicts
    no change, so its loss is its first batch's mean squared target over the scale squared."""
    parts, normalisation = lstm_splits(random_walk_bars(200))
    params = tiny(train={"steps": 1, "eval_every": 1})
    result = train(parts, normalisation, params, 2, seed=5)
    y = parts["train"].targets.astype(np.float64)
    expected = [np.mean(np.square(y[training.batch_schedule(len(y), params.train.batch_size, 1, seed)[0]]
                                  / normalisation.target_scale)) for seed in (5, 6)]
    assert [p.step for p in result.history] == [0, 1]
    assert result.history[1].member_losses == pytest.approx(expected, rel=1e-5)
    assert result.history[1].loss == pytest.approx(np.mean(expected), rel=1e-5)


def test_ensemble_training_is_bit_identical_across_runs():
    parts, normalisation = lstm_splits(random_walk_bars(200))
    params = tiny(model={"hidden_units": 4})
    a, b = train(parts, normalisation, params, 3, seed=7), train(parts, normalisation, params, 3, seed=7)
    assert a.history == b.history
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_the_ensemble_saves_and_loads_with_its_members(tmp_path):
    parts, normalisation = lstm_splits(random_walk_bars(200))
    result = train(parts, normalisation, tiny(model={"hidden_units": 4}), 2, seed=0)
    result.model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    x = parts["test"].inputs
    np.testing.assert_array_equal(np.asarray(loaded.member_outputs(x)), np.asarray(result.model.member_outputs(x)))
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(result.model(x)))


def test_tutorial_members_match_one_member_runs_to_rounding():
    x, y = features.tutorial_sequence(random_walk_bars(41))
    params = tiny(model={"kind": "tutorial", "hidden_units": 4},
                  train={"steps": 12, "eval_every": 5, "learning_rate": 0.05})
    together = training.train_tutorial(x, y, params.model, dataclasses.replace(params.train, seeds=2), seed=4)
    assert together.trained_inputs.shape == (2, *x.shape)
    assert not np.allclose(together.trained_inputs[0], together.trained_inputs[1])
    for k in range(2):
        alone = training.train_tutorial(x, y, params.model, dataclasses.replace(params.train, seeds=1), seed=4 + k)
        assert together.member_best_losses[k] == pytest.approx(alone.best_loss, rel=1e-5)
        np.testing.assert_allclose(together.trained_inputs[k], alone.trained_inputs[0], rtol=1e-5, atol=1e-6)
        for stacked, single in zip(together.model.get_weights(), alone.model.get_weights(), strict=True):
            # Adam divides by the gradient's own size, so a rounding difference in a near-zero
            # component moves a weight by up to a step's worth: close, not equal
            np.testing.assert_allclose(stacked[k], single[0], rtol=1e-3, atol=1e-3)
    # the cost and last prediction on the curve are the members' means
    point = together.history[-1]
    assert point.loss == pytest.approx(np.mean(point.member_losses))


def test_the_tutorial_ensemble_forward_is_the_tutorial_network():
    training.set_determinism(3)
    single = models.TutorialNetwork(n_step=20, hidden_units=4)
    ensemble = models.TutorialEnsemble.initialised(20, 4, [3, 8], training.set_determinism)
    x, _ = features.tutorial_sequence(random_walk_bars(21))
    x = (x / 100)[None].astype(np.float32)
    each = np.stack([x, x])  # each member its own copy of the year, as training feeds them

    # named functions: autograph can mix up two lambdas of the same signature in one scope
    @tf.function(jit_compile=True)
    def single_forward(v):
        return single(v)

    @tf.function(jit_compile=True)
    def member_forwards(v):
        return ensemble.member_outputs(v)

    expected, members = np.asarray(single_forward(x)), np.asarray(member_forwards(each))
    assert members.shape == (2, *expected.shape)
    np.testing.assert_allclose(members[0], expected, rtol=1e-6, atol=1e-7)
    assert not np.allclose(members[1], expected, rtol=1e-3)
    # one year for all members (serving) is the same forward to float32 rounding
    np.testing.assert_allclose(np.asarray(member_forwards(x)), members, rtol=1e-5, atol=1e-6)


def test_seeds_is_checked():
    from nextclose.params import ParamsError

    with pytest.raises(ParamsError, match="train.seeds"):
        parse_params(tiny_params(train={"seeds": 0}))
    with pytest.raises(ParamsError, match="train.seeds"):
        parse_params(tiny_params(base={"seed": 2**32 - 1}, train={"seeds": 2}))


def test_train_model_trains_the_kind_it_is_given_on_the_data_it_is_given():
    """The one entry point of train and tune: the lstm on the windows, the tutorial on its sequence."""
    parts, normalisation = lstm_splits(predictable_bars())
    x, y = features.tutorial_sequence(random_walk_bars(31))
    data = features.TrainingData(parts["train"], parts["validation"], normalisation, x, y)
    params = tiny(model={"hidden_units": 4}, train={"steps": 40, "eval_every": 20, "learning_rate": 0.01})
    seen = []
    result = training.train_model(data, params.model, params.train, 3, on_point=seen.append)
    expected = train(parts, normalisation, params, params.train.seeds, seed=3)
    assert result.history == expected.history == seen and result.member_seeds == (3, 4)
    for a, b in zip(result.model.get_weights(), expected.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    tutorial = tiny(model={"kind": "tutorial", "hidden_units": 4}, train={"steps": 6, "eval_every": 5})
    seen = []
    result = training.train_model(data, tutorial.model, tutorial.train, 3, on_point=seen.append)
    expected = training.train_tutorial(x, y, tutorial.model, tutorial.train, 3)
    assert result.history == expected.history == seen and result.trained_inputs.shape == (2, *x.shape)


def test_the_tutorial_result_says_what_ran():
    x, y = features.tutorial_sequence(random_walk_bars(31))
    params = tiny(model={"kind": "tutorial", "hidden_units": 4}, train={"steps": 12, "eval_every": 5})
    seen = []
    result = training.train_tutorial(x, y, params.model, params.train, seed=7, on_point=seen.append)
    assert seen == result.history and [p.step for p in seen] == [0, 5, 10, 11]
    assert result.best_step == 11 and result.steps_run == 12 and result.stopped_early is False
    assert result.member_seeds == (7, 8) and result.member_best_steps == (11, 11)
    assert result.member_stop_steps == (12, 12) and result.member_best_losses == seen[-1].member_losses
    assert result.best_loss == seen[-1].loss == pytest.approx(np.mean(seen[-1].member_losses))
    assert result.trained_targets.shape == (2, *y.shape) and result.trained_targets.dtype == np.float32


def test_dropout_masks_keep_each_unit_with_the_keep_rate_and_scale_it_back():
    streams = [np.random.default_rng([5, 1]), np.random.default_rng([6, 1])]
    masks = training._dropout_masks(streams, 50, 16, 8, 0.25)
    assert masks.shape == (50, 2, 16, 8) and masks.dtype == np.float32
    assert set(np.unique(masks)) == {0.0, np.float32(1 / 0.75)}  # dropped, or kept and scaled by 1 / keep
    assert abs((masks > 0).mean() - 0.75) < 0.02
    assert not np.array_equal(masks[:, 0], masks[:, 1])  # each member its own stream
    alone = training._dropout_masks([np.random.default_rng([6, 1])], 50, 16, 8, 0.25)
    np.testing.assert_array_equal(alone[:, 0], masks[:, 1])  # and independent of the others
    assert training.member_seeds(10, 3) == [10, 11, 12]


def generator_whose_next_draw_is(u: float) -> np.random.Generator:
    """NumPy's PCG64 set to a state whose next ``random()`` is exactly ``u`` (a multiple of 2**-53).

    PCG64 steps its 128-bit state (``state * MULTIPLIER + inc``) and then outputs the high and
    low halves XORed, rotated right by the top six bits; ``random()`` is the output's top 53 bits
    times 2**-53. The stepped state ``u * 2**64`` has a zero high half, so it outputs itself."""
    multiplier, modulus = 0x2360ED051FC65DA44385DF649FCCF645, 1 << 128
    stepped = int(u * 2**53) << 11
    bits = np.random.PCG64()
    bits.state = {"bit_generator": "PCG64", "state": {"state": (stepped - 1) * pow(multiplier, -1, modulus) % modulus,
                                                       "inc": 1}, "has_uint32": 0, "uinteger": 0}
    return np.random.Generator(bits)


def test_a_draw_of_exactly_the_keep_rate_drops_the_unit():
    """Kept when the uniform draw is below keep: on NumPy's grid of multiples of 2**-53, exactly
    a share keep of the draws."""
    assert generator_whose_next_draw_is(0.75).random() == 0.75  # the helper does what it says
    masks = training._dropout_masks([generator_whose_next_draw_is(0.75)], 1, 1, 1, 0.25)
    assert masks.ravel().tolist() == [0.0]
    below = np.nextafter(0.75, 0.0)  # the draw just below: 0.75 - 2**-53
    masks = training._dropout_masks([generator_whose_next_draw_is(below)], 1, 1, 1, 0.25)
    assert masks.ravel().tolist() == [np.float32(1 / 0.75)]
