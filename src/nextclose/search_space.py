"""The settings the tuner searches: one table that every other place derives from.

``suggest_params``, the search space recorded in the study, the study's fingerprint,
``reports/best_params.yaml``, a trial's params and ``nextclose apply-best`` all read
:data:`SEARCHED`. Searching a fourth setting is one more row here (and its
``tune.<key>_min`` / ``_max`` params).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional


@dataclasses.dataclass(frozen=True)
class Searched:
    """One searched setting: where it lives in params.yaml and how it is drawn."""

    section: str  # params.yaml section of the value, e.g. "model"
    key: str  # its key there, also the prefix of its range params tune.<key>_min / _max
    type: type  # int or float
    log: bool = False  # drawn on a log scale
    stepped: bool = False  # drawn on a grid of tune.<key>_step (ints only)

    @property
    def name(self) -> str:
        """``section.key``: the Optuna parameter name and the MLflow param name."""
        return f"{self.section}.{self.key}"

    @property
    def range_params(self) -> tuple[str, ...]:
        """The ``tune`` keys that bound the search."""
        names = (f"{self.key}_min", f"{self.key}_max")
        return names + ((f"{self.key}_step",) if self.stepped else ())

    def bounds(self, tune: object) -> dict[str, Any]:
        """``{"low", "high", and "log" or "step"}`` from the tune section."""
        low, high = getattr(tune, f"{self.key}_min"), getattr(tune, f"{self.key}_max")
        bounds: dict[str, Any] = {"low": low, "high": high}
        if self.stepped:
            bounds["step"] = getattr(tune, f"{self.key}_step")
        else:
            bounds["log"] = self.log
        return bounds

    def suggest(self, trial: Any, tune: object) -> Any:
        """Draw this setting from an Optuna trial."""
        suggest = trial.suggest_int if self.type is int else trial.suggest_float
        return suggest(self.name, **self.bounds(tune))

    def holds(self, value: Any, tune: object) -> bool:
        """Whether the search can draw ``value``: within the range, and on the grid if stepped."""
        bounds = self.bounds(tune)
        if not bounds["low"] <= value <= bounds["high"]:
            return False
        return not self.stepped or (value - bounds["low"]) % bounds["step"] == 0

    def coerce(self, value: object, where: Optional[str] = None) -> Any:
        """``value`` as this setting's type (a trial's value, a YAML number)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where or self.name}: expected a number, got {value!r}")
        return self.type(value)


SEARCHED: tuple[Searched, ...] = (
    Searched("model", "hidden_units", int, log=True),
    Searched("train", "learning_rate", float, log=True),
    Searched("train", "steps", int, stepped=True),
)
