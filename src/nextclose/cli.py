"""The ``nextclose`` command: one sub-command per pipeline stage."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from nextclose import atomic, layout, registry
from nextclose.errors import UserError
from nextclose.params import ParamsError, load_params

STAGES = {
    "prepare": "read, check and split the bars; build the model inputs (data/prepared/)",
    "train": "train the model on the prepared data (models/, reports/train_history.csv)",
    "evaluate": "score the model and naive baselines on the test split (reports/metrics.json)",
    "backtest": "walk-forward backtest: retrain before each fold, forecast its days (reports/backtest.json)",
    "tune": "search hidden units, learning rate and steps with Optuna (reports/best_params.yaml)",
}


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
    champion_help = "point a registry alias at the registered model version with the best figure"
    champion = commands.add_parser("champion", help=champion_help, description=champion_help)
    champion.add_argument("--kind", default="lstm", choices=("lstm", "tutorial"),
                          help="which registered model, nextclose-<kind> (default: %(default)s)")
    champion.add_argument("--metric", default=None,
                          choices=registry.TRAIN_METRICS + registry.EVALUATE_METRICS,
                          help="lower is better; best_val_loss (the ensemble's validation loss) and "
                          "final_cost come from the training run, the others from its evaluation on the "
                          "test split, which choosing on spends (default: best_val_loss; final_cost for "
                          "the tutorial kind)")
    champion.add_argument("--alias", default="champion", help="the alias to move (default: %(default)s)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    # TensorFlow's C++ start-up chatter hides our own messages; users can lower this again.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        # A stage killed mid-commit left its outputs half-replaced: finish or undo that first.
        mended = atomic.recover(Path("."), layout.OUTPUTS)
        if mended:
            print(f"nextclose: {mended}", file=sys.stderr)
        if args.command == "champion":
            from nextclose.commands import champion

            champion.main(args.kind, args.metric or registry.DEFAULT_METRIC[args.kind], args.alias)
            return 0
        if args.command == "apply-best":
            from nextclose.commands import apply_best

            apply_best.main(args.params, args.best)
            return 0
        params = load_params(args.params)
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
