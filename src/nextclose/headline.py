"""The headline figures, written from the reports rather than typed by hand: the few numbers
DVC compares (``reports/scores.json``, ``reports/backtest_scores.json``), those each stage adds to
its execution's MLflow run, and the Markdown blocks of the README and the results pages.

:func:`render` turns ``reports/backtest.json`` and ``reports/metrics.json`` into the headline
block (README.md and docs/results/single-series.md), :func:`render_panel` the panel's reports
under :data:`PANEL_REPORTS` into docs/results/panel.md's, and :func:`render_tuning`
``bench/results/tuned_vs_default.json`` (written by ``bench/tuned_vs_default.py``) into
docs/results/tuning.md's. :mod:`nextclose.results_pages` (``make figures``) writes them between
their markers; this module reads and writes no file, so the stages that use it depend on no page.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from nextclose import cross_section, evaluation

# The panel's block: from the reports scripts/panel_figures.py copies out of a run on the 20 stocks.
PANEL_REPORTS = Path("bench/results/sp500")
# The tuning block: the tuned settings against the defaults over fresh seeds, walking forward.
TUNING_RESULTS = Path("bench/results/tuned_vs_default.json")
TUNING_P_VALUE = 0.05  # the paired t-test's threshold for either verdict but "no evidence"
TUNING_HELPS = "tuning helps"
TUNING_DOES_WORSE = "tuning does worse"
NO_EVIDENCE = "no evidence that tuning helps"
TUNING_FIGURE = "walk-forward RMSE / persistence's, pooled"


def _skill(p_value: float) -> str:
    return ("**better than persistence** (p < 0.05)" if p_value < evaluation.SKILL_P_VALUE
            else "no skill shown (p ≥ 0.05)")


def _row(name: str, figures: dict[str, Any]) -> str:
    low, high = figures["rmse_ratio_ci95"]
    return (f"| {name} | {figures['rmse_ratio_persistence']:.4f} | {low:.4f} .. {high:.4f} | "
            f"{figures['dm_p_value']:.3f} / {figures['dm_abs_p_value']:.3f} | "
            f"{figures['directional_accuracy']:.3f} | {figures['pt_p_value']:.3f} | {_skill(figures['dm_p_value'])} |")


TABLE_HEAD = [
    "| forecaster | RMSE / persistence's | 95% interval (block bootstrap) "
    "| Diebold-Mariano p, squared / absolute errors | direction right | Pesaran-Timmermann p | against persistence |",
    "| --- | --- | --- | --- | --- | --- | --- |",
]


def render(metrics: dict[str, Any], backtest: dict[str, Any]) -> str:
    """The Markdown between the markers (markers excluded)."""
    lines: list[str] = []
    if backtest.get("folds"):
        pooled, seeds, folds = backtest["pooled"], backtest["seeds"], backtest["folds"]
        lines += [
            f"**Walk-forward backtest** (`reports/backtest.json`): {pooled['n']} days, {folds[0]['start']} to "
            f"{folds[-1]['end']}, in {len(folds)} folds; before each fold the {seeds['count']} members are "
            f"retrained on every earlier day and early-stopped on the days just before it.",
            "",
            *TABLE_HEAD,
            _row(f"model (mean of {seeds['count']})", pooled),
            *(_row(name, figures) for name, figures in backtest["baselines"].items()),
            "",
            "Per fold, the model's RMSE / persistence's: " + ", ".join(
                f"{fold['rmse_ratio_persistence']:.4f} ({fold['start']} .. {fold['end']})" for fold in folds) + ".",
            f"Each member alone: {seeds['rmse_ratio_persistence']['mean']:.4f} ± "
            f"{seeds['rmse_ratio_persistence']['std']:.4f} ({seeds['rmse_ratio_persistence']['min']:.4f} .. "
            f"{seeds['rmse_ratio_persistence']['max']:.4f}); {seeds['beat_persistence']} of {seeds['count']} beat "
            f"persistence. Always guessing the commoner direction scores {pooled['majority_class_rate']:.3f}.",
            f"The {pooled['interval_nominal']:.0%} split-conformal intervals held the actual close on "
            f"**{pooled['interval_coverage']:.1%}** of the days (mean width {pooled['interval_width_mean']:.4f} "
            f"in price units).",
            "",
            "> " + evaluation.verdict(pooled | {"seeds": seeds},
                                      period=f"over {pooled['n']} walk-forward days in {len(folds)} folds"),
            "",
        ]
    if "dm_p_value" in metrics:
        lines += [
            f"**Single split** (`reports/metrics.json`): the model trained once, scored on the "
            f"{metrics['n_test']} days of the test split.",
            "",
            *TABLE_HEAD,
            _row(f"model (mean of {metrics['seeds']['count']})", metrics),
            *(_row(name, figures) for name, figures in metrics["baselines"].items() if name != "persistence"),
            "",
            f"The {metrics['interval_nominal']:.0%} intervals held the close on "
            f"**{metrics['interval_coverage']:.1%}** of the test days (mean width "
            f"{metrics['interval_width_mean']:.4f}).",
            "",
            "> " + evaluation.verdict(metrics),
        ]
    return "\n".join(lines)


def _p(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def _signed(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _ranking_rows(test: dict[str, Any], walk: dict[str, Any]) -> list[str]:
    """The ranking rows of the panel table: the model's, then each baseline's Rank IC."""
    def rank_ic(figures: dict[str, Any]) -> str:
        r = figures["rank_ic"]
        if r["mean"] is None:
            return "undefined"
        return (f"{r['mean']:+.4f} ± {r['std']:.4f} (ICIR {_signed(r['ir'], '+.3f')}; "
                f"HAC t {_signed(r['t'], '+.2f')}, p {_p(r['p_value'])})")

    def portfolio(figures: dict[str, Any]) -> str:
        ls = figures["long_short"]
        if ls["annual_return"] is None:
            return "-"
        return (f"{ls['annual_return']:+.1%} a year, IR {_signed(ls['information_ratio'], '+.2f')}, max drawdown "
                f"{ls['max_drawdown']:.1%}, turnover {ls['turnover']:.2f} a day")

    rows = [
        f"| IC (Pearson), daily mean | {_signed(test['ic']['mean'], '+.4f')} | {_signed(walk['ic']['mean'], '+.4f')} |",
        f"| **Rank IC** (Spearman), daily mean ± std | {rank_ic(test)} | **{rank_ic(walk)}** |",
        f"| long-short, top/bottom {walk['long_short']['top_k']}, after {walk['long_short']['cost_bps']:g} bps "
        f"| {portfolio(test)} | {portfolio(walk)} |",
    ]
    for name in ("reversal", "momentum"):
        rows.append(f"| {name} (baseline): Rank IC; long-short | {rank_ic(test['baselines'][name])}; "
                    f"{portfolio(test['baselines'][name])} | {rank_ic(walk['baselines'][name])}; "
                    f"{portfolio(walk['baselines'][name])} |")
    spread = (walk.get("seeds") or {}).get("rank_ic_mean")
    test_spread = (test.get("seeds") or {}).get("rank_ic_mean")
    if spread and test_spread:
        rows.append(f"| each member alone: Rank IC mean, min .. max | {test_spread['min']:+.4f} .. "
                    f"{test_spread['max']:+.4f} | {spread['min']:+.4f} .. {spread['max']:+.4f} |")
    return rows


def render_panel(metrics: dict[str, Any], backtest: dict[str, Any], ranking: dict[str, Any],
                 run: dict[str, Any]) -> str:
    """The panel block (markers excluded): the errors and the ranking, on the test split
    and walk-forward, and the verdicts, which are the walk-forward's."""
    walk, pooled, panel = backtest["cross_section"], backtest["pooled"], backtest["panel"]
    overrides = ", ".join(f"`{key}: {str(value).lower() if isinstance(value, bool) else value}`"
                          for key, value in run["overrides"].items())
    lines = [
        f"**The 20 stocks** (`{PANEL_REPORTS}/`, written by `make panel-figures` (scripts/panel_figures.py) "
        f"from commit "
        f"`{run['commit'][:7]}` on {run['date']}: {overrides}, every other param as committed; "
        f"`{run['command']}` took {run['seconds'] / 60:.1f} min):",
        "",
        f"| | test split ({metrics['panel']['days']} days, {metrics['panel']['symbols']} symbols) "
        f"| walk-forward ({len(backtest['folds'])} folds, {panel['days']} days) |",
        "| --- | --- | --- |",
        f"| RMSE / persistence's, pooled (95% interval) | {metrics['rmse_ratio_persistence']:.4f} "
        f"({metrics['rmse_ratio_ci95'][0]:.4f} .. {metrics['rmse_ratio_ci95'][1]:.4f}) | "
        f"{pooled['rmse_ratio_persistence']:.4f} ({pooled['rmse_ratio_ci95'][0]:.4f} .. "
        f"{pooled['rmse_ratio_ci95'][1]:.4f}) |",
        f"| Diebold-Mariano p, pooled on days | {metrics['dm_p_value']:.3f} | {pooled['dm_p_value']:.3f} |",
        f"| direction right / always the commoner direction | {metrics['directional_accuracy']:.3f} / "
        f"{metrics['majority_class_rate']:.3f} | {pooled['directional_accuracy']:.3f} / "
        f"{pooled['majority_class_rate']:.3f} |",
        *_ranking_rows(ranking, walk),
        "",
        "> " + cross_section.verdict(walk, f"over {walk['days']} walk-forward days"),
        ">",
        "> " + evaluation.verdict(pooled | {"seeds": backtest["seeds"]},
                                  period=f"over {panel['days']} walk-forward days in {len(backtest['folds'])} folds"),
    ]
    return "\n".join(lines)


def _settings(values: dict[str, Any]) -> str:
    return ", ".join(f"`{key}: {value:g}`" if isinstance(value, (int, float)) else f"`{key}: {value}`"
                     for key, value in values.items())


def _spread(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.4f} ± {std:.4f} ({min(values):.4f} .. {max(values):.4f})"


def _p_text(p_value: Any) -> str:
    if p_value is None:
        return "undefined"
    return f"{p_value:.3f}" if p_value >= 0.001 else f"{p_value:.1e}"


def tuning_same_as_defaults(document: dict[str, Any]) -> bool:
    """Whether the tuned values are the defaults (``default_params``, when the document has them)."""
    defaults = document.get("default_params")
    return isinstance(defaults, dict) and all(
        key in defaults and defaults[key] == value for key, value in document["tuned_params"].items())


def tuning_verdict_parts(document: dict[str, Any]) -> tuple[str, str]:
    """The verdict on tuning from the figures of ``bench/results/tuned_vs_default.json`` (lower is
    better), and why: :data:`TUNING_HELPS` only when the tuned mean is below the defaults' and the
    paired t-test's p is below 0.05, :data:`TUNING_DOES_WORSE` when it is above with p below 0.05,
    and otherwise (the tuned values the defaults among them) :data:`NO_EVIDENCE`."""
    tuned, default = statistics.fmean(document["tuned"]), statistics.fmean(document["default"])
    p_value = document.get("p_value")
    means = f"{tuned:.4f} against {default:.4f} over {len(document['tuned'])} fresh seeds"
    if tuning_same_as_defaults(document):
        return NO_EVIDENCE, "the tuned values are the defaults, so both rows score the same settings"
    if p_value is not None and p_value < TUNING_P_VALUE and tuned != default:
        lower = tuned < default
        return (TUNING_HELPS if lower else TUNING_DOES_WORSE,
                f"the tuned settings' walk-forward RMSE / persistence's is {'lower' if lower else 'higher'} than "
                f"the defaults' ({means}; paired t-test p = {_p_text(p_value)} < {TUNING_P_VALUE:g})")
    direction = "lower" if tuned < default else "higher" if tuned > default else "the same"
    if p_value is None:
        why = "the paired t-test is undefined"
    elif p_value >= TUNING_P_VALUE:
        why = f"paired t-test p = {_p_text(p_value)} ≥ {TUNING_P_VALUE:g}"
    else:
        why = "the means are equal"
    return NO_EVIDENCE, f"the tuned settings' mean is {direction} ({means}), but {why}"


def tuning_verdict(document: dict[str, Any]) -> str:
    """:func:`tuning_verdict_parts` as one sentence (the bench prints it)."""
    verdict, why = tuning_verdict_parts(document)
    return f"{verdict}: {why}"


def _against_drift(document: dict[str, Any], tuned: list[float], default: list[float]) -> list[str]:
    """What the drift baseline, which trains nothing, scores on the same walk-forward days (a
    paragraph, when the document has it): the level a model must pass to show any skill."""
    drift = document.get("drift")
    if not isinstance(drift, (int, float)):
        return []

    def side(values: list[float]) -> str:
        mean = statistics.fmean(values)
        return f"{'below' if mean < drift else 'above' if mean > drift else 'level with'} it ({mean:.4f})"

    return [f"Drift (the mean daily change so far, no training) scores {drift:.4f} on the same days: the tuned "
            f"settings' mean is {side(tuned)}, the defaults' {side(default)}.", ""]


def render_tuning(document: dict[str, Any]) -> str:
    """The tuning block (markers excluded), from ``bench/results/tuned_vs_default.json``: what
    was compared, the figures of both settings, their paired difference and the verdict."""
    tuned, default, seeds = document["tuned"], document["default"], document["seeds"]
    differences = [t - d for t, d in zip(tuned, default)]
    made = [f"at commit `{document['commit'][:7]}`" if document.get("commit") else "",
            f"on {document['date']}" if document.get("date") else "",
            f"in {document['seconds'] / 60:.1f} min" if document.get("seconds") else ""]
    study = (f" of study `{document['study_name']}`" if document.get("study_name") else "") + (
        f" (its best trial's objective value {document['best_value']:.4f})"
        if isinstance(document.get("best_value"), (int, float)) else "")
    defaults = document.get("default_params")
    default_row = f"default ({_settings(defaults)})" if isinstance(defaults, dict) else "default (params.yaml)"
    std = statistics.stdev(differences) if len(differences) > 1 else 0.0
    verdict, why = tuning_verdict_parts(document)
    lines = [
        f"**Does tuning help?** (`{TUNING_RESULTS}`, written by `python bench/tuned_vs_default.py`"
        + "".join(f" {part}" for part in made if part) + f"): the tuned values{study} against params.yaml's "
        f"defaults, each scored by the walk-forward backtest of `data/prepared` (the ARIMA baseline skipped) "
        f"for {len(seeds)} fresh values of `base.seed` ({seeds[0]} .. {seeds[-1]}), none the tuner saw. The "
        f"figure: {document.get('figure', TUNING_FIGURE)}, of the served ensemble; lower is better.",
        "",
        "| settings | walk-forward RMSE / persistence's: mean ± std (min .. max) |",
        "| --- | --- |",
        f"| tuned ({_settings(document['tuned_params'])}) | {_spread(tuned)} |",
        f"| {default_row} | {_spread(default)} |",
        "",
        f"Tuned − default, paired by seed: {statistics.fmean(differences):+.4f} ± {std:.4f}; the tuned settings "
        f"did better on {sum(d < 0 for d in differences)} of {len(differences)} seeds; paired t-test p = "
        f"{_p_text(document.get('p_value'))}.",
        "",
        *_against_drift(document, tuned, default),
        f"> Verdict: **{verdict}**: {why}.",
    ]
    return "\n".join(lines)


def test_scores(metrics: dict[str, Any]) -> dict[str, float]:
    """``reports/scores.json``, the evaluate stage's DVC metric: the served model's test RMSE over
    persistence's (the tutorial kind, scored in-sample: its per-day MSE)."""
    if "rmse_ratio_persistence" in metrics:
        return {"rmse_ratio": metrics["rmse_ratio_persistence"]}
    return {"in_sample_mse_per_day": metrics["in_sample_mse_per_day"]}


def backtest_scores(backtest: dict[str, Any]) -> dict[str, float]:
    """``reports/backtest_scores.json``: the walk-forward RMSE over persistence's (none for an
    empty backtest)."""
    pooled = backtest.get("pooled", {})
    scores = {"backtest_rmse_ratio": pooled["rmse_ratio_persistence"]} if "rmse_ratio_persistence" in pooled else {}
    return scores | _ranked("backtest", backtest)


def _execution_figures(prefix: str, figures: dict[str, Any], seeds: dict[str, Any]) -> dict[str, float]:
    """A report's headline figures, ``<prefix>_rmse_ratio``, ..., and the members' spread when
    there are several."""
    low, high = figures["rmse_ratio_ci95"]
    named = {
        f"{prefix}_rmse_ratio": figures["rmse_ratio_persistence"],
        f"{prefix}_rmse_ratio_ci95_low": low, f"{prefix}_rmse_ratio_ci95_high": high,
        f"{prefix}_dm_p_value": figures["dm_p_value"],
        f"{prefix}_directional_accuracy": figures["directional_accuracy"],
        f"{prefix}_interval_coverage": figures["interval_coverage"],
    }
    ratio = seeds.get("rmse_ratio_persistence")
    if isinstance(ratio, dict):
        named |= {f"{prefix}_rmse_ratio_members_mean": ratio["mean"], f"{prefix}_rmse_ratio_members_std": ratio["std"],
                  f"{prefix}_members_beat_persistence": seeds["beat_persistence"]}
    return named


def test_execution_figures(metrics: dict[str, Any]) -> dict[str, float]:
    """What the evaluate stage adds to its execution's MLflow run (``test_...``)."""
    if "rmse_ratio_persistence" not in metrics:
        return {"test_in_sample_mse_per_day": metrics["in_sample_mse_per_day"]}
    return _execution_figures("test", metrics, metrics.get("seeds", {}))


def backtest_execution_figures(backtest: dict[str, Any]) -> dict[str, float]:
    """What the backtest stage adds to its execution's MLflow run (``backtest_...``; on a panel
    ``backtest_rank_ic``, which ``nextclose champion --metric backtest_rank_ic`` reads)."""
    pooled = backtest.get("pooled", {})
    if "rmse_ratio_persistence" not in pooled:
        return {}
    return _execution_figures("backtest", pooled, backtest.get("seeds", {})) | _ranked("backtest", backtest)


def _ranked(prefix: str, backtest: dict[str, Any]) -> dict[str, float]:
    """A panel's ranking headline (``backtest_rank_ic``, ...); none for a single series."""
    return {f"{prefix}_{key}": value
            for key, value in cross_section.headline(backtest.get("cross_section", {})).items()}
