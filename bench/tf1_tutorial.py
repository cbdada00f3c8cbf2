"""The tutorial's TF1 graph code, ported as literally as possible to ``tf.compat.v1``.

Baseline for ``bench/run.py``; not part of the pipeline. ``tf.compat.v1.nn.rnn_cell``
needs ``tf-keras`` (bench/requirements.txt) and ``TF_USE_LEGACY_KERAS=1``, so run it
in its own process:

    TF_USE_LEGACY_KERAS=1 python bench/tf1_tutorial.py INPUT.npz --steps 300 --warmup 20

``INPUT.npz`` holds ``x`` [n_step, 4] (open, close, high, low) and ``y`` [n_step, 1]
(next close), float32. Prints one JSON object: steps per second of ``sess.run(train_op)``
over the timed steps (after the warm-up), the cost before training and at step 0
(after the first update: the tutorial's first print), and the setup.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", help=".npz with x [n_step, 4] and y [n_step, 1]")
    parser.add_argument("--steps", type=int, default=300, help="timed sess.run(train_op) calls")
    parser.add_argument("--warmup", type=int, default=20,
                        help="untimed sess.run(train_op) calls first (at least 1 is run)")
    parser.add_argument("--repeats", type=int, default=1, help="timed blocks of --steps (median reported)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    tf.compat.v1.disable_eager_execution()
    tf.compat.v1.set_random_seed(args.seed)
    with np.load(args.input) as data:
        x_temp, y_temp = data["x"].astype(np.float32), data["y"].astype(np.float32)

    # --- the tutorial (lstm_tutorial_zh.txt lines 95-160), tf.* -> tf.compat.v1.* ---
    x = tf.compat.v1.Variable(np.array(x_temp).astype(np.float32))
    y = tf.compat.v1.Variable(np.array(y_temp).astype(np.float32))
    lr = 0.1
    hidden_units = 128
    x_inputs = x_temp.shape[1]
    n_step = x_temp.shape[0]
    y_output = y_temp.shape[1]
    weights = {
        "U": tf.compat.v1.Variable(tf.constant(0.25, shape=[x_inputs, y_output])),
        "V": tf.compat.v1.Variable(tf.compat.v1.random_normal([hidden_units, n_step])),
    }
    biases = {
        "U": tf.compat.v1.Variable(tf.constant(0.0, shape=[n_step, y_output])),
        "V": tf.compat.v1.Variable(tf.constant(0.0, shape=[n_step])),
    }
    x_in = tf.matmul(x, weights["U"]) + biases["U"]
    x_in = tf.reshape(x_in, [-1, n_step, y_output])
    cell = tf.compat.v1.nn.rnn_cell.LSTMCell(hidden_units)
    outputs, states = tf.compat.v1.nn.dynamic_rnn(cell, x_in, dtype=tf.float32)
    output = tf.transpose(outputs, [1, 0, 2])[-1]
    results = tf.matmul(output, weights["V"]) + biases["V"]
    cost = tf.reduce_mean(tf.square(results - y))  # [1, n] - [n, 1]: broadcasts to [n, n]
    train_op = tf.compat.v1.train.AdamOptimizer(lr).minimize(cost)
    init = tf.compat.v1.global_variables_initializer()
    sess = tf.compat.v1.Session()
    sess.run(init)
    # --- end of the tutorial's graph ---

    trainable = len(tf.compat.v1.trainable_variables())
    initial_cost = sess.run(cost)
    # The tutorial's first print: after update i = 0, the cost and results[-1][-1].
    sess.run(train_op)
    first_cost, first_last = sess.run([cost, results[-1][-1]])
    for _ in range(max(args.warmup - 1, 0)):
        sess.run(train_op)
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.steps):
            sess.run(train_op)
        rates.append(args.steps / (time.perf_counter() - start))
    final_cost = float(sess.run(cost))
    json.dump(
        {
            "steps_per_second": float(np.median(rates)),
            "steps_per_second_runs": rates,
            "timed_steps": args.steps,
            "warmup_steps": args.warmup,
            "cost_before_training": float(initial_cost),
            "cost_at_step_0": float(first_cost),  # after the first update, as the tutorial prints
            "last_prediction_at_step_0": float(first_last),
            "cost_after": final_cost,
            "n_step": int(n_step),
            "hidden_units": hidden_units,
            "trainable_variables": trainable,
            "tensorflow": tf.__version__,
        },
        sys.stdout,
    )
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
