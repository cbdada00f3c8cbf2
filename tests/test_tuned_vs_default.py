"""bench/tuned_vs_default.py (the tuned settings against the defaults over fresh seeds, walking
forward) and the tuning block of docs/results/tuning.md rendered from its results."""

from __future__ import annotations

import importlib.util
import json
import math
import types
from typing import Any

import numpy as np
import pytest
from scipy import stats

from nextclose import backtest, headline, metrics, preparation, redaction, results_pages, training
from nextclose.params import parse_params

from helpers import REPO, ConstantNetwork, random_walk_bars, tiny_params

RESULTS = REPO / "bench" / "results" / "tuned_vs_default.json"
TUNED = {"model.hidden_units": 76, "train.learning_rate": 0.000166258620342353, "train.steps": 750}
DEFAULTS = {"model.hidden_units": 32, "train.learning_rate": 0.001, "train.steps": 3000}


def bench_module():
    """bench/tuned_vs_default.py as a module (skips where bench/ is not copied, as under mutmut)."""
    path = REPO / "bench" / "tuned_vs_default.py"
    if not path.is_file():
        pytest.skip(f"{path}: not here")
    spec = importlib.util.spec_from_file_location("tuned_vs_default", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def made(tuned: list[float], default: list[float], **changes: Any) -> dict[str, Any]:
    """A results document as the bench writes it, from the two lists."""
    differences = np.subtract(tuned, default)
    p_value = float(stats.ttest_rel(tuned, default).pvalue)
    return {
        "seeds": [1000 + 5 * index for index in range(len(tuned))],
        "tuned": tuned,
        "default": default,
        "tuned_params": TUNED,
        "default_params": DEFAULTS,
        "p_value": None if math.isnan(p_value) else p_value,
        "study_name": "nextclose-19423f1db3",
        "best_value": 1.3384946584701538,
        "commit": "93de2e3" + "0" * 33,
        "date": "2026-12-05",
        "figure": headline.TUNING_FIGURE,
        "difference": {"mean": float(differences.mean()), "std": float(differences.std(ddof=1))},
        "tuned_better": int((differences < 0).sum()),
        "seconds": 1500.0,
    } | changes


DEFAULT_RATIOS = [0.995 + 0.002 * math.sin(index) for index in range(10)]


def shifted(by: float, wobble: float = 0.001) -> list[float]:
    """The default's figures moved by ``by``, each seed wobbling by ±``wobble``."""
    return [value + by + wobble * (-1) ** index for index, value in enumerate(DEFAULT_RATIOS)]


def problems_of(document: dict[str, Any]) -> list[str]:
    """What is wrong with a results document: the lists' lengths, and its p-value, difference and
    sign count against what its lists give."""
    problems = []
    seeds, tuned, default = document["seeds"], document["tuned"], document["default"]
    if not len(seeds) == len(tuned) == len(default):
        problems.append(f"lengths differ: {len(seeds)} seeds, {len(tuned)} tuned, {len(default)} default")
        return problems
    recomputed = float(stats.ttest_rel(tuned, default).pvalue)
    p_value = document["p_value"]
    if math.isnan(recomputed):
        if p_value is not None:
            problems.append(f"p_value {p_value}: the lists give no p-value")
    elif p_value is None or abs(p_value - recomputed) > 1e-12:
        problems.append(f"p_value {p_value}: the lists give {recomputed}")
    differences = np.subtract(tuned, default)
    if "difference" in document and not np.allclose(
            [document["difference"]["mean"], document["difference"]["std"]],
            [differences.mean(), differences.std(ddof=1)], rtol=0, atol=1e-12):
        problems.append(f"difference {document['difference']}: the lists give another")
    if "tuned_better" in document and document["tuned_better"] != int((differences < 0).sum()):
        problems.append(f"tuned_better {document['tuned_better']}: the lists give {int((differences < 0).sum())}")
    return problems


# --- the results document ------------------------------------------------------------------------

def test_a_documents_p_value_is_recomputed_from_its_lists():
    document = made(shifted(-0.003), DEFAULT_RATIOS)
    assert problems_of(document) == []
    assert problems_of(document | {"p_value": document["p_value"] * 1.01}) != []
    assert problems_of(document | {"tuned": shifted(-0.002)}) != []  # the lists changed, the p-value not
    assert problems_of(document | {"tuned_better": 3}) != []
    assert problems_of(document | {"default": DEFAULT_RATIOS[:9]}) == ["lengths differ: 10 seeds, 10 tuned, 9 default"]


def test_the_committed_results_are_consistent():
    if not RESULTS.is_file():
        pytest.skip(f"{RESULTS.relative_to(REPO)} not written yet: python bench/tuned_vs_default.py")
    document = json.loads(RESULTS.read_text())
    assert len(document["seeds"]) >= 10
    assert len(document["seeds"]) == len(document["tuned"]) == len(document["default"])
    assert abs(document["p_value"] - stats.ttest_rel(document["tuned"], document["default"]).pvalue) <= 1e-12
    assert problems_of(document) == []
    assert document["figure"] == headline.TUNING_FIGURE
    assert set(document["tuned_params"]) == set(TUNED)


# --- the block of docs/results/tuning.md ---------------------------------------------------------

def verdict_of(block: str) -> str:
    line = next(line for line in block.splitlines() if line.startswith("> Verdict: **"))
    return line.removeprefix("> Verdict: **").split("**", 1)[0]


def test_tuning_helps_only_when_lower_and_significant():
    document = made(shifted(-0.003), DEFAULT_RATIOS)
    assert document["p_value"] < 0.05
    block = headline.render_tuning(document)
    assert verdict_of(block) == headline.TUNING_HELPS
    assert "did better on 10 of 10 seeds" in block
    assert "| tuned (`model.hidden_units: 76`, `train.learning_rate: 0.000166259`, `train.steps: 750`) | " in block
    assert "| default (`model.hidden_units: 32`, `train.learning_rate: 0.001`, `train.steps: 3000`) | " in block
    assert f"{np.mean(document['tuned']):.4f} ± {np.std(document['tuned'], ddof=1):.4f}" in block
    assert f"({min(DEFAULT_RATIOS):.4f} .. {max(DEFAULT_RATIOS):.4f})" in block
    assert "Tuned − default, paired by seed: -0.0030 ± " in block
    assert "`nextclose-19423f1db3`" in block and "commit `93de2e3`" in block and "on 2026-12-05" in block
    assert "10 fresh values of `base.seed` (1000 .. 1045)" in block


def test_tuning_does_worse_when_higher_and_significant():
    document = made(shifted(+0.003), DEFAULT_RATIOS)
    assert document["p_value"] < 0.05
    block = headline.render_tuning(document)
    assert verdict_of(block) == headline.TUNING_DOES_WORSE
    assert "did better on 0 of 10 seeds" in block
    assert headline.TUNING_HELPS not in block.replace(headline.NO_EVIDENCE, "")


def test_no_evidence_when_the_difference_is_not_significant():
    lower = made(shifted(-0.0003, wobble=0.002), DEFAULT_RATIOS)  # lower on average, but p >= 0.05
    assert np.mean(lower["tuned"]) < np.mean(lower["default"]) and lower["p_value"] >= 0.05
    assert verdict_of(headline.render_tuning(lower)) == headline.NO_EVIDENCE
    assert "mean is lower" in headline.render_tuning(lower)
    higher = made(shifted(+0.0003, wobble=0.002), DEFAULT_RATIOS)
    assert higher["p_value"] >= 0.05
    assert verdict_of(headline.render_tuning(higher)) == headline.NO_EVIDENCE
    # the threshold is strict, and a missing p-value is no evidence either
    assert verdict_of(headline.render_tuning(lower | {"p_value": 0.05})) == headline.NO_EVIDENCE
    assert verdict_of(headline.render_tuning(lower | {"p_value": 0.0499})) == headline.TUNING_HELPS
    assert verdict_of(headline.render_tuning(lower | {"p_value": None})) == headline.NO_EVIDENCE


def test_no_evidence_when_the_tuned_values_are_the_defaults():
    document = made(list(DEFAULT_RATIOS), list(DEFAULT_RATIOS), tuned_params=DEFAULTS)
    assert document["p_value"] is None  # the same figures: the t-test is undefined
    block = headline.render_tuning(document)
    assert verdict_of(block) == headline.NO_EVIDENCE
    assert "the tuned values are the defaults" in block
    assert "paired t-test p = undefined" in block
    # even with a p-value that would say otherwise
    assert verdict_of(headline.render_tuning(document | {"p_value": 0.001})) == headline.NO_EVIDENCE


def test_the_block_needs_only_the_required_keys():
    document = made(shifted(-0.003), DEFAULT_RATIOS)
    required = {key: document[key] for key in ("seeds", "tuned", "default", "tuned_params", "p_value")}
    block = headline.render_tuning(required)
    assert verdict_of(block) == headline.TUNING_HELPS
    assert "| default (params.yaml) | " in block


TUNING_PAGE = "docs/results/tuning.md"


def tuning_page(root):
    """docs/results/tuning.md under ``root``, its block emptied (skips where docs/ is not copied)."""
    committed_page = REPO / TUNING_PAGE
    if not committed_page.is_file():
        pytest.skip(f"{committed_page}: not here")
    block = results_pages.block_named("tuning", TUNING_PAGE)
    page = root / TUNING_PAGE
    page.parent.mkdir(parents=True)
    page.write_text(results_pages.replace_block(committed_page.read_text(), block, "", TUNING_PAGE))
    return page, block


def test_make_figures_writes_the_tuning_block_once_the_results_exist(tmp_path):
    page, block = tuning_page(tmp_path)
    before = page.read_text()
    assert results_pages.write_pages(tmp_path, (block,)) == {TUNING_PAGE: False}  # no results yet: left alone
    assert page.read_text() == before
    document = made(shifted(-0.003), DEFAULT_RATIOS, study_name="see postgresql://u:hunter2@db/x")
    results = tmp_path / block.source
    results.parent.mkdir(parents=True)
    results.write_text(json.dumps(document))
    assert results_pages.write_pages(tmp_path, (block,)) == {TUNING_PAGE: True}
    text = page.read_text()
    written = results_pages.current_block(text, block)
    assert written == redaction.redact(headline.render_tuning(document))
    assert "hunter2" not in written
    assert text.replace(f"\n{written}\n", "\n\n") == before  # nothing else changed
    page.write_text(before.replace(block.begin, ""))  # no markers: refused, naming the page
    with pytest.raises(ValueError, match=f"{TUNING_PAGE}: the markers"):
        results_pages.write_pages(tmp_path, (block,))


def test_the_tuning_page_shows_the_committed_results():
    if not RESULTS.is_file():
        pytest.skip(f"{RESULTS.relative_to(REPO)} not written yet: python bench/tuned_vs_default.py")
    block = results_pages.block_named("tuning", TUNING_PAGE)
    assert results_pages.current_block((REPO / TUNING_PAGE).read_text(), block) == results_pages.rendered(
        block, REPO), f"{TUNING_PAGE}'s tuning figures differ from {RESULTS.relative_to(REPO)}: run `make figures`"


# --- the bench ------------------------------------------------------------------------------------

def test_the_seeds_are_spaced_a_run_apart_and_fresh():
    bench = bench_module()
    assert bench.fresh_seeds(1000, 10, 5, 42) == list(range(1000, 1050, 5))
    with pytest.raises(ValueError, match=r"params.yaml's members use \[42, 43, 44, 45, 46\]"):
        bench.fresh_seeds(40, 3, 5, 42)  # 40's members 40..44 reach 42's
    assert bench.fresh_seeds(47, 2, 5, 42) == [47, 52]


def tiny_walk(bench):
    """Tiny params without ARIMA (as the bench runs them) and the prepared windows of a synthetic walk."""
    params = bench.without_arima(parse_params(tiny_params(
        data={"source": "csv", "path": "walk.csv", "start": None, "end": None},
        evaluate={"arima": True}, backtest={"days": 20, "folds": 2, "validation_days": 15})))
    prepared = preparation.prepare(random_walk_bars(160, seed=7), "walk.csv", params.data, params.split,
                                   params.features)
    return params, prepared


@pytest.mark.slow  # two backtests of a tiny series
def test_the_bench_scores_by_the_walk_forward_backtest_of_the_seed():
    """The bench's figure for a seed is the pooled RMSE / persistence's of the walk-forward backtest
    that ``nextclose backtest`` runs with base.seed set to it (1000, not params' 42: the seed is the
    bench's, not params.yaml's), without ARIMA."""
    bench = bench_module()
    params, prepared = tiny_walk(bench)
    assert params.evaluate.arima is False and params.base.seed != 1000
    names = prepared.normalisation.feature_names

    run = bench.walk_forward(params, prepared.splits, prepared.bars, names, 1000)

    # the backtest stage's own steps, with base.seed 1000
    samples = backtest.all_samples(prepared.splits)
    folds = backtest.plan_folds(len(samples.targets), 20, 2, 15)

    def train(train_windows, validation, normalisation):
        return training.train_lstm(train_windows, validation, normalisation, params.model, params.train, 1000).model

    results = [backtest.forecast_fold(fold, samples, prepared.bars, names, train, params.evaluate) for fold in folds]
    report = backtest.report(results, params.evaluate, 1000)
    assert run["ratio"] == report["pooled"]["rmse_ratio_persistence"]
    assert run["folds"] == [fold["rmse_ratio_persistence"] for fold in report["folds"]]
    table = backtest.table(results)
    assert len(table) == 20 and table["arima"].isna().all()
    assert run["ratio"] == pytest.approx(metrics.rmse(table["actual"].to_numpy(), table["model"].to_numpy())
                                         / metrics.rmse(table["actual"].to_numpy(), table["persistence"].to_numpy()),
                                         rel=1e-12)


def test_the_bench_trains_every_fold_with_the_settings_it_scores(monkeypatch):
    """The tuned settings reach each fold's training (with the bench's seed), and the figure is the
    forecasts' RMSE over persistence's (a stand-in network instead of training: fast)."""
    bench = bench_module()
    params, prepared = tiny_walk(bench)
    tuned = bench.tuned_params(params, {("model", "hidden_units"): 6, ("train", "learning_rate"): 0.01,
                                        ("train", "steps"): 40})
    assert (tuned.model.hidden_units, tuned.train.learning_rate, tuned.train.steps) == (6, 0.01, 40)
    assert tuned.evaluate.arima is False and tuned.model != params.model
    calls = []

    def stand_in(train, validation, normalisation, model_params, train_params, seed, on_point=None):
        calls.append((model_params, train_params, seed, len(train.targets)))
        return types.SimpleNamespace(model=ConstantNetwork([0.0, 0.0]))  # members forecasting no change

    monkeypatch.setattr(training, "train_lstm", stand_in)
    run = bench.walk_forward(tuned, prepared.splits, prepared.bars, prepared.normalisation.feature_names, 1005)
    assert [call[:3] for call in calls] == [(tuned.model, tuned.train, 1005)] * 2  # each of the two folds
    assert calls[0][3] < calls[1][3]  # an expanding window
    assert run["ratio"] == pytest.approx(1.0, rel=1e-6)  # forecasting no change is persistence
    assert len(run["folds"]) == 2


def test_the_block_says_where_both_settings_stand_against_drift():
    document = made(shifted(-0.003), DEFAULT_RATIOS)
    assert "Drift" not in headline.render_tuning(document)  # a document from before drift was recorded
    tuned_mean, default_mean = np.mean(document["tuned"]), np.mean(document["default"])
    between = (tuned_mean + default_mean) / 2
    block = headline.render_tuning(document | {"drift": between})
    assert (f"Drift (the mean daily change so far, no training) scores {between:.4f} on the same days: the tuned "
            f"settings' mean is below it ({tuned_mean:.4f}), the defaults' above it ({default_mean:.4f}).") in block
    assert "the tuned settings' mean is above it" in headline.render_tuning(document | {"drift": tuned_mean - 0.01})
