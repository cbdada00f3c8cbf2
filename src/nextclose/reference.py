"""The docs site's Reference pages, rendered from what they describe so they cannot drift.

- ``reference/params.md``: every key of ``params.yaml``, from the :mod:`nextclose.params`
  dataclasses (the keys and their types), the committed file (the defaults, and the trailing
  comments, which are the descriptions users already read there) and the loader (the rules it
  checks, found by probing :func:`nextclose.params.parse_params` with out-of-range values).
- ``reference/cli.md``: every ``nextclose`` command and option, from the argparse parser.
- ``reference/reports.md``: every file the stages write into ``reports/`` (:data:`nextclose.layout.OUTPUTS`),
  with the keys of the committed files (``reports/``, and a panel's run in ``bench/results/sp500/``),
  described once in :data:`REPORTS`: a new key has no description there until someone writes one
  (tests/test_docs_site.py fails until then).

Pure functions of texts, parsers and directories; the MkDocs hook (docs/hooks.py) calls
:func:`pages` at build time.
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import io
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Literal, Optional

import yaml

from nextclose import params as params_module

GENERATED_NOTE = ("<!-- Generated at build time by docs/hooks.py from {source} (nextclose.reference): "
                  "edit those, not this page. -->\n")

# --- params.yaml -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CommentedKey:
    """One key of params.yaml as the file writes it."""

    value: str  # the value's text, as committed
    comment: str  # its trailing comment and the comment-only lines continuing it, joined


@dataclasses.dataclass(frozen=True)
class CommentedFile:
    header: str  # the comment lines before the first section
    sections: dict[str, str]  # section -> its trailing comment
    keys: dict[tuple[str, str], CommentedKey]


def _split_comment(line: str) -> tuple[str, str]:
    """``(code, comment)`` of one YAML line: the comment starts at the first ``#`` outside quotes
    that follows a space (YAML's rule: ``a#b`` is text)."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip(), line[index + 1:].strip()
    return line.rstrip(), ""


def read_comments(text: str) -> CommentedFile:
    """The comments of a two-level YAML file like params.yaml: each key's trailing comment, joined
    with the comment-only lines below it that are indented deeper than the key (its
    continuation); each section's trailing comment; the header before the first section."""
    header: list[str] = []
    sections: dict[str, list[str]] = {}
    keys: dict[tuple[str, str], tuple[str, list[str]]] = {}
    section: Optional[str] = None
    continuing: Optional[list[str]] = None  # the comment a comment-only line would continue
    continuing_indent = 0
    for line in text.splitlines():
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if not stripped:
            continuing = None
            continue
        code, comment = _split_comment(line)
        if not code:  # a comment-only line
            if section is None:
                header.append(comment)
            elif continuing is not None and indent > continuing_indent:
                continuing.append(comment)
            continue
        name, _, value = code.strip().partition(":")
        if indent == 0:
            section = name
            sections[section] = [comment] if comment else []
            continuing, continuing_indent = sections[section], 0
        elif section is not None:
            parts = [comment] if comment else []
            keys[(section, name)] = (value.strip(), parts)
            continuing, continuing_indent = parts, indent
    return CommentedFile(
        " ".join(header),
        {name: " ".join(parts) for name, parts in sections.items()},
        {key: CommentedKey(value, " ".join(parts)) for key, (value, parts) in keys.items()},
    )


def describe_type(annotation: object) -> str:
    """A params type in the file's words: ``integer or null``, ``one of `lstm`, `tutorial```."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [arg for arg in args if arg is not type(None)]
        return " or ".join(describe_type(arg) for arg in inner) + (" or null" if type(None) in args else "")
    if origin is Literal:
        return "one of " + ", ".join(f"`{choice}`" for choice in args)
    if origin is dict:
        return "a mapping of names to names"
    names = {bool: "true or false", int: "integer", float: "number", str: "text"}
    if annotation in names:
        return names[annotation]
    raise TypeError(f"no words for the params type {annotation!r}")


@dataclasses.dataclass(frozen=True)
class ParamDoc:
    section: str
    key: str
    type: str
    default: str  # as committed in params.yaml
    description: str
    rules: tuple[str, ...]  # what the loader refuses, in its own words

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"

    @property
    def anchor(self) -> str:
        return param_anchor(self.section, self.key)


def param_anchor(section: str, key: str = "") -> str:
    """The anchor of a key on the params page: ``train-steps`` (``train`` for the section)."""
    return f"{section}-{key}" if key else section


# Values that break the usual rules of each type, tried one key at a time on the committed file.
PROBES: dict[object, tuple[object, ...]] = {
    int: (-1, 0, 1, 2, 10**12),
    float: (-1.0, 0.0, 1.0, 1e12),
}


def probe_rules(raw: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """The loader's rules on each numeric key, in its own words: each key set in turn to values
    that break the usual rules (negative, zero, one, huge) in an otherwise committed file, and
    the messages of :class:`nextclose.params.ParamsError` that name that key kept."""
    hints = {section: typing.get_type_hints(cls)
             for section, cls in typing.get_type_hints(params_module.Params).items()}
    rules: dict[str, list[str]] = {}
    for section, fields in hints.items():
        for key, annotation in fields.items():
            base = next((arg for arg in typing.get_args(annotation) if arg is not type(None)), annotation)
            for value in PROBES.get(base, ()):
                changed = copy.deepcopy(raw)
                changed[section][key] = value
                try:
                    params_module.parse_params(changed, "params.yaml")
                except params_module.ParamsError as error:
                    prefix = f"params.yaml: {section}.{key}: "
                    message = str(error)
                    found = rules.setdefault(f"{section}.{key}", [])
                    if message.startswith(prefix) and message[len(prefix):] not in found:
                        found.append(message[len(prefix):])
    return {name: tuple(found) for name, found in rules.items() if found}


# Keys whose null the loader replaces with the model kind's default.
KIND_DEFAULTED = frozenset(key for defaults in params_module.KIND_DEFAULTS.values() for key in defaults)


def param_docs(params_text: str) -> list[tuple[str, str, list[ParamDoc]]]:
    """``[(section, its description, its keys)]`` in the dataclasses' order."""
    comments = read_comments(params_text)
    raw = yaml.safe_load(params_text)
    rules = probe_rules(raw)
    sections = []
    section_types = typing.get_type_hints(params_module.Params)
    for section_field in dataclasses.fields(params_module.Params):
        section = section_field.name
        hints = typing.get_type_hints(section_types[section])
        docs = []
        for field in dataclasses.fields(section_types[section]):
            written = comments.keys.get((section, field.name), CommentedKey("", ""))
            kind_type = describe_type(hints[field.name])
            if field.name in KIND_DEFAULTED:  # null: the model kind's default (params._resolve_kind_defaults)
                kind_type += " or null (the model kind's default: " + ", ".join(
                    f"{kind} {defaults[field.name]:g}" for kind, defaults in params_module.KIND_DEFAULTS.items()) + ")"
            docs.append(ParamDoc(section, field.name, kind_type, written.value,
                                 written.comment, rules.get(f"{section}.{field.name}", ())))
        sections.append((section, comments.sections.get(section, ""), docs))
    return sections


def _escape(text: str) -> str:
    """Plain text for Markdown: no emphasis, no HTML, no table breaks."""
    return re.sub(r"([\\*<>|\[\]])", r"\\\1", text)


def _link_keys(text: str, names: Iterable[str], page: str = "") -> str:
    """Escaped ``text`` with every params key it names linked to its entry."""
    known = sorted(names, key=len, reverse=True)
    if not known:
        return _escape(text)
    pattern = re.compile(r"(?<![\w.])(" + "|".join(re.escape(name) for name in known) + r")(?![\w])")
    out, last = [], 0
    for match in pattern.finditer(text):
        section, _, key = match.group(1).partition(".")
        out += [_escape(text[last:match.start()]), f"[`{match.group(1)}`]({page}#{param_anchor(section, key)})"]
        last = match.end()
    return "".join(out + [_escape(text[last:])])


def render_params(params_text: str) -> str:
    """The params reference page."""
    sections = param_docs(params_text)
    names = [doc.name for _, _, docs in sections for doc in docs]
    comments = read_comments(params_text)
    lines = [GENERATED_NOTE.format(source="params.yaml and src/nextclose/params.py"),
             "# params.yaml", "",
             _escape(comments.header), "",
             "Every key, its type, the value committed in `params.yaml`, what it means (the comment "
             "beside it in the file) and what the loader refuses. A run reads the whole file and stops "
             "with an error naming the key and the file when a key is unknown or missing, or a value "
             "has the wrong type or breaks a rule below (the rules are the loader's messages). Set a key for "
             "one experiment with `dvc exp run -S section.key=value`.", ""]
    for section, description, docs in sections:
        lines += [f"## `{section}` {{#{param_anchor(section)}}}", ""]
        if description:
            lines += [_link_keys(description, names), ""]
        for doc in docs:
            lines += [f"### `{doc.name}` {{#{doc.anchor}}}", "", _link_keys(doc.description, names), "",
                      f"- Type: {doc.type}", f"- Default: `{doc.default}`"]
            lines += [f"- Rule: {_link_keys(rule, names)}" for rule in doc.rules]
            lines.append("")
    return "\n".join(lines)


# --- the nextclose command ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OptionDoc:
    flags: str  # "--params PATH"
    help: str
    default: Optional[str]
    choices: tuple[str, ...]
    excludes: tuple[str, ...]  # options it cannot be combined with


@dataclasses.dataclass(frozen=True)
class CommandDoc:
    name: str
    summary: str  # the help in the command list
    description: str  # the longer text of `nextclose NAME --help`
    usage: str
    options: tuple[OptionDoc, ...]


USAGE_WIDTH = 100  # a fixed width, so the page does not depend on the terminal that built it


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    # argparse has no public way to list sub-commands: its actions are the only record.
    (commands,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return commands


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=USAGE_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _flags(action: argparse.Action) -> str:
    flags = ", ".join(action.option_strings)
    if action.nargs == 0:
        return flags
    return f"{flags} {action.metavar or action.dest.upper()}"


def command_docs(parser: argparse.ArgumentParser) -> list[CommandDoc]:
    """Every sub-command of ``parser`` with its options (``--help`` left out)."""
    commands = _subcommands(parser)
    summaries = {choice.dest: choice.help or "" for choice in commands._choices_actions}
    docs = []
    for name, command in commands.choices.items():
        formatter = command._get_formatter()
        options = []
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            excludes = tuple(
                other.option_strings[0] for group in command._mutually_exclusive_groups
                if action in group._group_actions for other in group._group_actions if other is not action)
            default = None
            if action.default not in (None, False, argparse.SUPPRESS):
                default = str(action.default)
            options.append(OptionDoc(_flags(action), formatter._expand_help(action) if action.help else "",
                                     default, tuple(str(choice) for choice in action.choices or ()), excludes))
        docs.append(CommandDoc(name, summaries.get(name, ""), command.description or "", _usage(command),
                               tuple(options)))
    return docs


def command_anchor(name: str) -> str:
    """The anchor of a command on the CLI page: ``tune``, ``apply-best``."""
    return name


def _sentence(text: str) -> str:
    return text if not text or text.endswith((".", ")")) else text + "."


def params_names() -> list[str]:
    """Every ``section.key`` of params.yaml."""
    return [f"{section}.{key}" for section, cls in typing.get_type_hints(params_module.Params).items()
            for key in typing.get_type_hints(cls)]


def render_cli(parser: argparse.ArgumentParser) -> str:
    """The CLI reference page."""
    docs = command_docs(parser)
    names = params_names()
    lines = [GENERATED_NOTE.format(source="the parser in src/nextclose/cli.py"),
             f"# The `{parser.prog}` command", "", _escape(parser.description or ""), "",
             f"`{parser.prog} COMMAND --help` prints the same text. The stages (prepare, train, evaluate, "
             f"backtest, tune) are what `dvc repro` runs, as `dvc.yaml` says; run alone, a stage reads "
             f"the outputs of the ones before it.", "",
             "| Command | What it does |", "| --- | --- |"]
    lines += [f"| [`{doc.name}`](#{command_anchor(doc.name)}) | {_escape(doc.summary)} |" for doc in docs]
    lines.append("")
    for doc in docs:
        lines += [f"## `{parser.prog} {doc.name}` {{#{command_anchor(doc.name)}}}", "",
                  _link_keys(_sentence(doc.description or doc.summary), names, "params.md"), "",
                  "```text", doc.usage, "```", "",
                  "| Option | Default | What it does |", "| --- | --- | --- |"]
        for option in doc.options:
            text = _link_keys(_sentence(option.help), names, "params.md")
            if option.choices:
                text += " One of " + ", ".join(f"`{choice}`" for choice in option.choices) + "."
            if option.excludes:
                text += " Not with " + ", ".join(f"`{flag}`" for flag in option.excludes) + "."
            default = f"`{option.default}`" if option.default is not None else ""
            lines.append(f"| `{option.flags}` | {default} | {text} |")
        lines.append("")
    return "\n".join(lines)


# --- reports/ ----------------------------------------------------------------------------------

# Sibling objects that differ only by a name (a baseline, a figure, a symbol) are one entry,
# ``baselines.<baseline>.rmse``, whatever names a run gives them.
PLACEHOLDERS = {"baselines": "<baseline>", "seeds": "<figure>", "per_symbol": "<symbol>"}


def document_keys(document: Any, prefix: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """The dotted keys of a JSON or YAML document, ``{key: names its placeholders stood for}``:
    nested objects give ``a.b``, lists of objects ``folds[].start``, the named children of
    :data:`PLACEHOLDERS` ``baselines.<baseline>.rmse``. A null that another run gives as an
    object (``seeds.rank_ic_mean``) is kept beside that object's keys."""
    keys: dict[str, list[str]] = {}

    def add(path: tuple[str, ...], names: list[str]) -> None:
        seen = keys.setdefault(".".join(path), [])
        seen += [name for name in names if name not in seen]

    def walk(node: Any, path: tuple[str, ...], names: list[str]) -> None:
        if isinstance(node, dict) and node:
            placeholder = PLACEHOLDERS.get(path[-1]) if path else None
            for name, value in node.items():
                if placeholder and isinstance(value, dict):
                    walk(value, path + (placeholder,), names + [f"{placeholder}: {name}"])
                else:
                    walk(value, path + (str(name),), names)
        elif isinstance(node, list) and node and all(isinstance(item, dict) for item in node):
            for item in node:
                walk(item, path[:-1] + (path[-1] + "[]",), names)
        else:
            add(path, names)

    walk(document, prefix, [])
    return keys


def csv_keys(text: str) -> dict[str, list[str]]:
    """A CSV file's columns; numbered ones (``member3_loss``) as one ``member<i>_loss``."""
    header = next(csv.reader(io.StringIO(text)), [])
    keys: dict[str, list[str]] = {}
    for column in header:
        keys.setdefault(re.sub(r"\d+", "<i>", column), []).extend(
            f"<i>: {number}" for number in re.findall(r"\d+", column))
    return keys


def file_keys(path: Path) -> dict[str, list[str]]:
    """The keys of one committed report file (JSON, YAML or CSV)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".csv":
        return csv_keys(text)
    document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return document_keys(document)


@dataclasses.dataclass(frozen=True)
class Report:
    description: str
    keys: dict[str, str]  # dotted key (or its last parts) -> what it holds


# What the figures of one forecaster over some days are (metrics.json, backtest.json's pooled,
# each baseline's).
FIGURES = {
    "n": "days scored (on a panel: symbol-days)",
    "rmse": "root mean squared error of the forecast close, in price units",
    "mae": "mean absolute error of the forecast close, in price units",
    "mape": "mean absolute percentage error, in percent (1.0 is 1 %)",
    "mase": "mean absolute scaled error on log prices: the mean absolute log error over the mean absolute "
            "daily log change of the training closes (below 1: better than persistence was in training)",
    "directional_accuracy": "share of days whose up / not-up call matched the real move",
    "direction_p_value": "one-sided binomial p-value of that many right calls against a coin",
    "rmse_ratio_persistence": "RMSE over persistence's (no change) on the same days: below 1 beats persistence",
    "dm_p_value": "one-sided Diebold-Mariano p-value (squared errors) that it beats persistence; a panel's "
                  "is tested on days",
    "dm_abs_p_value": "the same on absolute errors",
    "pt_p_value": "Pesaran-Timmermann p-value that its up / not-up calls carry information",
    "rmse_ratio_ci95": "95 % moving-block bootstrap interval of the RMSE ratio, [low, high] "
                       "(evaluate.block_length, evaluate.bootstrap_draws)",
    "majority_class_rate": "what always calling the period's commoner direction scores: the bar "
                           "directional_accuracy has to clear",
    "interval_nominal": "the prediction intervals' nominal coverage (evaluate.interval)",
    "interval_coverage": "share of days whose actual close fell inside the interval",
    "interval_width_mean": "mean width of the intervals, in price units",
}
# The members' spread: each member of the ensemble scored alone.
SPREAD = {
    "seeds.<figure>.mean": "the mean of the figure over the members, each scored alone as if it were the model",
    "seeds.<figure>.std": "its standard deviation over the members",
    "seeds.<figure>.min": "its smallest value among the members",
    "seeds.<figure>.max": "its largest value among the members",
}
SEEDS = {
    "seeds.count": "members in the ensemble (train.seeds)",
    "seeds.beat_persistence": "members whose own RMSE ratio is below 1",
    **SPREAD,
}
# A panel's figures relative to each symbol's last close, and each symbol's own.
PANEL = {
    "panel.symbols": "symbols scored",
    "panel.days": "distinct days scored",
    "panel.rmse_ratio_persistence": "RMSE of the relative errors (error / last close) over persistence's, "
                                    "pooled over every symbol-day",
    "panel.dm_p_value": "Diebold-Mariano p-value of that ratio, tested on days",
    "panel.per_symbol.<symbol>.n": "the symbol's days scored",
    "panel.per_symbol.<symbol>.rmse_ratio_persistence": "the symbol's own RMSE ratio to persistence",
    "panel.per_symbol.<symbol>.dm_p_value": "its Diebold-Mariano p-value; null with fewer than two days",
}
# How well the forecasts order the symbols each day (nextclose.cross_section).
CROSS_SECTION = {
    "days": "days with at least two symbols to rank",
    "symbols": "symbols in the cross-section",
    "ic.mean": "mean daily information coefficient: the Pearson correlation across symbols of the forecast "
               "return with the realised one (null for one series)",
    "ic.std": "standard deviation of the daily IC",
    "ic.ir": "the IC's mean over its standard deviation",
    "ic.t": "t-statistic of the mean with a Newey-West (HAC) standard error (evaluate.hac_lags)",
    "ic.p_value": "two-sided p-value of that t-statistic",
    "rank_ic.mean": "mean daily Rank IC: the Spearman correlation across symbols of forecast and realised return",
    "rank_ic.std": "standard deviation of the daily Rank IC",
    "rank_ic.ir": "the Rank IC's mean over its standard deviation",
    "rank_ic.t": "t-statistic of the mean with a Newey-West (HAC) standard error",
    "rank_ic.p_value": "two-sided p-value of that t-statistic: ranking skill is claimed only when the mean "
                       "is positive and this is small (below nextclose.cross_section.SKILL_P_VALUE)",
    "long_short.annual_return": "the portfolio long the top evaluate.top_k symbols and short the bottom ones, "
                                "held a day, after costs: mean daily return x 252",
    "long_short.annual_volatility": "its daily returns' standard deviation x sqrt(252)",
    "long_short.information_ratio": "annual return over annual volatility",
    "long_short.max_drawdown": "the largest fall of its summed returns from a previous peak",
    "long_short.turnover": "mean daily turnover (a full swap of one side counts 2)",
    "long_short.cost_bps": "the cost charged per unit of turnover, in basis points (evaluate.cost_bps)",
    "long_short.top_k": "symbols on each side (evaluate.top_k, or a fifth of the symbols)",
    "ic": "null for a forecaster that ranks nothing (the zero baseline)",
    "rank_ic": "null for a forecaster that ranks nothing (the zero baseline)",
    "long_short": "null for a forecaster that ranks nothing (the zero baseline)",
    "hac_lags": "the Newey-West lags used (evaluate.hac_lags, or floor(4 (days / 100)^(2/9)))",
    "note": "why the figures are undefined, when they are",
    "seeds.count": "members whose Rank IC mean was computed (0 for one series)",
    "seeds.rank_ic_mean": "null for one series; on a panel the members' Rank IC means: "
                          "seeds.<figure>.mean / std / min / max",
}
BASELINE_SIGNALS = ("<baseline>: reversal (minus the last day's return), momentum (the return over the "
                    "last days) and zero (persistence, which ranks nothing)")
DAILY_COLUMNS = {
    "date": "the day forecast (the target date)",
    "ic": "that day's information coefficient across symbols",
    "rank_ic": "that day's Rank IC across symbols",
    "long_short_return": "that day's long-short return after costs",
    "turnover": "that day's turnover of the long-short portfolio",
}
FORECAST_COLUMNS = {
    "date": "the day forecast (the target date)",
    "symbol": "the symbol (a single series: its source's name)",
    "fold": "the walk-forward fold (1 is the first)",
    "actual": "the close that day",
    "model": "the model's forecast (the ensemble of train.seeds members)",
    "persistence": "the baseline that forecasts no change: the last close",
    "drift": "the baseline that adds the training period's mean daily change",
    "arima": "the auto-ARIMA baseline (evaluate.arima; empty when off)",
    "lower": "lower end of the model's prediction interval (evaluate.interval)",
    "upper": "upper end of the model's prediction interval",
}
SEARCHED_VALUES = {
    "model.hidden_units": "the best trial's model.hidden_units",
    "train.learning_rate": "the best trial's train.learning_rate",
    "train.steps": "the best trial's train.steps",
}

REPORTS: dict[str, Report] = {
    "train_history.csv": Report(
        "The learning curve, one row per evaluation (train.eval_every steps); exact floats.",
        {"step": "optimizer steps so far",
         "loss": "the members' mean training loss",
         "val_loss": "the ensemble's validation loss as it stands (lstm only)",
         "served_val_loss": "the validation loss of the ensemble of each member's best weights so far: what "
                            "would be served (several members only)",
         "member<i>_loss": "member i's training loss (several members only; empty once it stopped)",
         "member<i>_val_loss": "member i's validation loss (empty once it stopped)"}),
    "resolved_params.yaml": Report(
        "The values training ran with where params.yaml says null (the model kind's defaults), for "
        "`dvc params diff` and `dvc exp show`.",
        {"resolved.hidden_units": "model.hidden_units as used",
         "resolved.learning_rate": "train.learning_rate as used",
         "resolved.steps": "train.steps as used"}),
    "metrics.json": Report(
        "Every figure of the test split: the model's at the top level, each baseline's under "
        "`baselines` (persistence, drift, arima; the tests against persistence are not run on "
        "persistence itself), the members' spread under `seeds`, and on a panel the `panel` block.",
        {"n_test": "test days scored (on a panel: symbol-days)", **FIGURES, **SEEDS, **PANEL}),
    "scores.json": Report(
        "The headline only, so `dvc exp show` stays readable.",
        {"rmse_ratio": "metrics.json's rmse_ratio_persistence: the model's test RMSE over persistence's"}),
    "predictions.csv": Report(
        "Each test day's close and every forecaster's forecast (a panel's: relative to each symbol's "
        "last close); drawn by `dvc plots show`.", FORECAST_COLUMNS),
    "panel_predictions.csv": Report(
        "Every scored symbol-day of the test split in prices (a single series is a panel of one).",
        FORECAST_COLUMNS),
    "cross_section.json": Report(
        "How the test forecasts order the symbols each day: IC, Rank IC and a long-short portfolio, "
        "with the same figures for two simple signals under `baselines` (" + BASELINE_SIGNALS + "). "
        "Undefined (null) for one series.", {**SPREAD, **CROSS_SECTION}),
    "cross_section.csv": Report("The test split's ranking figures day by day (a single series: no rows).",
                                DAILY_COLUMNS),
    "backtest.json": Report(
        "The walk-forward backtest: models retrained before each fold (backtest.folds), forecasting one "
        "day ahead; per fold, pooled over every fold, the members' spread, the baselines' pooled figures "
        "(drift, arima), a panel's block and the ranking figures (`cross_section`, as in cross_section.json).",
        {"folds[].start": "the fold's first forecast day",
         "folds[].end": "its last forecast day",
         "folds[].n": "days forecast in the fold",
         "folds[].rmse_ratio_persistence": "the model's RMSE over persistence's in the fold",
         "folds[].directional_accuracy": "share of the fold's days whose direction was called right",
         **FIGURES, **SEEDS, **PANEL,
         **{f"cross_section.{key}": text for key, text in CROSS_SECTION.items()},
         **{f"cross_section.baselines.<baseline>.{key}": text for key, text in CROSS_SECTION.items()},
         **{f"cross_section.{key}": text for key, text in SPREAD.items()}}),
    "backtest_scores.json": Report(
        "The backtest's headline only, for `dvc exp show`.",
        {"backtest_rmse_ratio": "backtest.json's pooled.rmse_ratio_persistence"}),
    "backtest.csv": Report("Every walk-forward day's close and forecasts, with its fold.", FORECAST_COLUMNS),
    "backtest_cross_section.csv": Report("The walk-forward ranking figures day by day (a single series: no rows).",
                                         DAILY_COLUMNS),
    "best_params.yaml": Report(
        "The best trial of the study so far, by section, as `nextclose apply-best` writes it into "
        "params.yaml.",
        {"study_name": "the study (tune.study_name and a fingerprint of the data and search space)",
         "best_value": "its best value of tune.objective (null before a trial completes)",
         **SEARCHED_VALUES}),
    "tune.json": Report(
        "The search's numbers (DVC metrics).",
        {"objective.val_loss": "1 when tune.objective is val_loss, else 0",
         "objective.rank_ic": "1 when tune.objective is rank_ic, else 0",
         "best_value": "the best trial's value: the mean over tune.cv_folds blocks",
         "best_trial": "its trial number in the study",
         "persistence_val_loss": "forecasting no change on the same blocks, in the loss's units: the bar for val_loss",
         "persistence_val_rank_ic": "null: no change ranks nothing (objective rank_ic)",
         "trials.running": "trials of the study running now",
         "trials.complete": "trials that completed",
         "trials.pruned": "trials the pruner stopped (tune.pruner)",
         "trials.fail": "trials that failed",
         "trials.waiting": "trials queued",
         "trials_total": "all trials of the study, from every run and worker"}),
    "tune_study.json": Report(
        "Which study, where: no metrics.",
        {"study_name": "the study's full name",
         "storage": "where it lives (tune.storage, or OPTUNA_STORAGE; a password is never written)",
         "mlflow_run_id": "the MLflow parent run of the last `nextclose tune`"}),
}


def describe_key(report: str, key: str) -> str:
    """The description of ``key`` of a report file: the entry for the longest dotted tail of
    the key in :data:`REPORTS` (``pooled.rmse`` finds ``rmse``); empty when there is none."""
    keys = REPORTS[report].keys if report in REPORTS else {}
    parts = key.split(".")
    for start in range(len(parts)):
        tail = ".".join(parts[start:])
        if tail in keys:
            return keys[tail]
    return ""


def report_files(outputs: Iterable[Path]) -> list[str]:
    """The report files among a stage's outputs (:data:`nextclose.layout.OUTPUTS`)."""
    return [path.name for path in outputs if path.parts[0] == "reports"]


def writers(dvc_yaml_text: str) -> dict[str, str]:
    """``{report file: the stage that writes it}`` from dvc.yaml's outs, metrics and plots."""
    stages = yaml.safe_load(dvc_yaml_text).get("stages", {})
    found = {}
    for stage, spec in stages.items():
        for kind in ("outs", "metrics", "plots"):
            for entry in spec.get(kind, []) or []:
                path = entry if isinstance(entry, str) else next(iter(entry))
                if path.startswith("reports/"):
                    found[path.removeprefix("reports/")] = stage
    return found


def collected_keys(name: str, directories: Iterable[Path]) -> dict[str, tuple[list[str], list[int]]]:
    """``{key: (placeholder names, indices of the directories whose file has it)}``."""
    keys: dict[str, tuple[list[str], list[int]]] = {}
    for index, directory in enumerate(directories):
        path = directory / name
        if not path.exists():
            continue
        for key, names in file_keys(path).items():
            seen = keys.setdefault(key, ([], []))
            seen[0].extend(name for name in names if name not in seen[0])
            seen[1].append(index)
    # a null in one run, an object in another: the object's keys say it
    return {key: value for key, value in keys.items()
            if not any(other.startswith(key + ".") for other in keys)}


def _placeholder_lines(names: Iterable[str]) -> list[str]:
    """``- `<baseline>`: persistence, drift, arima``, one line per placeholder, names in first-seen order."""
    by_placeholder: dict[str, list[str]] = {}
    for entry in names:
        placeholder, _, value = entry.partition(": ")
        values = by_placeholder.setdefault(placeholder, [])
        if value not in values:
            values.append(value)
    return [f"- `{placeholder}`: " + ", ".join(values) for placeholder, values in by_placeholder.items()]


def report_anchor(name: str) -> str:
    """The anchor of a report file on the reports page: ``metrics-json``."""
    return name.replace(".", "-")


def render_reports(names: list[str], directories: list[Path], stage_of: dict[str, str]) -> str:
    """The reports reference page: each file with the keys its committed copies hold, in the
    first of ``directories`` (the default run's reports/) and the others (a panel's run)."""
    params_keys = params_names()
    lines = [GENERATED_NOTE.format(source="the committed reports/ and bench/results/sp500/ files and "
                                          "src/nextclose/reference.py"),
             "# Report files", "",
             "What each stage writes into `reports/`: DVC tracks these files, and `dvc metrics show`, "
             "`dvc plots show` and `dvc exp show` read them. The keys are those of the committed files: "
             "the default run's `reports/`, and the 20-stock panel's run in `bench/results/sp500/` for "
             "the keys only a panel has. `<baseline>`, `<figure>`, `<symbol>` and `<i>` stand for a "
             "name or number that varies; the names the committed files hold are listed below each table.", "",
             "| File | Written by | What it holds |", "| --- | --- | --- |"]
    for name in names:
        stage = stage_of.get(name)
        writer = f"[`{stage}`](cli.md#{command_anchor(stage)})" if stage else ""
        described = _link_keys(REPORTS[name].description, params_keys, "params.md") if name in REPORTS else ""
        lines.append(f"| [`{name}`](#{report_anchor(name)}) | {writer} | {described} |")
    lines.append("")
    for name in names:
        stage = stage_of.get(name)
        lines += [f"## `{name}` {{#{report_anchor(name)}}}", ""]
        if name in REPORTS:
            lines += [_link_keys(REPORTS[name].description, params_keys, "params.md"), ""]
        if stage:
            lines += [f"Written by [`nextclose {stage}`](cli.md#{command_anchor(stage)}) (the `{stage}` stage of "
                      f"`dvc.yaml`).", ""]
        keys = collected_keys(name, directories)
        lines += ["| Key | What it holds |", "| --- | --- |"]
        for key, (_, where) in keys.items():
            text = _link_keys(describe_key(name, key), params_keys, "params.md")
            if where == [PANEL_RUN]:
                text += " *(a panel only)*"
            lines.append(f"| `{key}` | {text} |")
        lines.append("")
        placeholders = _placeholder_lines(entry for names_seen, _ in keys.values() for entry in names_seen)
        if placeholders:
            lines += ["In the committed files:", ""] + placeholders + [""]
    return "\n".join(lines)


# --- the pages ---------------------------------------------------------------------------------

REPORT_DIRECTORIES = (Path("reports"), Path("bench/results/sp500"))  # the default run's, a panel's
PANEL_RUN = 1  # the index of the panel's run in REPORT_DIRECTORIES
# What the pages are made from, relative to the repository (docs/hooks.py watches them when serving).
SOURCES = ("params.yaml", "dvc.yaml", "src/nextclose", *map(str, REPORT_DIRECTORIES))


def pages(root: Path) -> dict[str, str]:
    """``{page path under docs/: its Markdown}`` for the repository at ``root``."""
    from nextclose import cli, layout

    return {
        "reference/params.md": render_params((root / "params.yaml").read_text(encoding="utf-8")),
        "reference/cli.md": render_cli(cli.build_parser()),
        "reference/reports.md": render_reports(
            report_files(layout.OUTPUTS), [root / directory for directory in REPORT_DIRECTORIES],
            writers((root / "dvc.yaml").read_text(encoding="utf-8"))),
    }
