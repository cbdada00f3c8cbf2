"""The two networks: the default LSTM and the tutorial's network, replicated.

Both are plain Keras 3 models saved in the native ``.keras`` format.
"""

from __future__ import annotations

import math

import keras
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
