"""One typed, frozen view of ``params.yaml``.

Every section of the file is a frozen dataclass; :func:`load_params` builds them
and refuses an unknown key, a missing key or a wrong type or value with a
:class:`ParamsError` naming the key and the file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import types
import typing
from pathlib import Path
from typing import Literal, Optional

import yaml

from nextclose import redaction, symbols
from nextclose.errors import UserError
from nextclose.search_space import SEARCHED


class ParamsError(UserError, ValueError):
    """A params file that cannot be used; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class BaseParams:
    seed: int


@dataclasses.dataclass(frozen=True)
class DataParams:
    source: Literal["msft", "csv", "sp500", "panel_csv", "jqdata", "akshare", "baostock",
                    "akshare_constituents", "baostock_constituents"]
    path: Optional[str]
    symbol: str
    start: Optional[str]
    end: Optional[str]
    columns: Optional[dict[str, str]]

    @property
    def start_date(self) -> Optional[dt.date]:
        return None if self.start is None else dt.date.fromisoformat(self.start)

    @property
    def end_date(self) -> Optional[dt.date]:
        return None if self.end is None else dt.date.fromisoformat(self.end)


# An index's stocks from the network, each a member of the index or not on each day (point in time).
CONSTITUENT_SOURCES = ("akshare_constituents", "baostock_constituents")
# Sources of many symbols: one global model is trained across them.
PANEL_SOURCES = ("sp500", "panel_csv") + CONSTITUENT_SOURCES


@dataclasses.dataclass(frozen=True)
class SplitParams:
    validation_fraction: float
    test_fraction: float
    validation_start: Optional[str]
    test_start: Optional[str]


@dataclasses.dataclass(frozen=True)
class FeatureParams:
    window: int
    volume: bool


# What `null` means for model.hidden_units, train.learning_rate and train.steps,
# per model kind: the tutorial kind follows the tutorial (128 units, Adam 0.1, 30000 steps).
KIND_DEFAULTS = {
    "lstm": {"hidden_units": 32, "learning_rate": 1e-3, "steps": 3000},
    "tutorial": {"hidden_units": 128, "learning_rate": 0.1, "steps": 30000},
}
# Old names of model kinds, refused with the new name: "seed" read like a random seed.
RENAMED_KINDS = {"seed": "tutorial"}


@dataclasses.dataclass(frozen=True)
class ModelParams:
    kind: Literal["lstm", "tutorial"]
    hidden_units: int
    layers: int
    dropout: float


@dataclasses.dataclass(frozen=True)
class TrainParams:
    seeds: int  # members trained together; member i uses base.seed + i
    learning_rate: float
    steps: int
    batch_size: int
    eval_every: int
    patience: Optional[int]
    steps_per_call: int
    log_every: int


@dataclasses.dataclass(frozen=True)
class EvaluateParams:
    arima: bool
    arima_max_p: int
    arima_max_q: int
    interval: float  # nominal coverage of the conformal prediction intervals
    block_length: int  # days per block of the moving-block bootstrap
    bootstrap_draws: int  # resamples of the bootstrap
    # The cross-section of a panel (nextclose.cross_section); defaults let tests build the section.
    top_k: Optional[int] = None  # long-short: symbols long and as many short each day; null: a fifth
    cost_bps: float = 10.0  # basis points per unit of turnover
    hac_lags: Optional[int] = None  # Newey-West lags of the IC t-statistics; null: Newey-West's rule


@dataclasses.dataclass(frozen=True)
class BacktestParams:
    days: Optional[int]  # forecast days at the end of the data; null: the test split's length
    folds: int  # consecutive folds, each with models trained on everything before it
    validation_days: Optional[int]  # early-stopping slice before each fold; null: the validation split's length


@dataclasses.dataclass(frozen=True)
class TuneParams:
    study_name: str
    # val_loss: the served ensemble's validation loss, minimised; rank_ic: the mean daily Rank IC of
    # its validation forecasts across symbols, maximised (a panel of 2 or more symbols only)
    objective: Literal["val_loss", "rank_ic"]
    # each trial is scored on the last cv_folds blocks (a validation split's length each) of the
    # training and validation period, trained on every sample before each: the mean of the blocks
    cv_folds: int
    # first, a trial of the lstm kind's defaults, unless the study holds one: the best is then
    # never worse on the folds than the defaults
    baseline_trial: bool
    storage: Optional[str]
    n_trials: int
    timeout: Optional[float]
    seed: int
    pruner: Literal["median", "hyperband", "none"]
    hidden_units_min: int
    hidden_units_max: int
    learning_rate_min: float
    learning_rate_max: float
    steps_min: int
    steps_max: int
    steps_step: int


@dataclasses.dataclass(frozen=True)
class Params:
    base: BaseParams
    data: DataParams
    split: SplitParams
    features: FeatureParams
    model: ModelParams
    train: TrainParams
    evaluate: EvaluateParams
    backtest: BacktestParams
    tune: TuneParams

    def as_flat_dict(self) -> dict[str, object]:
        """``{"section.key": value}`` for logging, e.g. to MLflow."""
        flat: dict[str, object] = {}
        for section in dataclasses.fields(self):
            for key, value in dataclasses.asdict(getattr(self, section.name)).items():
                flat[f"{section.name}.{key}"] = value
        return flat

    def section_dict(self, *sections: str) -> dict[str, object]:
        """The flat ``section.key`` params of the given sections only."""
        return {k: v for k, v in self.as_flat_dict().items() if k.split(".")[0] in sections}


def _check_value(value: object, annotation: object, where: str) -> object:
    """Return ``value`` converted to ``annotation`` or raise ``ParamsError(where)``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _check_value(value, inner, where)
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ParamsError(f"{where}: {value!r} is not one of {choices}")
        return value
    if origin is dict:
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise ParamsError(f"{where}: expected a mapping of names to names, got {value!r}")
        return dict(value)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):  # YAML reads .nan and .inf as floats
            raise ParamsError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if annotation is str:
        if isinstance(value, dt.date):  # YAML reads an unquoted 2018-01-02 as a date
            return value.isoformat()
        if not isinstance(value, str):
            raise ParamsError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {annotation!r}")  # a bug here, not in the file


def _build_section(cls: type, raw: object, where: str) -> object:
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ParamsError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(names)})")
    values = {}
    for name in names:
        if name not in raw:
            raise ParamsError(f"{where}.{name}: missing key")
        values[name] = _check_value(raw[name], hints[name], f"{where}.{name}")
    return cls(**values)


def _resolve_kind_defaults(sections: dict[str, dict], file: str) -> None:
    """Replace null hidden_units / learning_rate / steps with the model kind's default."""
    kind = sections["model"].get("kind")
    if isinstance(kind, str) and kind in RENAMED_KINDS:
        raise ParamsError(
            f"{file}: model.kind: {kind!r} was renamed {RENAMED_KINDS[kind]!r}; "
            f"write kind: {RENAMED_KINDS[kind]}"
        )
    defaults = KIND_DEFAULTS.get(kind) if isinstance(kind, str) else None
    if defaults is None:
        return  # the Literal check reports the bad kind
    for section, key in (("model", "hidden_units"), ("train", "learning_rate"), ("train", "steps")):
        if key in sections[section] and sections[section][key] is None:
            sections[section][key] = defaults[key]


def _resolve_symbol(sections: dict[str, dict], file: str) -> None:
    """Accept an unquoted six-digit code such as 399001, which YAML reads as a number.

    An unquoted 000300 is another matter: YAML reads it as the octal number 192.
    """
    symbol = sections["data"].get("symbol")
    if isinstance(symbol, int) and not isinstance(symbol, bool):
        if not 100000 <= symbol <= 999999:
            raise ParamsError(
                f"{file}: data.symbol: {symbol} is not a six-digit index code; quote it, "
                f'e.g. "000300" (YAML reads an unquoted 000300 as the octal number 192)'
            )
        sections["data"]["symbol"] = str(symbol)


# Dates pandas can hold (its nanosecond timestamps end in April 2262), with room to spare.
EARLIEST_DATE, LATEST_DATE = dt.date(1900, 1, 1), dt.date(2200, 12, 31)
# numpy's seeds are unsigned 32-bit integers.
MAX_SEED = 2**32 - 1
MAX_CV_FOLDS = 10  # tune.cv_folds: each fold is a full training run per trial
# Members of one ensemble: each adds its weights to the one compiled graph.
MAX_MEMBERS = 64


def _iso_date(value: Optional[str], key: str, file: str) -> None:
    if value is None:
        return
    # Python 3.11 also reads 20200103 and 2020-W01-5 as ISO dates; NumPy, which the split
    # hands them to, would read the first as the year 20200103. Only YYYY-MM-DD is accepted.
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(value)
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise ParamsError(f"{file}: {key}: {value!r} is not an ISO date (YYYY-MM-DD)") from None
    if not EARLIEST_DATE <= day <= LATEST_DATE:
        raise ParamsError(f"{file}: {key}: {value} is outside {EARLIEST_DATE} .. {LATEST_DATE}")


# A password in params.yaml would be committed, pushed and copied into every experiment: refused.
CREDENTIALS_ADVICE = {
    "tune.storage": "holds a password, which does not belong in a file that git tracks: put the whole URL "
                    "in OPTUNA_STORAGE (it overrides tune.storage), or leave the password out of the URL and "
                    "put it in a .pgpass file (~/.pgpass or PGPASSFILE, for PostgreSQL)",
}


def _check_ranges(params: Params, file: str) -> None:
    """The rules between and within values that types alone cannot say."""

    def fail(key: str, rule: str) -> None:
        raise ParamsError(f"{file}: {key}: {rule}")

    for key, value in params.as_flat_dict().items():
        if isinstance(value, str) and redaction.password_in_url(value) is not None:
            fail(key, CREDENTIALS_ADVICE.get(key, "holds a URL with a password, which does not belong in a file "
                                                  "that git tracks: give it in the environment"))
    if not 0 <= params.base.seed <= MAX_SEED:
        fail("base.seed", f"must lie in 0 .. {MAX_SEED} (2**32 - 1)")
    for key in ("start", "end"):
        _iso_date(getattr(params.data, key), f"data.{key}", file)
    if params.data.start and params.data.end and params.data.start > params.data.end:
        fail("data.end", f"{params.data.end} is before data.start {params.data.start}")
    if params.data.source in ("csv", "panel_csv") and not params.data.path:
        fail("data.path", "required when data.source is csv or panel_csv")
    if params.data.source in ("jqdata", "akshare", "baostock"):
        try:
            symbols.parse_symbol(params.data.symbol)
        except symbols.SymbolError as error:
            fail("data.symbol", str(error))
    if params.data.source in CONSTITUENT_SOURCES:
        try:
            symbols.constituent_index(params.data.symbol)
        except symbols.SymbolError as error:
            fail("data.symbol", str(error))
        if params.data.start is None:  # null would mean every member since the index began, ~1000 stocks
            fail("data.start", f"required when data.source is {params.data.source}: every stock that was a member "
                               f"of the index between data.start and data.end is fetched, one call each (null would "
                               f"reach back to the index's launch, 2005 for the CSI 300: about 1000 stocks); give "
                               f"an ISO date, e.g. \"2018-01-01\"")
    if params.data.columns is not None:
        allowed = {"date", "symbol", "open", "high", "low", "close", "volume"}  # symbol: panel_csv
        bad = sorted(set(params.data.columns) - allowed)
        if bad:
            fail(f"data.columns.{bad[0]}", f"unknown field (known: {', '.join(sorted(allowed))})")
    split = params.split
    for key in ("validation_fraction", "test_fraction"):
        if not 0.0 < getattr(split, key) < 1.0:
            fail(f"split.{key}", "must lie strictly between 0 and 1")
    if split.validation_fraction + split.test_fraction >= 1.0:
        fail("split.test_fraction", "validation_fraction + test_fraction must be below 1")
    if (split.validation_start is None) != (split.test_start is None):
        fail("split.test_start", "give both validation_start and test_start, or neither")
    for key in ("validation_start", "test_start"):
        _iso_date(getattr(split, key), f"split.{key}", file)
    if split.validation_start and split.test_start and split.validation_start >= split.test_start:
        fail("split.test_start", "must come after split.validation_start")
    if params.features.window < 2:
        fail("features.window", "must be at least 2")
    if params.model.hidden_units < 1:
        fail("model.hidden_units", "must be at least 1")
    if params.model.kind == "tutorial" and params.data.source in PANEL_SOURCES:
        fail("model.kind", f"tutorial reads one series (the tutorial's index), but data.source "
                           f"{params.data.source} is a panel of symbols: use model.kind lstm")
    if params.model.layers < 1:
        fail("model.layers", "must be at least 1")
    if not 0.0 <= params.model.dropout < 1.0:
        fail("model.dropout", "must lie in [0, 1)")
    if not 1 <= params.train.seeds <= MAX_MEMBERS:
        fail("train.seeds", f"must lie in 1 .. {MAX_MEMBERS}")
    if params.base.seed + params.train.seeds - 1 > MAX_SEED:
        fail("train.seeds", f"base.seed + train.seeds - 1 must not pass {MAX_SEED} (member i uses base.seed + i)")
    if params.train.learning_rate <= 0:
        fail("train.learning_rate", "must be positive")
    for key in ("steps", "batch_size", "eval_every", "steps_per_call", "log_every"):
        if getattr(params.train, key) < 1:
            fail(f"train.{key}", "must be at least 1")
    if params.train.patience is not None and params.train.patience < 1:
        fail("train.patience", "must be at least 1 or null")
    for key in ("arima_max_p", "arima_max_q"):
        if getattr(params.evaluate, key) < 0:
            fail(f"evaluate.{key}", "must be at least 0")
    if not 0.0 < params.evaluate.interval < 1.0:
        fail("evaluate.interval", "must lie strictly between 0 and 1")
    for key in ("block_length", "bootstrap_draws"):
        if getattr(params.evaluate, key) < 1:
            fail(f"evaluate.{key}", "must be at least 1")
    backtest = params.backtest
    if backtest.folds < 1:
        fail("backtest.folds", "must be at least 1")
    if backtest.days is not None and backtest.days < backtest.folds:
        fail("backtest.days", f"must be at least backtest.folds ({backtest.folds}) or null")
    # split conformal at level c needs c / (1 - c) calibration days
    needed = math.ceil(params.evaluate.interval / (1.0 - params.evaluate.interval))
    if backtest.validation_days is not None and backtest.validation_days < max(needed, 5):
        fail("backtest.validation_days", f"must be at least {max(needed, 5)} (early stopping, and the "
             f"conformal interval at evaluate.interval={params.evaluate.interval:g}) or null")
    if params.evaluate.top_k is not None and params.evaluate.top_k < 1:
        fail("evaluate.top_k", "must be at least 1 or null")
    if not 0.0 <= params.evaluate.cost_bps < 10_000.0:
        fail("evaluate.cost_bps", "must lie in 0 .. 10000 (basis points)")
    if params.evaluate.hac_lags is not None and params.evaluate.hac_lags < 0:
        fail("evaluate.hac_lags", "must be at least 0 or null")
    tune = params.tune
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", tune.study_name):
        fail("tune.study_name", "use letters, digits, '.', '_' and '-' only")
    if tune.n_trials < 1:
        fail("tune.n_trials", "must be at least 1")
    if not 1 <= tune.cv_folds <= MAX_CV_FOLDS:
        fail("tune.cv_folds", f"must lie in 1 .. {MAX_CV_FOLDS}")
    if not 0 <= tune.seed <= MAX_SEED:
        fail("tune.seed", f"must lie in 0 .. {MAX_SEED} (2**32 - 1)")
    if tune.timeout is not None and tune.timeout <= 0:
        fail("tune.timeout", "must be positive or null")
    for searched in SEARCHED:
        bounds = searched.bounds(tune)
        if bounds["low"] <= 0:
            fail(f"tune.{searched.key}_min", "must be positive")
        if bounds["high"] < bounds["low"]:
            fail(f"tune.{searched.key}_max", f"must not be below tune.{searched.key}_min")
        step = bounds.get("step")
        if step is not None and (step < 1 or (bounds["high"] - bounds["low"]) % step):
            fail(f"tune.{searched.key}_step",
                 f"must be at least 1 and divide {searched.key}_max - {searched.key}_min")


def parse_params(raw: object, file: str = "params.yaml") -> Params:
    """Build the typed view from an already-parsed YAML document."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{file}: expected a mapping of sections at the top level")
    names = [f.name for f in dataclasses.fields(Params)]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ParamsError(f"{file}: {unknown[0]}: unknown section (known: {', '.join(names)})")
    sections = {}
    for name in names:
        if name not in raw:
            raise ParamsError(f"{file}: {name}: missing section")
        if not isinstance(raw[name], dict):
            raise ParamsError(f"{file}: {name}: expected a mapping, got {raw[name]!r}")
        sections[name] = dict(raw[name])
    _resolve_kind_defaults(sections, file)
    _resolve_symbol(sections, file)
    hints = typing.get_type_hints(Params)
    try:
        built = {name: _build_section(hints[name], sections[name], name) for name in names}
    except ParamsError as error:
        raise ParamsError(f"{file}: {error}") from None
    params = Params(**built)  # type: ignore[arg-type]
    _check_ranges(params, file)
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and check a params file; errors name the file and the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except _RepeatedKey as error:
        raise ParamsError(f"{path}: {error}") from None
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {error}") from None
    return parse_params(raw, str(path))


class _RepeatedKey(yaml.YAMLError):
    def __init__(self, key: object, first_line: int, line: int):
        super().__init__(f"line {line}: key {key!r} is given twice (first on line {first_line}); give it once")


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise _RepeatedKey(key, seen[key], key_node.start_mark.line + 1)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)
