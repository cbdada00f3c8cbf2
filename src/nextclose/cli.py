"""The ``nextclose`` command: one sub-command per pipeline stage."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from nextclose import atomic, layout, redaction, registry
from nextclose.errors import UserError
from nextclose.params import ParamsError, load_params

STAGES = {
    "prepare": "read, check and split the bars; build the model inputs (data/prepared/)",
    "train": "train the model on the prepared data (models/, reports/train_history.csv)",
    "evaluate": "score the model and naive baselines on the test split (reports/metrics.json)",
    "backtest": "walk-forward backtest: retrain before each fold, forecast its days (reports/backtest.json)",
    "tune": "search hidden units, learning rate and steps with Optuna (reports/best_params.yaml)",
}


# The stages that run TensorFlow (prepare does not import it).
TENSORFLOW_STAGES = ("train", "evaluate", "backtest", "tune")
TENSORFLOW_MODULE = "tensorflow"

# TensorFlow's native libraries log a few lines while they load (oneDNN is on, twice, and on a
# build with CUDA the GPU probing), before its logging is set up: TF_CPP_MIN_LOG_LEVEL does not
# reach them. They are absl records, "I0000 00:00:1795833539.796403    2806 port.cc:153] ...",
# after absl's notice that such early lines go to stderr.
TF_RECORD = re.compile(rb"^([IWEF])\d{4} \d\d:\d\d:[\d.]+ +\d+ [^\s\]]+:\d+\] ")
SEVERITY = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}
ABSL_NOTICE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def kept_startup_line(line: bytes, min_level: int) -> bool:
    """Whether a line TensorFlow wrote while loading is shown at ``TF_CPP_MIN_LOG_LEVEL=min_level``:
    its records below that level and absl's notice (when any level is set) are dropped; anything
    else, our own output or a Python warning included, is kept."""
    if min_level >= 1 and line.rstrip(b"\r\n") == ABSL_NOTICE:
        return False
    record = TF_RECORD.match(line)
    return record is None or SEVERITY[record.group(1)] >= min_level


def import_tensorflow() -> None:
    """Import TensorFlow with TF_CPP_MIN_LOG_LEVEL applied to the lines it logs while loading.

    The process's stderr (file descriptor 2, where the native libraries write) goes to a
    temporary file for the import only; then every line of it is written back to stderr but the
    records below the level. At the default level (2) that drops the INFO lines and keeps
    warnings and errors; ``TF_CPP_MIN_LOG_LEVEL=0`` shows every line. One limit: a process
    killed inside the import (TensorFlow aborts on a CPU without the instructions it was built
    for) loses what the import wrote.
    """
    try:
        min_level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        min_level = 0
    sys.stderr.flush()
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            importlib.import_module(TENSORFLOW_MODULE)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured:
                if kept_startup_line(line, min_level):
                    os.write(2, line)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nextclose",
        description="Forecast the next trading day's close with an LSTM; "
        "each sub-command is one DVC stage (see dvc.yaml).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text in STAGES.items():
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.add_argument(
            "--params", default="params.yaml", metavar="PATH",
            help="params file (default: params.yaml in the current directory)",
        )
        if name == "tune":
            command.add_argument(
                "--n-trials", type=int, metavar="N",
                help="trials to add in this run (default: tune.n_trials)",
            )
    apply_help = "write the best tuned values (reports/best_params.yaml) into params.yaml"
    apply = commands.add_parser("apply-best", help=apply_help, description=apply_help)
    apply.add_argument("--params", default="params.yaml", metavar="PATH", help="params file to update")
    apply.add_argument("--best", default="reports/best_params.yaml", metavar="PATH",
                       help="the tune stage's best values (default: %(default)s)")
    predict_help = "forecast the next trading day's close from the latest bars of the data source"
    predict = commands.add_parser(
        "predict", help=predict_help, description=predict_help + ": with --model URI, else the registry's "
        "models:/nextclose-lstm@champion, else the workspace's models/. Bars come from params' data "
        "(data.end is not applied: the forecast starts from the latest bar; data.start bounds a network fetch).")
    predict.add_argument("--params", default="params.yaml", metavar="PATH",
                         help="params file: data (where the bars come from), evaluate.interval (the coverage) "
                         "and, on a panel, evaluate.top_k (how many symbols each side takes)")
    predict.add_argument("--model", metavar="URI", help="an MLflow model URI, e.g. models:/nextclose-lstm/3")
    predict.add_argument("--csv", metavar="PATH", help="read the bars from this CSV file instead of params' data")
    predict.add_argument("--as-of", metavar="DATE", help="forecast from the bars up to this date (YYYY-MM-DD)")
    output = predict.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON object: " + ", ".join(
        '"date", "last_close", "forecast", "lower", "upper", "model_uri"'.split(", ")) + " and more; on a panel, "
        'a list of them, one per symbol, with "symbol", "forecast_return", "rank" and "side" (long, short or null)')
    output.add_argument("--all", action="store_true",
                        help="a forecast after every bar that ends a whole window, as CSV (batch scoring)")
    predict.add_argument("--output", metavar="PATH", help="with --all: write the CSV here (default: stdout)")
    champion_help = ("the newest registered version challenges @champion: it gets @challenger, and "
                     "@champion moves to it only when its figure is better (lower; higher for backtest_rank_ic)")
    champion = commands.add_parser("champion", help=champion_help, description=champion_help)
    champion.add_argument("--kind", default="lstm", choices=("lstm", "tutorial"),
                          help="which registered model, nextclose-<kind> (default: %(default)s)")
    champion.add_argument("--panel", action="store_true",
                          help="the global models of panels (nextclose-lstm-panel), not the single-series ones")
    champion.add_argument("--metric", default=None, choices=tuple(registry.BY_NAME),
                          help="best_val_loss (the ensemble's validation loss) and final_cost come from the "
                          "training run, backtest_rmse_ratio from its pipeline execution: lower is better; "
                          "backtest_rank_ic (with --panel: the walk-forward Rank IC mean), from the execution "
                          "too: higher is better; never a test figure "
                          "(default: best_val_loss; final_cost for the tutorial kind)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    # What the process prints from here on (its messages, errors, tracebacks, MLflow's and
    # Optuna's logging, exit handlers) is redacted: a password in OPTUNA_STORAGE or
    # MLFLOW_TRACKING_URI never reaches a log.
    redaction.redact_process_output()
    return run_command(argv)


def run_command(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    # TensorFlow's C++ INFO and WARNING lines hide our own messages; errors still show.
    # A user's own setting wins: TF_CPP_MIN_LOG_LEVEL=0 shows them all (see import_tensorflow).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # MLflow draws a progress bar per model it downloads or checks; stage logs are read later.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        # A stage killed mid-commit left its outputs half-replaced: finish or undo that first.
        mended = atomic.recover(Path("."), layout.OUTPUTS)
        if mended:
            print(f"nextclose: {mended}", file=sys.stderr)
        if args.command == "champion":
            from nextclose.commands import champion

            champion.main(args.kind, args.metric or registry.DEFAULT_METRIC[args.kind], args.panel)
            return 0
        if args.command == "predict":
            if args.output is not None and not args.all:
                raise ParamsError("--output: only with --all")
            params = load_params(args.params)
            import_tensorflow()
            from nextclose.commands import predict

            predict.main(params, args.model, args.csv, args.as_of, args.json, args.all, args.output)
            return 0
        if args.command == "apply-best":
            from nextclose.commands import apply_best

            apply_best.main(args.params, args.best)
            return 0
        params = load_params(args.params)
        if args.command in TENSORFLOW_STAGES:
            import_tensorflow()
        stage = importlib.import_module(f"nextclose.stages.{args.command}")
        if args.command == "tune":
            if args.n_trials is not None and args.n_trials < 1:
                raise ParamsError("--n-trials: must be at least 1")
            stage.main(params, args.n_trials)
        else:
            stage.main(params)
    except UserError as error:
        print(f"nextclose {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0
