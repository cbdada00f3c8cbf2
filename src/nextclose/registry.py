"""The MLflow model registry's rules: every trained model is a version of its kind's
registered model; ``@champion`` marks the one to forecast with, ``@challenger`` the newest.

``nextclose champion`` (:mod:`nextclose.commands.champion`) sets ``@challenger`` to the newest
version and moves ``@champion`` to it only when its figure is better than the champion's
(lower, or higher for a figure where higher is better: :data:`METRICS`), so
``models:/nextclose-lstm@champion`` changes only for a reason, which a tag records. The figure
is the served ensemble's validation loss by default, the walk-forward backtest's RMSE ratio, or
for a panel's models the backtest's Rank IC mean; never a test-split figure: choosing on the
test split would spend it, and its figures would no longer estimate the chosen model's error.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

from nextclose.errors import UserError


class RegistryError(UserError, LookupError):
    """Nothing in the registry to choose from; the message says what to run first."""


@dataclasses.dataclass(frozen=True)
class Metric:
    """A figure a champion can be chosen on."""

    name: str
    run: str  # where it is logged: "train", the training run; "execution", the run of the
    # pipeline execution that trained the version (the backtest stage logs there)
    split: str  # the data it was measured on, for the alias's tag
    better: str  # "min": lower is better; "max": higher is better
    panel_only: bool = False  # a figure across symbols: one series has none


METRICS = (
    Metric("best_val_loss", "train", "validation", "min"),
    Metric("final_cost", "train", "in-sample", "min"),
    Metric("backtest_rmse_ratio", "execution", "backtest", "min"),
    Metric("backtest_rank_ic", "execution", "backtest", "max", panel_only=True),  # the daily Rank IC's mean
)
BY_NAME = {metric.name: metric for metric in METRICS}
TRAIN_METRICS = tuple(metric.name for metric in METRICS if metric.run == "train")
EXECUTION_METRICS = tuple(metric.name for metric in METRICS if metric.run == "execution")
PANEL_METRICS = tuple(metric.name for metric in METRICS if metric.panel_only)
SPLITS = {metric.name: metric.split for metric in METRICS}
DIRECTIONS = {metric.name: metric.better for metric in METRICS}
# The default figure per kind: validation for the lstm; the tutorial has no held-out data,
# so its training cost is all there is (in-sample).
DEFAULT_METRIC = {"lstm": "best_val_loss", "tutorial": "final_cost"}


def metric_split(metric: str) -> str:
    """Which data a figure was measured on, for the alias's tag."""
    return SPLITS[metric]


def better_word(metric: str) -> str:
    """Which way ``metric`` is better, in a word: "lower" or "higher"."""
    return "higher" if DIRECTIONS[metric] == "max" else "lower"


def is_better(metric: str, figure: float, than: float) -> bool:
    """Whether ``figure`` beats ``than`` on ``metric`` (strictly: a tie is not better)."""
    return figure > than if DIRECTIONS[metric] == "max" else figure < than


def check_metric(metric: str, panel: bool) -> None:
    """Refuse a figure the registered model cannot have: a panel's figure for one series' models."""
    if metric not in BY_NAME:
        raise UserError(f"--metric {metric}: not one of {', '.join(BY_NAME)}")
    if BY_NAME[metric].panel_only and not panel:
        raise UserError(f"--metric {metric}: only for the global models of panels (--panel): "
                        f"one series has no cross-section to rank")


def missing_hint(metric: str) -> str:
    """What to run for a version to have ``metric``."""
    if BY_NAME[metric].panel_only:
        return "; run the backtest stage on a panel of at least two symbols"
    return "; run the backtest stage" if metric in EXECUTION_METRICS else ""


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
    """Does the newest version take ``@champion``? Only with a better ``metric`` than the
    champion's (lower, or higher where higher is better; a tie keeps the champion), or when
    there is no champion with that figure, or the champion is unfit to serve
    (``champion_unfit`` says why)."""
    if not _usable(newest_figure):
        raise RegistryError(f"version {newest} has no {metric}{missing_hint(metric)}")
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
    theirs = f"champion version {champion}'s {champion_figure:.6g} ({better_word(metric)} is better)"
    compared = "above" if DIRECTIONS[metric] == "max" else "below"
    if is_better(metric, newest_figure, champion_figure):
        return Decision(newest, True, f"{mine} is {compared} {theirs}")
    return Decision(champion, False, f"{mine} is not {compared} {theirs}")
