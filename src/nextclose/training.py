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
from nextclose.features import Normalisation, PanelWindows, TrainingData, Windows
from nextclose.params import ModelParams, TrainParams


@dataclasses.dataclass(frozen=True)
class CurvePoint:
    """One point of the learning curve: optimizer steps done and the losses then."""

    step: int
    loss: float
    val_loss: Optional[float] = None  # the ensemble's as it stands (a stopped member at its kept weights)
    last_prediction: Optional[float] = None  # the tutorial network's results[-1][-1] (the ensemble's)
    # Per member, in seed order; None once a member has stopped.
    member_losses: tuple[Optional[float], ...] = ()
    member_val_losses: tuple[Optional[float], ...] = ()
    # The ensemble of every member's best weights so far: what would be served if training ended here.
    served_val_loss: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class TrainResult:
    model: keras.Model  # the ensemble: EnsembleLSTM or TutorialEnsemble
    history: list[CurvePoint]
    best_step: int  # lstm: the last step at which a member's kept weights changed
    best_loss: float  # lstm: the ensemble's val_loss with each member's best weights; tutorial: the cost
    steps_run: int
    stopped_early: bool  # every member stopped before train.steps
    trained_inputs: Optional[np.ndarray] = None  # tutorial only: each member's x after training [members, ...]
    trained_targets: Optional[np.ndarray] = None  # tutorial only: each member's y after training
    member_seeds: tuple[int, ...] = ()
    member_best_steps: tuple[int, ...] = ()
    member_best_losses: tuple[float, ...] = ()  # lstm: each member's best val_loss; tutorial: final cost
    member_stop_steps: tuple[int, ...] = ()


class TrainingDiverged(UserError, ValueError):
    """The loss became NaN or infinite; the message says what to change."""


# Called at each point of the learning curve; raising (e.g. optuna.TrialPruned) stops training.
OnPoint = Callable[[CurvePoint], None]


# Samples per forward pass over a panel's whole split when it has more: bounds the memory
# of the states every member keeps for every day of every window.
FORWARD_CHUNK = 2048


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


def member_seeds(seed: int, members: int) -> list[int]:
    """Member ``i`` draws its starting weights and its batch order from ``base.seed + i``."""
    return [seed + index for index in range(members)]


def _dropout_masks(generators: list[np.random.Generator], steps: int, batch: int, units: int,
                   rate: float) -> np.ndarray:
    """Inverted-dropout masks ``[steps, members, batch, units]``, each member from its own stream,
    so a member's masks do not depend on how many members train beside it."""
    keep = 1.0 - rate
    return np.stack([(g.random((steps, batch, units)) < keep) / keep for g in generators], axis=1).astype(np.float32)


def train_lstm(
    train: Windows,
    validation: Windows,
    normalisation: Normalisation,
    model_params: ModelParams,
    train_params: TrainParams,
    seed: int,
    on_point: Optional[OnPoint] = None,
) -> TrainResult:
    """Train ``train.seeds`` members of the default model together; each keeps the weights of
    its own best validation loss and stops after its own ``patience``.

    Losses are the mean squared log-return error divided by the squared training target
    scale, so always predicting "no change" scores 1.0 on the training split. A point's
    ``val_loss`` is the ensemble's as it stands, its ``served_val_loss`` that of the ensemble
    that would be served if training ended there: the mean forecast of every member's best
    weights so far. The result's ``best_loss`` is the last ``served_val_loss``.
    """
    seeds = member_seeds(seed, train_params.seeds)
    members = len(seeds)
    window = train.inputs.shape[1]
    network = models.EnsembleLSTM.initialised(window, normalisation, model_params, seeds, set_determinism)
    set_determinism(seed)
    optimizer = keras.optimizers.Adam(learning_rate=train_params.learning_rate)
    optimizer.build(network.trainable_variables)
    scale = tf.constant(normalisation.target_scale, tf.float32)
    x_train = tf.constant(train.inputs)
    y_train = tf.constant(train.targets)
    x_validation = tf.constant(validation.inputs)
    y_validation = tf.constant(validation.targets)
    schedule = np.stack([
        batch_schedule(len(train.targets), train_params.batch_size, train_params.steps, member_seed)
        for member_seed in seeds
    ], axis=1)  # [steps, members, batch]
    dropout = model_params.dropout
    mask_streams = [np.random.default_rng([member_seed, 1]) for member_seed in seeds]

    def member_losses_of(predicted, targets):
        """Each member's loss as its own reduction, as a one-member run computes it: a reduction
        over a [members, n] axis may round differently from one over [n]."""
        targets = [targets[k] for k in range(members)] if targets.shape.rank == 2 else [targets] * members
        return tf.stack([tf.reduce_mean(tf.square((predicted[k] - targets[k]) / scale)) for k in range(members)])

    @tf.function(jit_compile=True, reduce_retracing=True)
    def run_steps(batches, masks):
        def body(i, total):
            index = batches[i]
            with tf.GradientTape() as tape:
                predicted = network.member_outputs(tf.gather(x_train, index), masks[i] if dropout > 0 else None)
                member_losses = member_losses_of(predicted, tf.gather(y_train, index))
                # Members share no weight, so the gradient of the sum is each member's own gradient.
                loss = tf.reduce_sum(member_losses)
            gradients = tape.gradient(loss, network.trainable_variables)
            optimizer.apply(gradients, network.trainable_variables)
            return i + 1, total + member_losses

        count = tf.shape(batches)[0]
        _, total = tf.while_loop(lambda i, _total: i < count, body, (tf.constant(0), tf.zeros(members)))
        return total / tf.cast(count, tf.float32)

    @tf.function(jit_compile=True)
    def whole_validation_forecasts():
        predicted = network.member_outputs(x_validation)
        return predicted, member_losses_of(predicted, y_validation)

    @tf.function(jit_compile=True, reduce_retracing=True)
    def forward(x):
        return network.member_outputs(x)

    def chunked_forward(x):
        """Every member's outputs over ``x`` a slice of :data:`FORWARD_CHUNK` samples at a time:
        a panel's tens of thousands of windows at once would hold every day's state of every
        member in memory (gigabytes)."""
        return tf.concat([forward(x[start:start + FORWARD_CHUNK])
                          for start in range(0, int(x.shape[0]), FORWARD_CHUNK)], axis=1)

    panel = isinstance(train, PanelWindows)

    def validation_forecasts():
        if not panel or len(validation.targets) <= FORWARD_CHUNK:  # one series: one call, as it always was
            return whole_validation_forecasts()
        predicted = chunked_forward(x_validation)
        return predicted, member_losses_of(predicted, y_validation)

    @tf.function(jit_compile=True)
    def mean_forecast_loss(member_forecasts):
        predicted = tf.reduce_mean(member_forecasts, axis=0)
        return tf.reduce_mean(tf.square((predicted - y_validation) / scale))

    def ensemble_loss(member_forecasts: np.ndarray, member_losses: np.ndarray) -> float:
        # One member is its own ensemble: take its loss as computed beside its forward pass,
        # the figure early stopping compares (a separate graph may round the last bit otherwise).
        return float(member_losses[0]) if members == 1 else float(mean_forecast_loss(member_forecasts))

    @tf.function(jit_compile=True)
    def whole_training_loss():
        return member_losses_of(network.member_outputs(x_train), y_train)

    def training_loss():
        if not panel or len(train.targets) <= FORWARD_CHUNK:
            return whole_training_loss()
        return member_losses_of(chunked_forward(x_train), y_train)

    # Step 0 is the untrained model, i.e. the persistence forecast: each member must beat it
    # on validation, or it stays at "no change".
    forecasts, member_val = validation_forecasts()
    best_forecasts = forecasts.numpy()
    best_member_loss = member_val.numpy().astype(np.float64)
    best_member_step = [0] * members
    best_weights = network.get_weights()
    start_train = training_loss().numpy().astype(np.float64)
    start_loss = ensemble_loss(best_forecasts, best_member_loss)
    start = CurvePoint(0, float(np.mean(start_train)), start_loss, member_losses=tuple(map(float, start_train)),
                       member_val_losses=tuple(map(float, best_member_loss)), served_val_loss=start_loss)
    history: list[CurvePoint] = [start]
    if on_point is not None:
        on_point(start)
    active = np.ones(members, dtype=bool)
    evaluations_since_best = np.zeros(members, dtype=int)
    stop_step = [train_params.steps] * members
    done, stopped_early = 0, False
    loss_sum, loss_steps = np.zeros(members), 0
    for size in _chunks(train_params.steps, train_params.eval_every, train_params.steps_per_call,
                        train_params.eval_every):
        batches = schedule[done : done + size]
        masks = (_dropout_masks(mask_streams, size, schedule.shape[2], model_params.hidden_units, dropout)
                 if dropout > 0 else np.zeros((size, 0), np.float32))
        member_mean_losses = run_steps(batches, masks).numpy().astype(np.float64)
        done += size
        diverged = ~np.isfinite(member_mean_losses) & active
        if diverged.any():
            raise TrainingDiverged(
                f"the training loss of member {int(np.argmax(diverged)) + 1} of {members} (seed "
                f"{seeds[int(np.argmax(diverged))]}) became {member_mean_losses[diverged][0]} by step {done}: "
                f"lower train.learning_rate"
            )
        loss_sum, loss_steps = loss_sum + member_mean_losses * size, loss_steps + size
        if done % train_params.eval_every and done != train_params.steps:
            continue
        forecasts, member_val = validation_forecasts()
        member_val_now = member_val.numpy().astype(np.float64)
        member_train = loss_sum / loss_steps
        weights = network.get_weights()
        for k in np.flatnonzero(active):
            if member_val_now[k] < best_member_loss[k]:
                best_member_loss[k], best_member_step[k] = member_val_now[k], done
                best_forecasts[k] = forecasts[k].numpy()
                for best, now in zip(best_weights, weights):
                    best[k] = now[k]
                evaluations_since_best[k] = 0
            else:
                evaluations_since_best[k] += 1
        # A stopped member leaves the curve and counts at its kept weights: its weights train on
        # (the graph is shared) but are never kept.
        standing = np.where(active[:, None], forecasts.numpy(), best_forecasts)
        point = CurvePoint(
            done, float(np.mean(member_train[active])),
            ensemble_loss(standing, np.where(active, member_val_now, best_member_loss)),
            member_losses=tuple(float(v) if a else None for v, a in zip(member_train, active)),
            member_val_losses=tuple(float(v) if a else None for v, a in zip(member_val_now, active)),
            served_val_loss=ensemble_loss(best_forecasts, best_member_loss),
        )
        loss_sum, loss_steps = np.zeros(members), 0
        history.append(point)
        if on_point is not None:
            on_point(point)
        if train_params.patience is not None:
            stopping = active & (evaluations_since_best >= train_params.patience)
            for k in np.flatnonzero(stopping):
                stop_step[k] = done
            active &= ~stopping
            if not active.any():
                stopped_early = done < train_params.steps
                break
    network.set_weights(best_weights)
    served_loss = history[-1].served_val_loss  # the ensemble of every member's best weights
    assert served_loss is not None
    return TrainResult(
        network, history, max(best_member_step), served_loss, done, stopped_early,
        member_seeds=tuple(seeds), member_best_steps=tuple(best_member_step),
        member_best_losses=tuple(float(v) for v in best_member_loss), member_stop_steps=tuple(stop_step),
    )


def train_tutorial(
    x: np.ndarray,
    y: np.ndarray,
    model_params: ModelParams,
    train_params: TrainParams,
    seed: int,
    on_point: Optional[OnPoint] = None,
) -> TrainResult:
    """Train ``train.seeds`` members of the tutorial's network, each exactly as the tutorial does.

    Full batch, Adam (TF1's epsilon) on every trainable variable. In the
    tutorial ``x`` and ``y`` are ``tf.Variable``s, which are trainable, so its
    optimizer updates the data too; the replica does the same, one copy of the
    data per member, and returns them. A history row is recorded after update
    ``i`` for every ``i`` that is a multiple of ``train.eval_every`` (the tutorial
    printed after update ``i`` when ``i % 1000 == 0``) and after the last update;
    its cost and last prediction are the members' means.
    """
    seeds = member_seeds(seed, train_params.seeds)
    members = len(seeds)
    n_step = len(y)
    network = models.TutorialEnsemble.initialised(n_step, model_params.hidden_units, seeds, set_determinism)
    set_determinism(seed)
    # One sequence per member (a batch of 1 each): every member trains its own copy of the data.
    inputs = tf.Variable(np.broadcast_to(x[None, None], (members, 1, *x.shape)), dtype=tf.float32, name="x")
    targets = tf.Variable(np.broadcast_to(y[None], (members, *y.shape)), dtype=tf.float32, name="y")
    variables = network.trainable_variables + [inputs, targets]
    optimizer = keras.optimizers.Adam(
        learning_rate=train_params.learning_rate, epsilon=models.TF1_ADAM_EPSILON
    )
    optimizer.build(variables)

    def member_costs():
        results = network.member_outputs(inputs)  # [members, 1, n_step]
        return tf.stack([models.tutorial_cost(results[k], targets[k]) for k in range(members)]), results

    @tf.function(jit_compile=True)
    def run_steps(count):
        def body(i):
            with tf.GradientTape() as tape:
                # Members share no variable, so the gradient of the sum is each member's own.
                cost = tf.reduce_sum(member_costs()[0])
            optimizer.apply(tape.gradient(cost, variables), variables)
            return (i + 1,)

        tf.while_loop(lambda i: i < count, body, (tf.constant(0),))
        return tf.constant(0)

    @tf.function(jit_compile=True)
    def costs_and_last_predictions():
        costs, results = member_costs()
        return costs, results[:, -1, -1]

    history: list[CurvePoint] = []
    done = 0
    # Boundaries after updates 1, 1 + every, 1 + 2 every, ...: the tutorial's i = 0, every, ...
    for size in _chunks(train_params.steps, train_params.eval_every, train_params.steps_per_call, 1):
        run_steps(tf.constant(size))
        done += size
        if (done - 1) % train_params.eval_every and done != train_params.steps:
            continue
        costs, lasts = (v.numpy().astype(np.float64) for v in costs_and_last_predictions())
        if not np.isfinite(costs).all():
            bad = int(np.argmax(~np.isfinite(costs)))
            # Gradients through the year-long recurrence can overflow float32; the tutorial's
            # TF1 code does the same for some initialisations (see bench/).
            raise TrainingDiverged(
                f"the tutorial network's cost (member {bad + 1} of {members}, seed {seeds[bad]}) became "
                f"{costs[bad]} by update {done - 1}: its gradients through the {n_step}-step recurrence "
                f"overflowed, as the tutorial's own code does for some starting weights; try another "
                f"base.seed or a lower train.learning_rate"
            )
        point = CurvePoint(done - 1, float(np.mean(costs)), None, float(np.mean(lasts)),
                           member_losses=tuple(float(c) for c in costs))
        history.append(point)
        if on_point is not None:
            on_point(point)
    final = history[-1]
    return TrainResult(
        network, history, final.step, final.loss, done, False, inputs.numpy()[:, 0], targets.numpy(),
        member_seeds=tuple(seeds), member_best_steps=(final.step,) * members,
        member_best_losses=final.member_losses, member_stop_steps=(done,) * members,  # type: ignore[arg-type]
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
