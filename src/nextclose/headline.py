"""The headline figures, written from the reports rather than typed by hand: the few numbers
DVC compares (``reports/scores.json``, ``reports/backtest_scores.json``), those each stage adds to
its execution's MLflow run, and the README's block.

:func:`render` turns ``reports/backtest.json`` and ``reports/metrics.json`` into the Markdown
block between :data:`BEGIN` and :data:`END` in README.md; ``make figures`` (this module's
``main``) rewrites that block, and ``tests/test_readme.py`` fails when it is not what the
committed reports give.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from nextclose import atomic, cross_section, evaluation, redaction

BEGIN = "<!-- headline figures: written by `make figures` from reports/; do not edit by hand -->"
END = "<!-- end of headline figures -->"
# The panel's block: from the reports scripts/panel_figures.py copies out of a run on the 20 stocks.
PANEL_BEGIN = "<!-- panel figures: written by `make panel-figures` from bench/results/sp500/; do not edit by hand -->"
PANEL_END = "<!-- end of panel figures -->"
PANEL_REPORTS = Path("bench/results/sp500")


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
    """The README's panel block (markers excluded): the errors and the ranking, on the test split
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


def replace_block(text: str, block: str, where: str = "README.md", begin: str = BEGIN, end: str = END) -> str:
    """``text`` with the lines between the markers replaced by ``block``."""
    try:
        start = text.index(begin) + len(begin)
        stop = text.index(end, start)
    except ValueError:
        raise ValueError(f"{where}: the markers {begin!r} and {end!r} are missing") from None
    return text[:start] + "\n" + block + "\n" + text[stop:]


def current_block(text: str, begin: str = BEGIN, end: str = END) -> str:
    start = text.index(begin) + len(begin)
    return text[start:text.index(end, start)].strip("\n")


def read_reports(directory: Path, *names: str) -> list[dict[str, Any]]:
    return [json.loads((directory / name).read_text()) for name in names]


def render_panel_from(directory: Path = PANEL_REPORTS) -> str:
    return render_panel(*read_reports(directory, "metrics.json", "backtest.json", "cross_section.json", "run.json"))


def main(readme: Path = Path("README.md"), reports: Path = Path("reports"),
         panel_reports: Path = PANEL_REPORTS) -> int:
    metrics, backtest = read_reports(reports, "metrics.json", "backtest.json")
    text = readme.read_text()
    # Only the blocks are redacted: the prose around them is the repository's own, and documents
    # the very URL forms redaction rewrites.
    updated = replace_block(text, redaction.redact(render(metrics, backtest)), str(readme))
    panel = redaction.redact(render_panel_from(panel_reports))
    updated = replace_block(updated, panel, str(readme), PANEL_BEGIN, PANEL_END)
    if updated != text:
        atomic.write_text(readme, updated, redacted=True)
        print(f"{readme}: headline figures rewritten from {reports}/")
    else:
        print(f"{readme}: headline figures already match {reports}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
