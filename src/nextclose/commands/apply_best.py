"""``nextclose apply-best``: copy the tuned values into params.yaml, comments and layout kept.

After it, ``dvc repro`` retrains and re-evaluates with the tuned values and
``git diff params.yaml`` shows exactly what changed.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

from nextclose import atomic, layout
from nextclose.params import ParamsError, parse_params


def apply(params_text: str, best: dict[tuple[str, str], Any]) -> str:
    """``params_text`` with the tuned values set, every comment and blank line kept."""
    round_trip = YAML()
    round_trip.preserve_quotes = True
    round_trip.width = 4096  # never re-wrap a long line
    round_trip.representer.add_representer(  # keep `null` written as `null`, not as nothing
        type(None), lambda representer, _: representer.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    document = round_trip.load(params_text)
    for (section, key), value in best.items():
        document[section][key] = value
    out = io.StringIO()
    round_trip.dump(document, out)
    return out.getvalue()


def main(params_path: str, best_path: str) -> None:
    path = Path(params_path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    best = layout.read_best_params(Path(best_path))
    updated = apply(text, best)
    parse_params(yaml.safe_load(updated), str(path))  # never write a file the stages would refuse
    atomic.write_text(path, updated)
    changes = ", ".join(f"{s}.{k}={v}" for (s, k), v in best.items())
    print(f"{path}: set {changes}; now `dvc repro` retrains and evaluates the tuned model")
