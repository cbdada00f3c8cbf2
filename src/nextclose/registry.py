"""The MLflow model registry's rules: every trained model is a version of its kind's
registered model; an alias marks the one with the best figure.

``nextclose champion`` (:mod:`nextclose.commands.champion`) moves an alias
(``champion`` by default) to the version with the lowest figure, so
``models:/nextclose-lstm@champion`` always loads the best model trained so far. The
default figure is the validation loss of the served ensemble: choosing on the test split
would spend it, and its figures would no longer estimate the chosen model's error.
"""

from __future__ import annotations

import math
from typing import Optional

from nextclose.errors import UserError


class RegistryError(UserError, LookupError):
    """Nothing in the registry to choose from; the message says what to run first."""


# Where each figure lives: the training run, or the evaluation of that training run.
TRAIN_METRICS = ("best_val_loss", "final_cost")
EVALUATE_METRICS = ("rmse_ratio_persistence", "rmse", "mae", "mape", "mase")
# The default figure per kind: validation for the lstm; the tutorial has no held-out data,
# so its training cost is all there is (in-sample).
DEFAULT_METRIC = {"lstm": "best_val_loss", "tutorial": "final_cost"}


def metric_split(metric: str) -> str:
    """Which data a figure was measured on, for the alias's tag."""
    if metric == "final_cost":
        return "in-sample"
    return "validation" if metric in TRAIN_METRICS else "test"


def registered_name(kind: str) -> str:
    """One registered model per model kind: their figures are not comparable."""
    return f"nextclose-{kind}"


def choose_champion(figures: dict[str, Optional[float]]) -> Optional[str]:
    """The version with the lowest figure (the oldest on a tie); None when none has one."""
    scored = {v: f for v, f in figures.items() if f is not None and math.isfinite(f)}
    if not scored:
        return None
    return min(scored, key=lambda version: (scored[version], int(version)))
