"""Benchmarks of the training stage; prints figures and ratios, asserts nothing.

    make bench          # installs bench/requirements.txt (tf-keras), then runs this
    python bench/run.py [--rounds 3] [--output bench/results.json] [--only members]

1. Tutorial replica vs the tutorial's TF1 graph code (bench/tf1_tutorial.py, run in a
   subprocess with TF_USE_LEGACY_KERAS=1) on the same 242x4 input: optimizer
   steps per second, and the ratio (target: replica >= 3x).
2. Default model: ``nextclose.training.train_lstm`` vs a plain
   ``model.compile(); model.fit()`` of the same architecture and batch size:
   training windows per second, and the ratio (target: >= 1.5x).
3. Members in one graph (``train.seeds``): wall time of ``train_lstm`` with 8 members
   vs 1 member (same steps, batch size and process; target: <= 2.5x), and vs 8
   sequential one-member runs (target: 8-in-one >= 3x faster). Wall times include
   tracing and compiling, which every run pays.
4. Peak RSS of ``nextclose train`` with the repo's params.yaml, run in a
   temporary copy of params.yaml + data/prepared (MLflow to a SQLite file there),
   so the repo's models/, reports/ and mlflow.db are untouched. Measured through
   bench/peak_rss.py, a small launcher, because a child forked from this process
   would report this process's own RSS as its floor.

The machine may be shared, so the measurements of 1, 2 and 3 are interleaved in
``--rounds`` rounds (each side sees the same load) and medians are reported. All
rates exclude tracing and XLA compilation: they are taken between progress
callbacks after the first compiled call (or after the first epoch of ``fit``).
Results also go to bench/results.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
N_PAIRS = 242  # the tutorial's 243 trading days give 242 (x, y) pairs

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.pop("TF_USE_LEGACY_KERAS", None)  # Keras 3 here; only the TF1 subprocess wants tf-keras

import numpy as np  # noqa: E402


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TF_USE_LEGACY_KERAS", None)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env.update(extra)
    return env


def version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, object]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or "unknown"
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": platform.python_version(),
        "tensorflow": version("tensorflow"),
        "keras": version("keras"),
        "tf_keras": version("tf-keras"),
        "platform": platform.platform(),
    }


# --- workspace: a temporary copy of params.yaml and data/prepared ---------------------------


def make_workspace() -> Path:
    """A temp dir with params.yaml and data/prepared (copied, or made by `nextclose prepare`)."""
    work = Path(tempfile.mkdtemp(prefix="nextclose-bench-"))
    shutil.copy2(ROOT / "params.yaml", work / "params.yaml")
    prepared = ROOT / "data" / "prepared"
    if (prepared / "tutorial.npz").exists() and (prepared / "windows.npz").exists():
        shutil.copytree(prepared, work / "data" / "prepared")
    else:
        print("data/prepared is missing: running `nextclose prepare` in the temp copy", flush=True)
        subprocess.run(
            [sys.executable, "-m", "nextclose", "prepare"], cwd=work, check=True,
            env=child_env(MLFLOW_TRACKING_URI=f"sqlite:///{work / 'mlflow.db'}"),
        )
    return work


def tutorial_input(work: Path) -> dict[str, object]:
    """The last 242 (x, y) pairs of the prepared tutorial data, saved for the TF1 subprocess."""
    with np.load(work / "data" / "prepared" / "tutorial.npz") as sequence:
        x, y, dates = sequence["x"][-N_PAIRS:], sequence["y"][-N_PAIRS:], sequence["target_dates"][-N_PAIRS:]
    if len(y) != N_PAIRS:
        raise SystemExit(f"bench: data/prepared/tutorial.npz has only {len(y)} pairs, need {N_PAIRS}")
    path = work / "seed242.npz"
    np.savez(path, x=x, y=y)
    return {"x": x, "y": y, "path": path,
            "first_target": str(dates[0]), "last_target": str(dates[-1])}


# --- 1. tutorial replica vs the tutorial's TF1 code ---------------------------------------------


def tf1_steps_per_second(npz: Path, steps: int, warmup: int) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, str(BENCH / "tf1_tutorial.py"), str(npz),
         "--steps", str(steps), "--warmup", str(warmup)],
        env=child_env(TF_USE_LEGACY_KERAS="1"), capture_output=True, text=True,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"bench: tf1_tutorial.py failed ({done.returncode}); "
                         "is tf-keras installed (pip install -r bench/requirements.txt)?")
    return json.loads(done.stdout.strip().splitlines()[-1])


def replica_steps_per_second(x, y, params, steps_per_call: int, eval_every: int,
                             intervals: int, members: int = 1) -> dict[str, object]:
    """``train_tutorial`` (one member unless told: the TF1 code trains one network) for
    1 + intervals * eval_every steps; the rate between the first history row (after update 1,
    the call that compiles) and the last."""
    from nextclose import training

    model = dataclasses.replace(params.model, kind="tutorial", hidden_units=128)
    train = dataclasses.replace(
        params.train, learning_rate=0.1, steps=1 + intervals * eval_every,
        eval_every=eval_every, steps_per_call=steps_per_call, patience=None, seeds=members,
    )
    stamps: list[tuple[float, int]] = []
    start = time.perf_counter()
    result = training.train_tutorial(
        x, y, model, train, params.base.seed,
        on_point=lambda point: stamps.append((time.perf_counter(), point.step)),
    )
    (t0, s0), (t1, s1) = stamps[0], stamps[-1]
    return {
        "steps_per_second": (s1 - s0) / (t1 - t0),
        "timed_steps": s1 - s0,
        "first_call_seconds": t0 - start,  # trace + XLA compile + 1 step
        "cost_at_step_0": result.history[0].loss,
        "final_cost": result.history[-1].loss,
    }


# --- 2. default model: our loop vs plain compile/fit ----------------------------------------


def ours_windows_per_second(splits, normalisation, params, evaluations: int) -> dict[str, object]:
    """``train_lstm`` with the default params and one member (``fit`` trains one network),
    no early stopping; the rate between the evaluation after the first (compiling) call and
    the last evaluation."""
    from nextclose import training

    train = dataclasses.replace(
        params.train, patience=None, steps=params.train.eval_every * evaluations, seeds=1
    )
    batch = min(train.batch_size, len(splits["train"].targets))
    stamps: list[tuple[float, int]] = []
    start = time.perf_counter()
    training.train_lstm(
        splits["train"], splits["validation"], normalisation, params.model, train,
        params.base.seed, on_point=lambda point: stamps.append((time.perf_counter(), point.step)),
    )
    (t0, s0), (t1, s1) = stamps[1], stamps[-1]  # stamps[0] is step 0, before any training
    return {
        "windows_per_second": (s1 - s0) * batch / (t1 - t0),
        "steps_per_second": (s1 - s0) / (t1 - t0),
        "timed_steps": s1 - s0,
        "first_call_seconds": t0 - start,
    }


def fit_windows_per_second(splits, normalisation, params, epochs: int) -> dict[str, object]:
    """A plain Keras ``compile(); fit()`` of the same architecture, Adam(lr), mse, batch 64;
    the rate over epochs 2..epochs (epoch 1 traces the step function)."""
    import keras

    from nextclose import model as models

    keras.utils.set_random_seed(params.base.seed)
    train = splits["train"]
    network = models.build_lstm(train.inputs.shape[1], normalisation, params.model)
    network.compile(optimizer=keras.optimizers.Adam(params.train.learning_rate), loss="mse")
    stamps: list[float] = []
    batches = [0]
    # Keras passes `logs` by name, so the parameters keep Keras' names though unused.
    callback = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: batches.__setitem__(0, batches[0] + 1),  # noqa: ARG005
        on_epoch_end=lambda epoch, logs: stamps.append(time.perf_counter()),  # noqa: ARG005
    )
    start = time.perf_counter()
    network.fit(train.inputs, train.targets, batch_size=params.train.batch_size, epochs=epochs,
                shuffle=True, verbose=0, callbacks=[callback])
    per_epoch = batches[0] // epochs
    steps = per_epoch * (epochs - 1)
    seconds = stamps[-1] - stamps[0]
    return {
        # steps x batch, as the issue defines it: counts the last, partial batch of each
        # epoch (1366 windows = 21 x 64 + 22) as a full one, which flatters fit slightly.
        "windows_per_second": steps * params.train.batch_size / seconds,
        "samples_per_second": (epochs - 1) * len(train.targets) / seconds,
        "steps_per_second": steps / seconds,
        "steps_per_epoch": per_epoch,
        "timed_epochs": epochs - 1,
        "first_epoch_seconds": stamps[0] - start,
        "jit_compile": bool(network.jit_compile),
    }


# --- 3. members in one graph ------------------------------------------------------------------


def members_wall_seconds(splits, normalisation, params, members: int, steps: int) -> dict[str, object]:
    """Wall time of one ``train_lstm`` call with ``members`` members for ``steps`` steps (no
    early stopping), and its rate between the first and the last evaluation after compiling."""
    from nextclose import training

    train = dataclasses.replace(params.train, patience=None, steps=steps, seeds=members)
    stamps: list[tuple[float, int]] = []
    start = time.perf_counter()
    training.train_lstm(
        splits["train"], splits["validation"], normalisation, params.model, train,
        params.base.seed, on_point=lambda point: stamps.append((time.perf_counter(), point.step)),
    )
    wall = time.perf_counter() - start
    (t0, s0), (t1, s1) = stamps[1], stamps[-1]
    return {"members": members, "steps": steps, "wall_seconds": wall, "steps_per_second": (s1 - s0) / (t1 - t0)}


def sequential_wall_seconds(splits, normalisation, params, members: int, steps: int) -> dict[str, object]:
    """``members`` one-member runs one after another, seeds base.seed + i: what K runs cost."""
    start = time.perf_counter()
    for index in range(members):
        seeded = dataclasses.replace(params, base=dataclasses.replace(params.base, seed=params.base.seed + index))
        members_wall_seconds(splits, normalisation, seeded, 1, steps)
    return {"members": members, "steps": steps, "wall_seconds": time.perf_counter() - start}


# --- 4. peak RSS of `nextclose train` ---------------------------------------------------------


def init_mlflow(uri: str) -> None:
    """Create the SQLite store once, so every measured train run finds it ready."""
    subprocess.run(
        [sys.executable, "-c",
         "import sys, mlflow; mlflow.set_tracking_uri(sys.argv[1]); mlflow.search_experiments()",
         uri],
        env=child_env(), check=True, capture_output=True,
    )


def peak_rss(command: list[str], cwd: Path, env: dict[str, str], log: Path | None = None) -> dict:
    """``command``'s peak RSS via bench/peak_rss.py (a small launcher: a child forked
    from this process would report this process's ~1 GiB as its own floor)."""
    launcher = [sys.executable, str(BENCH / "peak_rss.py")]
    if log is not None:
        launcher += ["--log", str(log)]
    done = subprocess.run(launcher + ["--", *command], cwd=cwd, env=env, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def train_peak_rss(work: Path, uri: str) -> dict[str, object]:
    """Run `nextclose train` in ``work``; its peak RSS (wait4 ru_maxrss of the child and
    its waited-for descendants; VmHWM polled from /proc as a cross-check)."""
    log_path = work / "train.log"
    measured = peak_rss([sys.executable, "-m", "nextclose", "train"], work,
                        child_env(MLFLOW_TRACKING_URI=uri), log_path)
    text = log_path.read_text()
    if measured["returncode"] != 0:
        sys.stderr.write(text[-4000:])
        raise SystemExit(f"bench: nextclose train failed ({measured['returncode']})")
    summary = [line for line in text.splitlines() if line.startswith("trained ")]
    return {
        "peak_rss_mib": measured["ru_maxrss_kib"] / 1024,  # ru_maxrss is in KiB on Linux
        "vm_hwm_mib": measured["vm_hwm_kib"] / 1024,
        "wall_seconds": measured["wall_seconds"],
        "summary": summary[-1] if summary else None,
    }


def imports_peak_rss(work: Path) -> float:
    """Peak RSS (MiB) of a process that only imports what `nextclose train` imports."""
    measured = peak_rss(
        [sys.executable, "-c", "import tensorflow, keras, mlflow, nextclose.stages.train, "
         "nextclose.tracking, nextclose.training"], work, child_env(),
    )
    return measured["ru_maxrss_kib"] / 1024


# --- the run ---------------------------------------------------------------------------------


def members_section(splits, normalisation, params, tutorial, rounds: int, steps: int) -> dict[str, object]:
    """8 members in one graph vs 1 member vs 8 one-member runs in a row, interleaved; and the
    tutorial's network (a batch of one: latency-bound) with 8 members vs 1."""
    runs: dict[str, list] = {"one": [], "eight": [], "sequential": [], "tutorial_one": [], "tutorial_eight": []}
    for r in range(rounds):
        print(f"round {r + 1}/{rounds}: 1 member, 8 members, 8 one-member runs; tutorial 1 and 8 ...", flush=True)
        runs["one"].append(members_wall_seconds(splits, normalisation, params, 1, steps))
        runs["eight"].append(members_wall_seconds(splits, normalisation, params, 8, steps))
        runs["sequential"].append(sequential_wall_seconds(splits, normalisation, params, 8, steps))
        for name, count in (("tutorial_one", 1), ("tutorial_eight", 8)):
            runs[name].append(replica_steps_per_second(tutorial["x"], tutorial["y"], params, 100, 100, 3, count))
    one = median([x["wall_seconds"] for x in runs["one"]])
    eight = median([x["wall_seconds"] for x in runs["eight"]])
    sequential = median([x["wall_seconds"] for x in runs["sequential"]])
    rate_one = median([x["steps_per_second"] for x in runs["one"]])
    rate_eight = median([x["steps_per_second"] for x in runs["eight"]])
    return {
        "steps": steps, "batch_size": params.train.batch_size, "model": dataclasses.asdict(params.model),
        "one_member_seconds": one, "eight_members_seconds": eight, "eight_sequential_seconds": sequential,
        "eight_vs_one": eight / one, "target_eight_vs_one": 2.5,
        "sequential_vs_eight": sequential / eight, "target_sequential_vs_eight": 3.0,
        "steady_state_steps_per_second": {"one": rate_one, "eight": rate_eight},
        "steady_state_eight_vs_one": rate_one / rate_eight,
        "tutorial_steps_per_second": {
            "one": median([x["steps_per_second"] for x in runs["tutorial_one"]]),
            "eight": median([x["steps_per_second"] for x in runs["tutorial_eight"]]),
        },
        "runs": runs,
    }


def print_members(members: dict) -> None:
    def met(ok: bool) -> str:
        return "met" if ok else "MISSED"

    print(f"3. members in one graph ({members['steps']} steps, batch {members['batch_size']}, "
          f"{members['model']['hidden_units']} units; wall time incl. compile):")
    print(f"   1 member {members['one_member_seconds']:.1f} s; 8 members {members['eight_members_seconds']:.1f} s: "
          f"{members['eight_vs_one']:.2f}x  (target <= 2.5x: {met(members['eight_vs_one'] <= 2.5)})")
    print(f"   8 one-member runs in a row {members['eight_sequential_seconds']:.1f} s: 8-in-one is "
          f"{members['sequential_vs_eight']:.2f}x faster  (target >= 3x: {met(members['sequential_vs_eight'] >= 3.0)})")
    rates = members["steady_state_steps_per_second"]
    print(f"   after compiling: {rates['one']:.0f} vs {rates['eight']:.0f} steps/s "
          f"({members['steady_state_eight_vs_one']:.2f}x the time per step)")
    tutorial = members["tutorial_steps_per_second"]
    print(f"   tutorial network (242 days, 128 units, a batch of one): {tutorial['one']:.0f} vs "
          f"{tutorial['eight']:.0f} steps/s with 8 members "
          f"({tutorial['one'] / tutorial['eight']:.2f}x the time per step)")


def median(values):
    return statistics.median(values)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repeats (medians reported)")
    parser.add_argument("--output", type=Path, default=BENCH / "results.json")
    parser.add_argument("--tf1-steps", type=int, default=300, help="timed steps per TF1 run")
    parser.add_argument("--member-steps", type=int, default=500, help="steps of each members run")
    parser.add_argument("--only", choices=("members",), help="run one section (results go to --output)")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    load_before = os.getloadavg()

    work = make_workspace()
    try:
        os.chdir(work)  # nextclose.layout reads data/prepared relative to the cwd
        sys.path.insert(0, str(ROOT / "src"))
        from nextclose import layout
        from nextclose.params import load_params

        params = load_params(work / "params.yaml")
        splits, normalisation = layout.read_windows(), layout.read_normalisation()
        tutorial = tutorial_input(work)
        members = members_section(splits, normalisation, params, tutorial, args.rounds, args.member_steps)
        if args.only == "members":
            results = {"machine": machine(), "load_average_before": load_before,
                       "load_average_after": os.getloadavg(), "rounds": args.rounds, "members": members,
                       "total_seconds": time.perf_counter() - began}
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps(results, indent=2) + "\n")
            print_members(members)
            print(f"wrote {args.output} in {results['total_seconds']:.0f} s")
            return 0

        # Replica configurations: the headline one first. eval_every bounds the chunk size
        # (a call never crosses a history row), so steps_per_call > eval_every has no effect.
        replica_configs = {
            "spc500_every1000": (500, 1000, 3),   # headline: tutorial's print interval (1000)
            "spc100_every1000": (100, 1000, 3),
            "spc50_every50": (50, 50, 30),        # params.yaml's steps_per_call / eval_every
        }
        headline = "spc500_every1000"
        rounds = {"tf1": [], "ours": [], "fit": [], **{k: [] for k in replica_configs}}
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}: tutorial replica vs TF1 ...", flush=True)
            rounds["tf1"].append(tf1_steps_per_second(tutorial["path"], args.tf1_steps, warmup=20))
            for name, (spc, every, intervals) in replica_configs.items():
                rounds[name].append(replica_steps_per_second(
                    tutorial["x"], tutorial["y"], params, spc, every, intervals))
            print(f"round {r + 1}/{args.rounds}: train_lstm vs compile/fit ...", flush=True)
            rounds["ours"].append(ours_windows_per_second(splits, normalisation, params, 16))
            rounds["fit"].append(fit_windows_per_second(splits, normalisation, params, 12))

        print("peak RSS of `nextclose train` ...", flush=True)
        uri = f"sqlite:///{work / 'mlflow.db'}"
        init_mlflow(uri)
        rss_runs = [train_peak_rss(work, uri) for _ in range(args.rounds)]
        imports_rss = imports_peak_rss(work)
    finally:
        os.chdir(ROOT)
        shutil.rmtree(work, ignore_errors=True)

    tf1 = median([x["steps_per_second"] for x in rounds["tf1"]])
    replica = {name: median([x["steps_per_second"] for x in rounds[name]]) for name in replica_configs}
    ours = median([x["windows_per_second"] for x in rounds["ours"]])
    fit = median([x["windows_per_second"] for x in rounds["fit"]])
    paired_tutorial = [a["steps_per_second"] / b["steps_per_second"]
                   for a, b in zip(rounds[headline], rounds["tf1"])]
    paired_lstm = [a["windows_per_second"] / b["windows_per_second"]
                   for a, b in zip(rounds["ours"], rounds["fit"])]
    rss = median([x["peak_rss_mib"] for x in rss_runs])
    spc, every, _ = replica_configs[headline]

    results = {
        "machine": machine(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "rounds": args.rounds,
        "tutorial_vs_tf1": {
            "input": {"pairs": N_PAIRS, "first_target": tutorial["first_target"],
                      "last_target": tutorial["last_target"], "source": "data/prepared/tutorial.npz"},
            "tf1_steps_per_second": tf1,
            "replica_steps_per_second": replica[headline],
            "replica_config": {"steps_per_call": spc, "eval_every": every},
            "ratio": replica[headline] / tf1,
            "paired_ratios": paired_tutorial,
            "target_ratio": 3.0,
            "replica_steps_per_second_by_config": replica,
            "ratio_by_config": {k: v / tf1 for k, v in replica.items()},
            "runs": {k: rounds[k] for k in ["tf1", *replica_configs]},
        },
        "lstm_vs_fit": {
            "batch_size": params.train.batch_size,
            "train_windows": int(len(splits["train"].targets)),
            "model": dataclasses.asdict(params.model),
            "ours_windows_per_second": ours,
            "fit_windows_per_second": fit,
            "fit_samples_per_second": median([x["samples_per_second"] for x in rounds["fit"]]),
            "fit_jit_compile": rounds["fit"][0]["jit_compile"],
            "ours_config": {"steps_per_call": params.train.steps_per_call,
                            "eval_every": params.train.eval_every, "patience": None},
            "ratio": ours / fit,
            "paired_ratios": paired_lstm,
            "target_ratio": 1.5,
            "runs": {"ours": rounds["ours"], "fit": rounds["fit"]},
        },
        "members": members,
        "train_peak_rss": {
            "command": "nextclose train (params.yaml as in the repo)",
            "model_kind": params.model.kind,
            "peak_rss_mib": rss,
            "runs": rss_runs,
            "imports_only_peak_rss_mib": imports_rss,
        },
        "total_seconds": time.perf_counter() - began,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")

    m = results["machine"]
    tutorial_result, lstm_result = results["tutorial_vs_tf1"], results["lstm_vs_fit"]

    def met(ratio, target):
        return "met" if ratio >= target else "MISSED"

    print()
    print(f"machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable); "
          f"TensorFlow {m['tensorflow']}, Keras {m['keras']}, tf-keras {m['tf_keras']}, "
          f"Python {m['python']}")
    print(f"load average before/after: {load_before[0]:.2f} / {results['load_average_after'][0]:.2f}; "
          f"medians of {args.rounds} interleaved rounds")
    rows = [
        ("1. the tutorial's TF1 code (tf.compat.v1)", f"{tf1:,.1f} steps/s", ""),
        (f"   tutorial replica (steps_per_call {spc}, eval_every {every})",
         f"{replica[headline]:,.1f} steps/s",
         f"{tutorial_result['ratio']:.2f}x  (target 3x: {met(tutorial_result['ratio'], 3.0)})"),
    ]
    for name, (c_spc, c_every, _) in replica_configs.items():
        if name != headline:
            rows.append((f"   tutorial replica (steps_per_call {c_spc}, eval_every {c_every})",
                         f"{replica[name]:,.1f} steps/s", f"{replica[name] / tf1:.2f}x"))
    rows += [
        (f"2. default lstm: plain compile/fit (batch {lstm_result['batch_size']}, "
         f"jit {lstm_result['fit_jit_compile']})",
         f"{fit:,.0f} windows/s", ""),
        (f"   train_lstm (steps_per_call {params.train.steps_per_call}, "
         f"eval_every {params.train.eval_every})",
         f"{ours:,.0f} windows/s", f"{lstm_result['ratio']:.2f}x  (target 1.5x: {met(lstm_result['ratio'], 1.5)})"),
        (f"4. peak RSS, `nextclose train` ({params.model.kind}, {params.train.seeds} members)", f"{rss:,.0f} MiB",
         "runs: " + ", ".join(f"{x['peak_rss_mib']:.0f}" for x in rss_runs) + " MiB"),
    ]
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    for label, value, note in rows:
        print(f"{label:<{width}}  {value:>{value_width}}  {note}")
    print(f"   (a process that only imports tensorflow, keras, mlflow and nextclose: "
          f"{imports_rss:,.0f} MiB)")
    print_members(members)
    print(f"paired ratios per round: tutorial {', '.join(f'{x:.2f}' for x in paired_tutorial)}; "
          f"lstm {', '.join(f'{x:.2f}' for x in paired_lstm)}")
    print(f"input: {N_PAIRS} pairs, targets {tutorial['first_target']} .. {tutorial['last_target']}")
    print(f"train run ({median([x['wall_seconds'] for x in rss_runs]):.0f} s wall): "
          f"{rss_runs[-1]['summary']}")
    print(f"wrote {args.output} in {results['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
