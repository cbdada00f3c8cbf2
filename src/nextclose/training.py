"""Training loops for both networks: no file I/O, no tracking, no printing.

Both loops run ``train.steps_per_call`` optimizer steps inside one XLA-compiled
``tf.function`` call (a ``tf.while_loop``), so Python is entered once per chunk,
not once per step. Progress is reported through a callback, which is how the
stage programs print, log to MLflow, and how the tuner prunes.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf

from nextclose import model as models
from nextclose.errors import UserError
from nextclose.features import Normalisation, TrainingData, Windows
from nextclose.params import ModelParams, TrainParams


@dataclasses.dataclass(frozen=True)
class CurvePoint:
    """One point of the learning curve: optimizer steps done and the losses then."""

    step: int
    loss: float
    val_loss: Optional[float] = None
    last_prediction: Optional[float] = None  # the tutorial network's results[-1][-1]


@dataclasses.dataclass(frozen=True)
class TrainResult:
    model: keras.Model
    history: list[CurvePoint]
    best_step: int
    best_loss: float  # val_loss for the lstm (its best, whose weights are kept); the cost for tutorial
    steps_run: int
    stopped_early: bool
    trained_inputs: Optional[np.ndarray] = None  # tutorial only: x after training (the tutorial trains it)
    trained_targets: Optional[np.ndarray] = None  # tutorial only: y after training


class TrainingDiverged(UserError, ValueError):
    """The loss became NaN or infinite; the message says what to change."""


# Called at each point of the learning curve; raising (e.g. optuna.TrialPruned) stops training.
OnPoint = Callable[[CurvePoint], None]


def set_determinism(seed: int) -> None:
    """Same params, same data, same bits on the CPU."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def batch_schedule(n_samples: int, batch_size: int, steps: int, seed: int) -> np.ndarray:
    """Sample indices of every batch, ``[steps, batch]``: a fresh shuffle each epoch.

    Drawn up front from ``seed`` so the order is fixed and the compiled loop
    only gathers. The last incomplete batch of an epoch is dropped so every
    batch has the same shape.
    """
    batch = min(batch_size, n_samples)
    per_epoch = n_samples // batch
    rng = np.random.default_rng(seed)
    epochs = -(-steps // per_epoch)
    order = [rng.permutation(n_samples)[: per_epoch * batch] for _ in range(epochs)]
    return np.concatenate(order).reshape(-1, batch)[:steps].astype(np.int32)


def _chunks(total: int, every: int, per_call: int, first_boundary: int) -> list[int]:
    """Split ``total`` steps into calls that end exactly on each multiple of ``every``
    (offset by ``first_boundary``) and at the end."""
    boundaries = sorted(set(list(range(first_boundary, total, every)) + [total]))
    sizes, done = [], 0
    for boundary in boundaries:
        while done < boundary:
            size = min(per_call, boundary - done)
            sizes.append(size)
            done += size
    return sizes


def train_lstm(
    train: Windows,
    validation: Windows,
    normalisation: Normalisation,
    model_params: ModelParams,
    train_params: TrainParams,
    seed: int,
    on_point: Optional[OnPoint] = None,
) -> TrainResult:
    """Train the default model; keep the weights of the best validation loss.

    Losses are the mean squared log-return error divided by the squared
    training target scale, so always predicting "no change" scores 1.0 on the
    training split.
    """
    set_determinism(seed)
    window = train.inputs.shape[1]
    network = models.build_lstm(window, normalisation, model_params)
    optimizer = keras.optimizers.Adam(learning_rate=train_params.learning_rate)
    optimizer.build(network.trainable_variables)
    scale = tf.constant(normalisation.target_scale, tf.float32)
    x_train = tf.constant(train.inputs)
    y_train = tf.constant(train.targets)
    x_validation = tf.constant(validation.inputs)
    y_validation = tf.constant(validation.targets)
    schedule = batch_schedule(len(train.targets), train_params.batch_size, train_params.steps, seed)

    @tf.function(jit_compile=True, reduce_retracing=True)
    def run_steps(batches):
        def body(i, total):
            index = batches[i]
            with tf.GradientTape() as tape:
                predicted = network(tf.gather(x_train, index), training=True)
                loss = tf.reduce_mean(tf.square((predicted - tf.gather(y_train, index)) / scale))
            gradients = tape.gradient(loss, network.trainable_variables)
            optimizer.apply(gradients, network.trainable_variables)
            return i + 1, total + loss

        count = tf.shape(batches)[0]
        _, total = tf.while_loop(lambda i, _total: i < count, body, (tf.constant(0), 0.0))
        return total / tf.cast(count, tf.float32)

    @tf.function(jit_compile=True)
    def validation_loss():
        predicted = network(x_validation, training=False)
        return tf.reduce_mean(tf.square((predicted - y_validation) / scale))

    @tf.function(jit_compile=True)
    def training_loss():
        predicted = network(x_train, training=False)
        return tf.reduce_mean(tf.square((predicted - y_train) / scale))

    # Step 0 is the untrained model, i.e. the persistence forecast: training must beat it
    # on validation, or the model stays at "no change".
    start_val_loss = float(validation_loss())
    start = CurvePoint(0, float(training_loss()), start_val_loss)
    history: list[CurvePoint] = [start]
    best = (start_val_loss, 0, network.get_weights())
    if on_point is not None:
        on_point(start)
    done, evaluations_since_best, stopped_early = 0, 0, False
    loss_sum, loss_steps = 0.0, 0
    for size in _chunks(train_params.steps, train_params.eval_every, train_params.steps_per_call,
                        train_params.eval_every):
        mean_loss = float(run_steps(schedule[done : done + size]))
        done += size
        if not np.isfinite(mean_loss):
            raise TrainingDiverged(
                f"the training loss became {mean_loss} by step {done}: lower train.learning_rate"
            )
        loss_sum, loss_steps = loss_sum + mean_loss * size, loss_steps + size
        if done % train_params.eval_every and done != train_params.steps:
            continue
        val_loss = float(validation_loss())
        point = CurvePoint(done, loss_sum / loss_steps, val_loss)
        loss_sum, loss_steps = 0.0, 0
        history.append(point)
        if val_loss < best[0]:
            best = (val_loss, done, network.get_weights())
            evaluations_since_best = 0
        else:
            evaluations_since_best += 1
        if on_point is not None:
            on_point(point)
        if train_params.patience is not None and evaluations_since_best >= train_params.patience:
            stopped_early = done < train_params.steps
            break
    network.set_weights(best[2])
    return TrainResult(network, history, best[1], float(best[0]), done, stopped_early)


def train_tutorial(
    x: np.ndarray,
    y: np.ndarray,
    model_params: ModelParams,
    train_params: TrainParams,
    seed: int,
    on_point: Optional[OnPoint] = None,
) -> TrainResult:
    """Train the tutorial's network exactly as the tutorial does.

    Full batch, Adam (TF1's epsilon) on every trainable variable. In the
    tutorial ``x`` and ``y`` are ``tf.Variable``s, which are trainable, so its
    optimizer updates the data too; the replica does the same and returns
    them. A history row is recorded after update ``i`` for every ``i`` that is
    a multiple of ``train.eval_every`` (the tutorial printed after update ``i``
    when ``i % 1000 == 0``) and after the last update.
    """
    set_determinism(seed)
    n_step = len(y)
    network = models.TutorialNetwork(n_step, model_params.hidden_units)
    inputs = tf.Variable(x[None], dtype=tf.float32, name="x")  # one sequence: a batch of 1
    targets = tf.Variable(y, dtype=tf.float32, name="y")
    variables = network.trainable_variables + [inputs, targets]
    optimizer = keras.optimizers.Adam(
        learning_rate=train_params.learning_rate, epsilon=models.TF1_ADAM_EPSILON
    )
    optimizer.build(variables)

    @tf.function(jit_compile=True)
    def run_steps(count):
        def body(i):
            with tf.GradientTape() as tape:
                cost = models.tutorial_cost(network(inputs), targets)
            optimizer.apply(tape.gradient(cost, variables), variables)
            return (i + 1,)

        tf.while_loop(lambda i: i < count, body, (tf.constant(0),))
        return tf.constant(0)

    @tf.function(jit_compile=True)
    def cost_and_last_prediction():
        results = network(inputs)
        return models.tutorial_cost(results, targets), results[-1][-1]

    history: list[CurvePoint] = []
    done = 0
    # Boundaries after updates 1, 1 + every, 1 + 2 every, ...: the tutorial's i = 0, every, ...
    for size in _chunks(train_params.steps, train_params.eval_every, train_params.steps_per_call, 1):
        run_steps(tf.constant(size))
        done += size
        if (done - 1) % train_params.eval_every and done != train_params.steps:
            continue
        cost, last = cost_and_last_prediction()
        if not np.isfinite(float(cost)):
            # Gradients through the year-long recurrence can overflow float32; the tutorial's
            # TF1 code does the same for some initialisations (see bench/).
            raise TrainingDiverged(
                f"the tutorial network's cost became {float(cost)} by update {done - 1}: its gradients "
                f"through the {n_step}-step recurrence overflowed, as the tutorial's own code does "
                f"for some starting weights; try another base.seed or a lower train.learning_rate"
            )
        point = CurvePoint(done - 1, float(cost), None, float(last))
        history.append(point)
        if on_point is not None:
            on_point(point)
    final = history[-1]
    return TrainResult(
        network, history, final.step, final.loss, done, False, inputs.numpy()[0], targets.numpy()
    )


def train_model(
    data: TrainingData,
    model_params: ModelParams,
    train_params: TrainParams,
    seed: int,
    on_point: Optional[OnPoint] = None,
) -> TrainResult:
    """Train ``model_params.kind`` on the prepared data: the one entry point of train and tune."""
    if model_params.kind == "tutorial":
        return train_tutorial(data.tutorial_x, data.tutorial_y, model_params, train_params, seed, on_point)
    return train_lstm(
        data.train, data.validation, data.normalisation, model_params, train_params, seed, on_point
    )
