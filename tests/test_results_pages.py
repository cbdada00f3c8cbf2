"""The generated blocks of README.md and docs/results/ are what their committed files give
(written by `make figures`, nextclose.results_pages), and the panel's figures recompute from
the tables beside them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nextclose import bench_figures, headline, results_pages
from nextclose.results_pages import BLOCKS

from helpers import REPO, script_module


def committed(name: str) -> dict:
    return json.loads((REPO / "reports" / name).read_text())


def needs_the_pages() -> None:
    """Skip where the pages or the benches' files are not copied (as under mutmut)."""
    for folder in ("docs", "bench"):
        if not (REPO / folder).is_dir():
            pytest.skip(f"{REPO / folder}: not here")


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{block.page}:{block.name}" for block in BLOCKS])
def test_every_generated_block_is_what_its_committed_source_gives(block):
    if block.page != "README.md":
        needs_the_pages()
    content = results_pages.rendered(block, REPO)
    if content is None:
        pytest.skip(f"{block.source} not written yet")
    committed_block = results_pages.current_block((REPO / block.page).read_text(), block, block.page)
    assert committed_block == content, f"{block.page}'s {block.name} figures differ from {block.source}: " \
                                      f"run `make figures`"


def copy_of_the_pages(root: Path) -> Path:
    """The pages and every file their blocks read, under ``root``."""
    needs_the_pages()
    for block in BLOCKS:
        for relative in (block.page, block.source.rstrip("/")):
            source, destination = REPO / relative, root / relative
            if destination.exists() or not source.exists():
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, destination, ignore=shutil.ignore_patterns("*.csv"))
            else:
                shutil.copy(source, destination)
    return root


def test_make_figures_rewrites_a_block_whose_source_changed_and_nothing_else(tmp_path):
    root = copy_of_the_pages(tmp_path)
    assert not any(results_pages.write_pages(root).values())  # the committed pages are current
    page = root / "docs" / "results" / "benchmarks.md"
    before = page.read_text()
    members = json.loads((root / "bench" / "members.json").read_text())
    members["members"]["eight_members_seconds"] = 6.0  # a bench run that met its target
    members["members"]["eight_vs_one"] = 1.96
    (root / "bench" / "members.json").write_text(json.dumps(members))
    block = results_pages.block_named("members", "docs/results/benchmarks.md")
    stale = results_pages.current_block(before, block)
    assert stale != results_pages.rendered(block, root)  # what the test above catches
    changed = results_pages.write_pages(root)
    assert [name for name, rewritten in changed.items() if rewritten] == ["docs/results/benchmarks.md"]
    after = page.read_text()
    fresh = results_pages.current_block(after, block)
    assert "| 8 members in one graph | 6.0 s | 1.96x the time of 1 member (target 2.5x: **met**) |" in fresh
    assert after.replace(fresh, stale) == before


def test_make_figures_leaves_the_prose_as_written_and_redacts_the_blocks(tmp_path):
    # The pages document the URL forms redaction rewrites (scheme://user:password@): rewriting
    # the blocks must not redact the prose around them, nor let a password through the blocks.
    root = copy_of_the_pages(tmp_path)
    page = root / "docs" / "results" / "panel.md"
    prose = "A store such as `postgresql://u:hunter2@db/x` is named here on purpose.\n"
    page.write_text(prose + page.read_text())
    run = root / headline.PANEL_REPORTS / "run.json"
    run.write_text(json.dumps(json.loads(run.read_text()) | {"command": "dvc repro --storage postgresql://u:pw2@db/x"}))
    assert results_pages.main(root) == 0
    text = page.read_text()
    assert text.startswith(prose)
    block = results_pages.current_block(text, results_pages.block_named("panel", "docs/results/panel.md"))
    assert "--storage" in block and "pw2" not in block


def test_a_page_without_its_markers_is_refused_by_name(tmp_path):
    root = copy_of_the_pages(tmp_path)
    page = root / "docs" / "results" / "benchmarks.md"
    block = results_pages.block_named("evaluate scaling", "docs/results/benchmarks.md")
    page.write_text(page.read_text().replace(block.end, ""))
    with pytest.raises(ValueError, match="docs/results/benchmarks.md: the markers .*evaluate scaling"):
        results_pages.write_pages(root)
    # an optional block whose source is missing still needs its markers
    mutation = root / "docs" / "results" / "mutation.md"
    block = results_pages.block_named("mutation", "docs/results/mutation.md")
    mutation.write_text(mutation.read_text().replace(block.begin, ""))
    with pytest.raises(ValueError, match="docs/results/mutation.md: the markers"):
        results_pages.write_pages(root, (block,))


def test_the_block_is_replaced_between_its_markers_only():
    block = BLOCKS[0]
    text = f"before\n{block.begin}\nold\nlines\n{block.end}\nafter\n"
    replaced = results_pages.replace_block(text, block, "new", "page.md")
    assert replaced == f"before\n{block.begin}\nnew\n{block.end}\nafter\n"
    assert results_pages.current_block(replaced, block) == "new"
    with pytest.raises(ValueError, match="page.md: the markers"):
        results_pages.replace_block("no markers", block, "new", "page.md")


def test_the_readme_headline_keeps_its_markers():
    """README.md's headline block is the one the docs' home page and the tests have always read."""
    headline_block = BLOCKS[0]
    assert headline_block.page == "README.md"
    assert headline_block.begin == ("<!-- headline figures: written by `make figures` from reports/; "
                                    "do not edit by hand -->")
    assert headline_block.end == "<!-- end of headline figures -->"


# --- the headline -------------------------------------------------------------------------------

def test_the_headline_claims_skill_only_below_the_diebold_mariano_threshold():
    backtest = committed("backtest.json")
    block = headline.render(committed("metrics.json"), backtest)
    p_value = backtest["pooled"]["dm_p_value"]
    assert ("verdict: skill over" in block) == (p_value < 0.05)
    better = backtest | {"pooled": backtest["pooled"] | {"dm_p_value": 0.01}}
    assert "verdict: skill over" in headline.render(committed("metrics.json"), better)
    assert f"{backtest['pooled']['interval_coverage']:.1%}" in block


def numbers_only(document) -> bool:
    if isinstance(document, dict):
        return all(numbers_only(value) for value in document.values())
    return isinstance(document, (int, float)) and not isinstance(document, bool)


def test_the_dvc_metrics_are_the_committed_reports_headline_numbers():
    assert committed("scores.json") == headline.test_scores(committed("metrics.json")) == {
        "rmse_ratio": committed("metrics.json")["rmse_ratio_persistence"]}
    assert committed("backtest_scores.json") == headline.backtest_scores(committed("backtest.json")) == {
        "backtest_rmse_ratio": committed("backtest.json")["pooled"]["rmse_ratio_persistence"]}
    for name in ("scores.json", "backtest_scores.json", "tune.json"):
        assert numbers_only(committed(name)), f"reports/{name}: DVC metrics hold numbers only"


def test_the_headline_of_an_in_sample_or_empty_report():
    assert headline.test_scores({"in_sample": True, "in_sample_mse_per_day": 2.5}) == {"in_sample_mse_per_day": 2.5}
    assert headline.test_execution_figures({"in_sample_mse_per_day": 2.5}) == {"test_in_sample_mse_per_day": 2.5}
    assert headline.backtest_scores({"folds": [], "pooled": {"n": 0}}) == {}
    assert headline.backtest_execution_figures({"folds": [], "pooled": {"n": 0}}) == {}
    one_member = {"rmse_ratio_persistence": 0.99, "rmse_ratio_ci95": [0.98, 1.0], "dm_p_value": 0.2,
                  "directional_accuracy": 0.5, "interval_coverage": 0.9}
    figures = headline.test_execution_figures(one_member)
    assert figures["test_rmse_ratio"] == 0.99 and figures["test_rmse_ratio_ci95_high"] == 1.0
    assert not any("members" in key for key in figures)


# --- the benchmarks and the mutation scores -----------------------------------------------------

def bench(name: str) -> dict:
    needs_the_pages()
    return json.loads((REPO / "bench" / name).read_text())


def test_the_benchmarks_say_met_or_missed_from_the_figures():
    results = bench("results.json")
    slow = results | {"tutorial_vs_tf1": results["tutorial_vs_tf1"] | {"ratio": 2.9}}
    assert "| 2.9x (target 3x: **missed**) |" in bench_figures.render_training_speed(slow)
    assert "| 6.3x (target 3x: **met**) |" in bench_figures.render_training_speed(results)
    scaling = bench("evaluate_scaling.json")
    late = scaling | {"backtest": scaling["backtest"] | {"seconds": 181.0}}
    assert "| 181.0 s | target 180 s: **missed** |" in bench_figures.render_evaluate_scaling(late)
    panel = bench("panel.json")
    assert "0.29x the single series' (target 1x: **missed**)" in bench_figures.render_panel_training(panel)
    faster = panel | {"windows_per_second_ratio": 1.2, "train_peak_rss_mib": 2100.0}
    rendered = bench_figures.render_panel_training(faster)
    assert "1.20x the single series' (target 1x: **met**)" in rendered and "target 2 GiB: **missed**" in rendered


def mutation_document() -> dict:
    return {"commit": "0123456789abcdef", "date": "2026-12-05", "modules": {
        "metrics.py": {"outcomes": {"killed": 385, "survived": 25}, "equivalent": 18, "date": "2026-11-28"},
        "training.py": {"outcomes": {"killed": 435, "survived": 25, "not checked": 99}, "equivalent": 21,
                        "date": "2026-11-28"}}}


def test_the_mutation_table_counts_checked_mutants_and_leaves_out_listed_equivalents():
    table = bench_figures.render_mutation(mutation_document())
    assert "| `metrics.py` | 385 of 410 (93.9%) | 385 of 392 (98.2%) | 2026-11-28 |" in table
    assert "| `training.py` | 435 of 460 (94.6%); 99 not checked | 435 of 439 (99.1%) | 2026-11-28 |" in table
    assert "| all 2 modules | 820 of 870 (94.3%); 99 not checked | 820 of 831 (98.7%) |" in table
    assert "commit `0123456` on 2026-12-05" in table


def test_mutation_score_writes_what_the_mutation_table_reads(tmp_path, monkeypatch, capsys):
    score = script_module("mutation_score")
    meta = tmp_path / "mutants" / "src" / "nextclose" / "metrics.py.meta"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"exit_code_by_key": {
        "nextclose.metrics.x_a__mutmut_1": 1, "nextclose.metrics.x_a__mutmut_2": 0,
        "nextclose.metrics.x_a__mutmut_3": 0, "nextclose.metrics.x_a__mutmut_4": None}}))
    (tmp_path / "mutation-equivalents.md").write_text("- `nextclose.metrics.x_a__mutmut_2`: the same value\n")
    monkeypatch.chdir(tmp_path)
    assert score.main([]) == 0
    assert not (tmp_path / score.SUMMARY).exists()  # printing alone writes nothing
    assert score.main(["--write"]) == 0
    document = json.loads((tmp_path / score.SUMMARY).read_text())
    assert document["modules"]["metrics.py"]["outcomes"] == {"killed": 1, "survived": 2, "not checked": 1}
    assert document["modules"]["metrics.py"]["equivalent"] == 1
    table = bench_figures.render_mutation(document)
    assert "| `metrics.py` | 1 of 3 (33.3%); 1 not checked | 1 of 2 (50.0%) |" in table
    assert "metrics.py: 1 of 3 mutants killed" in capsys.readouterr().out


# --- the panel's block: bench/results/sp500/, copied out of a run on the 20 stocks -------------

PANEL = REPO / headline.PANEL_REPORTS


def test_the_panel_verdict_is_the_walk_forward_rank_ics():
    """Ranking skill is claimed from the walk-forward Rank IC's HAC p-value, and only below 0.05."""
    needs_the_pages()
    metrics, backtest, ranking, run = (json.loads((PANEL / name).read_text()) for name in
                                       ("metrics.json", "backtest.json", "cross_section.json", "run.json"))
    walk = backtest["cross_section"]
    block = headline.render_panel(metrics, backtest, ranking, run)
    claimed = "ranking verdict: skill" in block
    assert claimed == (walk["rank_ic"]["p_value"] < 0.05 and walk["rank_ic"]["mean"] > 0)
    assert f"p {walk['rank_ic']['p_value']:.3f}" in block
    significant = walk | {"rank_ic": walk["rank_ic"] | {"mean": 0.05, "p_value": 0.001}}
    assert "ranking verdict: skill" in headline.render_panel(metrics, backtest | {"cross_section": significant},
                                                             ranking, run)
    # a strong test split alone never makes the claim
    strong_test = ranking | {"rank_ic": ranking["rank_ic"] | {"mean": 0.05, "p_value": 0.001}}
    assert ("ranking verdict: skill" in headline.render_panel(metrics, backtest, strong_test, run)) == claimed


@pytest.mark.parametrize("predictions, daily, summary", [
    ("panel_predictions.csv", "cross_section.csv", "cross_section.json"),
    ("backtest.csv", "backtest_cross_section.csv", "backtest.json"),
])
def test_the_committed_panel_figures_recompute_from_their_tables(predictions, daily, summary):
    """Every daily IC and Rank IC recomputes from the forecasts with pandas' own correlations,
    and the summary's means and long-short figures from the daily table."""
    import numpy as np
    import pandas as pd

    from nextclose import cross_section

    needs_the_pages()
    forecasts = pd.read_csv(PANEL / predictions, dtype={"symbol": str})
    forecasts = forecasts.assign(signal=forecasts["model"] / forecasts["persistence"] - 1,
                                 realised=forecasts["actual"] / forecasts["persistence"] - 1)
    table = pd.read_csv(PANEL / daily).set_index("date")
    by_day = forecasts.groupby("date")
    pearson = by_day.apply(lambda day: day["signal"].corr(day["realised"]))
    spearman = by_day.apply(lambda day: day["signal"].corr(day["realised"], method="spearman"))
    assert len(table) == len(pearson) > 100
    np.testing.assert_allclose(table["ic"], pearson.loc[table.index], rtol=0, atol=1e-12)
    np.testing.assert_allclose(table["rank_ic"], spearman.loc[table.index], rtol=0, atol=1e-12)
    document = json.loads((PANEL / summary).read_text())
    document = document.get("cross_section", document)
    recomputed = cross_section.figures_from_daily(table.reset_index(), document["long_short"]["top_k"],
                                                  document["long_short"]["cost_bps"], document["hac_lags"])
    for block in ("ic", "rank_ic", "long_short"):
        for key, value in recomputed[block].items():
            assert value == pytest.approx(document[block][key], rel=1e-9, abs=1e-12), (block, key)
    assert document["days"] == len(table) and document["symbols"] == forecasts["symbol"].nunique()
