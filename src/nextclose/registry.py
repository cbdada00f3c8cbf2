"""The MLflow model registry's rules: every trained model is a version of its kind's
registered model; ``@champion`` marks the one to forecast with, ``@challenger`` the newest.

``nextclose champion`` (:mod:`nextclose.commands.champion`) sets ``@challenger`` to the newest
version and moves ``@champion`` to it only when its figure is better (lower) than the
champion's, so ``models:/nextclose-lstm@champion`` changes only for a reason, which a tag
records. The figure is the served ensemble's validation loss by default, or the walk-forward
backtest's RMSE ratio; never a test-split figure: choosing on the test split would spend it,
and its figures would no longer estimate the chosen model's error.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

from nextclose.errors import UserError


class RegistryError(UserError, LookupError):
    """Nothing in the registry to choose from; the message says what to run first."""


# Where each figure lives: the training run, or the run of the pipeline execution that trained it.
TRAIN_METRICS = ("best_val_loss", "final_cost")
EXECUTION_METRICS = ("backtest_rmse_ratio",)
# The default figure per kind: validation for the lstm; the tutorial has no held-out data,
# so its training cost is all there is (in-sample).
DEFAULT_METRIC = {"lstm": "best_val_loss", "tutorial": "final_cost"}
SPLITS = {"best_val_loss": "validation", "final_cost": "in-sample", "backtest_rmse_ratio": "backtest"}


def metric_split(metric: str) -> str:
    """Which data a figure was measured on, for the alias's tag."""
    return SPLITS[metric]


def registered_name(kind: str, panel: bool = False) -> str:
    """One registered model per model kind, and one for the global models of panels: their
    figures are not comparable, and a panel's model takes bars with a symbol column."""
    return f"nextclose-{kind}" + ("-panel" if panel else "")


def _usable(figure: Optional[float]) -> bool:
    return figure is not None and math.isfinite(figure)


@dataclasses.dataclass(frozen=True)
class Decision:
    """The outcome of one challenge: who is champion now, whether that changed, and why."""

    champion: str
    moved: bool
    reason: str


def challenge(metric: str, newest: str, newest_figure: Optional[float], champion: Optional[str],
              champion_figure: Optional[float], champion_unfit: Optional[str] = None) -> Decision:
    """Does the newest version take ``@champion``? Only with a lower ``metric`` than the
    champion's (a tie keeps the champion), or when there is no champion with that figure, or
    the champion is unfit to serve (``champion_unfit`` says why)."""
    if not _usable(newest_figure):
        raise RegistryError(f"version {newest} has no {metric}"
                            + ("; run the backtest stage" if metric in EXECUTION_METRICS else ""))
    mine = f"version {newest}'s {metric} {newest_figure:.6g}"
    if champion is None:
        return Decision(newest, True, f"{mine}; there was no champion")
    if champion == newest:
        return Decision(newest, False, f"version {newest} is already the champion ({metric} {newest_figure:.6g})")
    if champion_unfit is not None:
        return Decision(newest, True, f"{mine}; champion version {champion} {champion_unfit}")
    if not _usable(champion_figure):
        return Decision(newest, True, f"{mine}; champion version {champion} has no {metric}")
    assert newest_figure is not None and champion_figure is not None
    theirs = f"champion version {champion}'s {champion_figure:.6g}"
    if newest_figure < champion_figure:
        return Decision(newest, True, f"{mine} is below {theirs}")
    return Decision(champion, False, f"{mine} is not below {theirs}")
