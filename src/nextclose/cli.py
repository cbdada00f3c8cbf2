"""The ``nextclose`` command: one sub-command per pipeline stage."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Optional, Sequence

from nextclose.bars import DataError
from nextclose.params import ParamsError, load_params

STAGES = {
    "prepare": "read, check and split the bars; build the model inputs (data/prepared/)",
    "train": "train the model on the prepared data (models/, reports/train_history.csv)",
    "evaluate": "score the model and naive baselines on the test split (reports/metrics.json)",
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
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    # TensorFlow's C++ start-up chatter hides our own messages; users can lower this again.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        params = load_params(args.params)
        stage = importlib.import_module(f"nextclose.stages.{args.command}")
        stage.main(params)
    except (ParamsError, DataError) as error:
        print(f"nextclose {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0
