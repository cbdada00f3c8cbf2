"""The two networks: the default LSTM and the tutorial's network, replicated.

Each is trained as an ensemble of ``train.seeds`` members whose weights are stacked on
a leading member axis, so every matmul serves all members at once in one compiled
graph (:class:`EnsembleLSTM`, :class:`TutorialEnsemble`). Member ``i`` starts from the
weights the single network (:func:`build_lstm`, :class:`TutorialNetwork`) draws with
seed ``base.seed + i``. All are Keras 3 models saved in the native ``.keras`` format.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from nextclose.features import Normalisation
from nextclose.params import ModelParams

# TF1's LSTMCell adds this to the forget gate's pre-activation (its `forget_bias` default).
TF1_FORGET_BIAS = 1.0
# TF1's AdamOptimizer epsilon; Keras' default (1e-7) would change the tutorial's updates.
TF1_ADAM_EPSILON = 1e-8


def build_lstm(window: int, normalisation: Normalisation, params: ModelParams) -> keras.Model:
    """Windows of log-relative bars in, the next day's log return out.

    The normalisation is part of the model, so the saved model takes the
    prepared windows as they are. The output layer starts at zero and the
    output is only rescaled, never shifted: the untrained model predicts "no
    change" (the persistence forecast) and has to earn every improvement.
    """
    n_features = len(normalisation.feature_names)
    layers: list[keras.layers.Layer] = [
        keras.Input(shape=(window, n_features), name="window"),
        keras.layers.Normalization(
            mean=list(normalisation.mean),
            variance=[s * s for s in normalisation.std],
            name="normalise",
        ),
    ]
    for index in range(params.layers):
        layers.append(
            keras.layers.LSTM(
                params.hidden_units,
                return_sequences=index < params.layers - 1,
                name=f"lstm_{index + 1}",
            )
        )
    if params.dropout > 0:
        layers.append(keras.layers.Dropout(params.dropout, name="dropout"))
    layers += [
        keras.layers.Dense(1, kernel_initializer="zeros", name="scaled_return"),
        keras.layers.Rescaling(normalisation.target_scale, name="log_return"),
        keras.layers.Reshape((), name="next_log_return"),
    ]
    return keras.Sequential(layers, name="nextclose_lstm")


@keras.saving.register_keras_serializable(package="nextclose")
class TutorialNetwork(keras.Model):
    """The tutorial's TF1 network, operation for operation.

    ``x`` is the year's ``[open, close, high, low]`` rows ``[n_step, 4]``
    (with a leading batch axis of 1, as the tutorial's reshape has it):
    ``x @ U + b_U`` (U the constant 0.25, one bias per day) makes one number a
    day; an LSTM reads those ``n_step`` numbers as ONE sequence; its last output
    times ``V`` ``[hidden_units, n_step]`` (drawn from N(0, 1)) plus a bias gives
    ``n_step`` predictions at once, shaped ``[1, n_step]``.

    The LSTM is TF1's ``LSTMCell``: one glorot-uniform kernel over the joined
    ``[input, h]``, gates in the order i, j, f, o, 1.0 added to the forget gate.
    The input half of the kernel is applied to all days at once outside the
    recurrence; only ``h @ W_h`` remains in the loop.
    """

    def __init__(self, n_step: int, hidden_units: int, **kwargs):
        super().__init__(**kwargs)
        self.n_step = n_step
        self.hidden_units = hidden_units
        gates = 4 * hidden_units
        # TF1 gave LSTMCell's joined [1 + units, 4 units] kernel a glorot-uniform start.
        limit = math.sqrt(6.0 / (1 + hidden_units + gates))
        self.input_kernel = self.add_weight(
            shape=(4, 1), initializer=keras.initializers.Constant(0.25), name="input_kernel"
        )
        self.input_bias = self.add_weight(shape=(n_step, 1), initializer="zeros", name="input_bias")
        self.lstm_kernel = self.add_weight(
            shape=(1 + hidden_units, gates),
            initializer=keras.initializers.RandomUniform(-limit, limit),
            name="lstm_kernel",
        )
        self.lstm_bias = self.add_weight(shape=(gates,), initializer="zeros", name="lstm_bias")
        self.output_kernel = self.add_weight(
            shape=(hidden_units, n_step),
            initializer=keras.initializers.RandomNormal(0.0, 1.0),
            name="output_kernel",
        )
        self.output_bias = self.add_weight(shape=(n_step,), initializer="zeros", name="output_bias")
        self.built = True

    def call(self, x):
        """``x``: ``[batch, n_step, 4]`` (the tutorial's batch is its one year) -> ``[batch, n_step]``."""
        x = tf.convert_to_tensor(x, dtype=tf.float32)
        daily = tf.matmul(x, self.input_kernel) + self.input_bias  # [batch, n_step, 1]
        input_gates = tf.matmul(daily, self.lstm_kernel[:1]) + self.lstm_bias  # [batch, n_step, 4 units]
        input_gates = tf.transpose(input_gates, [1, 0, 2])  # time first, for the loop
        recurrent_kernel = self.lstm_kernel[1:]
        state = tf.zeros((tf.shape(x)[0], self.hidden_units), dtype=tf.float32)

        def step(t, c, h):
            gates = input_gates[t] + tf.matmul(h, recurrent_kernel)
            i, j, f, o = tf.split(gates, 4, axis=1)
            c = tf.sigmoid(f + TF1_FORGET_BIAS) * c + tf.sigmoid(i) * tf.tanh(j)
            h = tf.sigmoid(o) * tf.tanh(c)
            return t + 1, c, h

        _, _, last_output = tf.while_loop(
            lambda t, _c, _h: t < self.n_step,
            step,
            (tf.constant(0), state, state),
            maximum_iterations=self.n_step,  # XLA needs the bound to differentiate the loop
        )
        return tf.matmul(last_output, self.output_kernel) + self.output_bias

    def get_config(self):
        return {"n_step": self.n_step, "hidden_units": self.hidden_units, "name": self.name}


def tutorial_cost(predictions: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """The tutorial's cost, ``reduce_mean(square(results - y))``.

    ``results`` is ``[1, n_step]`` and ``y`` is ``[n_step, 1]``, so the difference
    broadcasts to ``[n_step, n_step]``: every prediction is scored against every
    next-day close. That is what the tutorial computes, so the replica does too.
    """
    return tf.reduce_mean(tf.square(predictions - y))


def _stack(per_member: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
    """``[member][weight]`` arrays -> ``[weight]`` arrays with a leading member axis."""
    return [np.stack(weights) for weights in zip(*per_member)]


def member_weights(seeds: Sequence[int], build: Callable[[], keras.Model],
                   seed_everything: Callable[[int], None]) -> list[np.ndarray]:
    """The starting weights of one member per seed, stacked: each is what ``build()`` draws
    after ``seed_everything(seed)``, so member ``i`` starts where a one-member run with
    seed ``base.seed + i`` starts."""
    per_member = []
    for seed in seeds:
        seed_everything(seed)
        per_member.append(build().get_weights())
    return _stack(per_member)


@keras.saving.register_keras_serializable(package="nextclose")
class EnsembleLSTM(keras.Model):
    """``members`` copies of :func:`build_lstm`'s network; the output is their mean.

    The weights carry a leading member axis, and each step of the recurrence is one
    batched matmul for all members. Each member computes exactly what the single
    network computes, op for op in Keras' order (``x @ W + h @ U + b``; gates i, f,
    c, o), so a one-member ensemble is the single network.

    ``member_outputs`` takes ``[batch, window, features]`` (the same windows for all
    members: serving) or ``[members, batch, window, features]`` (each member its own
    batch: training) and returns ``[members, batch]`` next-day log returns.
    """

    def __init__(self, window: int, feature_mean: Sequence[float], feature_std: Sequence[float],
                 target_scale: float, hidden_units: int, layers: int, dropout: float, members: int,
                 **kwargs):
        super().__init__(**kwargs)
        self.window = window
        self.feature_mean = [float(v) for v in feature_mean]
        self.feature_std = [float(v) for v in feature_std]
        self.target_scale = float(target_scale)
        self.hidden_units = hidden_units
        self.n_layers = layers
        self.dropout = float(dropout)
        self.members = members
        # The single network's own layer, so the scaling is bit for bit the same.
        self.normalise = keras.layers.Normalization(
            mean=self.feature_mean, variance=[s * s for s in self.feature_std], name="normalise"
        )
        gates = 4 * hidden_units
        self.lstm_weights = []
        for index in range(layers):
            inputs = len(self.feature_mean) if index == 0 else hidden_units
            self.lstm_weights.append((
                self.add_weight(shape=(members, inputs, gates), initializer="zeros", name=f"lstm_{index + 1}_kernel"),
                self.add_weight(shape=(members, hidden_units, gates), initializer="zeros",
                                name=f"lstm_{index + 1}_recurrent_kernel"),
                self.add_weight(shape=(members, gates), initializer="zeros", name=f"lstm_{index + 1}_bias"),
            ))
        self.output_kernel = self.add_weight(shape=(members, hidden_units, 1), initializer="zeros",
                                             name="scaled_return_kernel")
        self.output_bias = self.add_weight(shape=(members, 1), initializer="zeros", name="scaled_return_bias")
        self.normalise.build((None, window, len(self.feature_mean)))
        self.built = True

    @classmethod
    def initialised(cls, window: int, normalisation: Normalisation, params: ModelParams, seeds: Sequence[int],
                    seed_everything: Callable[[int], None]) -> "EnsembleLSTM":
        """An ensemble whose member ``i`` starts as ``build_lstm`` does under ``seeds[i]``."""
        ensemble = cls(window, normalisation.mean, normalisation.std, normalisation.target_scale,
                       params.hidden_units, params.layers, params.dropout, len(seeds), name="nextclose_lstm")
        stacked = member_weights(seeds, lambda: build_lstm(window, normalisation, params), seed_everything)
        # build_lstm's weights: (kernel, recurrent kernel, bias) per LSTM layer, then the Dense kernel
        # and bias; the Normalization layer holds constants, not weights.
        ensemble.set_weights(stacked)
        return ensemble

    def member_outputs(self, x, dropout_masks: Optional[tf.Tensor] = None) -> tf.Tensor:
        """Next-day log returns ``[members, batch]``; ``dropout_masks`` ``[members, batch, units]``
        (already scaled by 1 / (1 - rate)) when training with dropout."""
        x = self.normalise(tf.convert_to_tensor(x, dtype=tf.float32))
        shared = x.shape.rank == 3  # one batch for every member
        batch = tf.shape(x)[0] if shared else tf.shape(x)[1]
        for index, (kernel, recurrent_kernel, bias) in enumerate(self.lstm_weights):
            # Days first, for a while loop as Keras' own RNN runs it: the gradients then add up
            # over the days in the same order as the single network's.
            # Read through a TensorArray, as Keras does: a slice of a tensor inside the loop
            # would add its whole gradient on every day.
            days = tf.TensorArray(tf.float32, size=self.window).unstack(
                tf.transpose(x, [1, 0, 2]) if shared and index == 0 else tf.transpose(x, [2, 0, 1, 3]))
            equation = "bf,kfg->kbg" if shared and index == 0 else "kbf,kfg->kbg"
            state = tf.zeros((self.members, batch, self.hidden_units), dtype=tf.float32)
            member_bias = bias[:, None, :]  # outside the loop, which would redo it every day

            def step(t, c, h, outputs, kernel=kernel, recurrent_kernel=recurrent_kernel, member_bias=member_bias,
                     days=days, equation=equation):
                z = tf.einsum(equation, days.read(t), kernel)
                z = z + tf.einsum("kbh,khg->kbg", h, recurrent_kernel)
                z = z + member_bias
                z_i, z_f, z_c, z_o = tf.split(z, 4, axis=-1)
                i = tf.sigmoid(z_i)
                f = tf.sigmoid(z_f)
                c = f * c + i * tf.tanh(z_c)
                o = tf.sigmoid(z_o)
                h = o * tf.tanh(c)
                return t + 1, c, h, outputs.write(t, h)

            outputs = tf.TensorArray(tf.float32, size=self.window)
            _, _, _, outputs = tf.while_loop(
                lambda t, *_: t < self.window, step, (tf.constant(0), state, state, outputs),
                maximum_iterations=self.window,
            )
            x = tf.transpose(outputs.stack(), [1, 2, 0, 3])  # [members, batch, window, units]
        last = x[:, :, -1]
        if dropout_masks is not None:
            last = last * dropout_masks
        # One matmul per member: XLA's batched matrix-vector product rounds differently from the
        # single network's, and this layer runs once per forward pass, not once per day.
        scaled = tf.stack([tf.matmul(last[k], self.output_kernel[k]) + self.output_bias[k]
                           for k in range(self.members)])
        return tf.reshape(scaled * self.target_scale, (self.members, batch))

    def call(self, x):
        """The served forecast: the mean of the members' log returns, ``[batch]``."""
        return tf.reduce_mean(self.member_outputs(x), axis=0)

    def get_config(self):
        return {
            "window": self.window, "feature_mean": self.feature_mean, "feature_std": self.feature_std,
            "target_scale": self.target_scale, "hidden_units": self.hidden_units, "layers": self.n_layers,
            "dropout": self.dropout, "members": self.members, "name": self.name,
        }


@keras.saving.register_keras_serializable(package="nextclose")
class TutorialEnsemble(keras.Model):
    """``members`` copies of :class:`TutorialNetwork`, weights stacked on a leading member axis.

    Its batch of one makes every product a row-vector product, which XLA runs slowly and
    rounds differently when batched over members, so each member's matmuls are its own; a
    member agrees with the single network to float32 rounding.

    ``member_outputs`` takes ``[batch, n_step, 4]`` (the same year for every member) or
    ``[members, batch, n_step, 4]`` (each member its own year: the tutorial trains its
    data, so each member's x drifts its own way) and returns ``[members, batch, n_step]``;
    ``call`` returns the members' mean, ``[batch, n_step]``.
    """

    def __init__(self, n_step: int, hidden_units: int, members: int, **kwargs):
        super().__init__(**kwargs)
        self.n_step = n_step
        self.hidden_units = hidden_units
        self.members = members
        gates = 4 * hidden_units
        self.input_kernel = self.add_weight(shape=(members, 4, 1), initializer="zeros", name="input_kernel")
        self.input_bias = self.add_weight(shape=(members, n_step, 1), initializer="zeros", name="input_bias")
        self.lstm_kernel = self.add_weight(shape=(members, 1 + hidden_units, gates), initializer="zeros",
                                           name="lstm_kernel")
        self.lstm_bias = self.add_weight(shape=(members, gates), initializer="zeros", name="lstm_bias")
        self.output_kernel = self.add_weight(shape=(members, hidden_units, n_step), initializer="zeros",
                                             name="output_kernel")
        self.output_bias = self.add_weight(shape=(members, n_step), initializer="zeros", name="output_bias")
        self.built = True

    @classmethod
    def initialised(cls, n_step: int, hidden_units: int, seeds: Sequence[int],
                    seed_everything: Callable[[int], None]) -> "TutorialEnsemble":
        """An ensemble whose member ``i`` starts as ``TutorialNetwork`` does under ``seeds[i]``."""
        ensemble = cls(n_step, hidden_units, len(seeds), name="tutorial_network")
        ensemble.set_weights(member_weights(seeds, lambda: TutorialNetwork(n_step, hidden_units), seed_everything))
        return ensemble

    def member_outputs(self, x) -> tf.Tensor:
        x = tf.convert_to_tensor(x, dtype=tf.float32)
        if x.shape.rank == 3:
            x = tf.broadcast_to(x[None], tf.concat([[self.members], tf.shape(x)], axis=0))
        # Per member, as the single network's matmuls (XLA rounds batched matrix-vector
        # products differently).
        daily = tf.stack([tf.matmul(x[k], self.input_kernel[k]) + self.input_bias[k] for k in range(self.members)])
        input_gates = tf.stack([tf.matmul(daily[k], self.lstm_kernel[k, :1]) + self.lstm_bias[k]
                                for k in range(self.members)])
        input_gates = tf.transpose(input_gates, [2, 0, 1, 3])  # time first, for the loop
        # Sliced once, outside the loop: a slice taken inside it is copied on every day.
        recurrent_kernels = [self.lstm_kernel[k, 1:] for k in range(self.members)]
        state = tf.zeros((self.members, tf.shape(x)[1], self.hidden_units), dtype=tf.float32)

        def step(t, c, h):
            # One matmul per member: these are row-vector products (a batch of one), which XLA
            # rounds differently when batched over members.
            gates = input_gates[t] + tf.stack([tf.matmul(h[k], recurrent_kernels[k]) for k in range(self.members)])
            i, j, f, o = tf.split(gates, 4, axis=-1)
            c = tf.sigmoid(f + TF1_FORGET_BIAS) * c + tf.sigmoid(i) * tf.tanh(j)
            h = tf.sigmoid(o) * tf.tanh(c)
            return t + 1, c, h

        _, _, last_output = tf.while_loop(
            lambda t, _c, _h: t < self.n_step, step, (tf.constant(0), state, state),
            maximum_iterations=self.n_step,
        )
        return tf.stack([tf.matmul(last_output[k], self.output_kernel[k]) + self.output_bias[k]
                         for k in range(self.members)])

    def call(self, x):
        return tf.reduce_mean(self.member_outputs(x), axis=0)

    def get_config(self):
        return {"n_step": self.n_step, "hidden_units": self.hidden_units, "members": self.members,
                "name": self.name}
