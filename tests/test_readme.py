"""The README's headline figures are the committed reports' (written by `make figures`)."""

from __future__ import annotations

import json

import pytest

from nextclose import headline

from helpers import REPO, script_module


def committed(name: str) -> dict:
    return json.loads((REPO / "reports" / name).read_text())


def test_the_readme_headline_is_what_the_committed_reports_give():
    text = (REPO / "README.md").read_text()
    assert headline.current_block(text) == headline.render(committed("metrics.json"), committed("backtest.json")), (
        "README.md's headline figures differ from reports/: run `make figures`")


def test_the_headline_claims_skill_only_below_the_diebold_mariano_threshold():
    backtest = committed("backtest.json")
    block = headline.render(committed("metrics.json"), backtest)
    p_value = backtest["pooled"]["dm_p_value"]
    assert ("verdict: skill over" in block) == (p_value < 0.05)
    better = backtest | {"pooled": backtest["pooled"] | {"dm_p_value": 0.01}}
    assert "verdict: skill over" in headline.render(committed("metrics.json"), better)
    assert f"{backtest['pooled']['interval_coverage']:.1%}" in block


def test_the_block_is_replaced_between_its_markers_only():
    text = f"before\n{headline.BEGIN}\nold\nlines\n{headline.END}\nafter\n"
    assert headline.replace_block(text, "new") == f"before\n{headline.BEGIN}\nnew\n{headline.END}\nafter\n"
    assert headline.current_block(headline.replace_block(text, "new")) == "new"
    with pytest.raises(ValueError, match="README.md: the markers"):
        headline.replace_block("no markers", "new")


def test_make_figures_leaves_the_prose_as_written_and_redacts_the_blocks(tmp_path):
    # The README documents the URL forms redaction rewrites (scheme://user:password@): rewriting
    # the blocks must not redact the prose around them, nor let a password through the blocks.
    readme = tmp_path / "README.md"
    readme.write_text((REPO / "README.md").read_text())
    assert headline.main(readme, REPO / "reports", REPO / "bench" / "results" / "sp500") == 0
    assert readme.read_text() == (REPO / "README.md").read_text()
    assert "`scheme://user:password@`" in readme.read_text()
    panel = tmp_path / "sp500"
    panel.mkdir()
    for source in (REPO / "bench" / "results" / "sp500").glob("*.json"):
        (panel / source.name).write_text(source.read_text())
    run = json.loads((panel / "run.json").read_text())
    (panel / "run.json").write_text(json.dumps(run | {"command": "dvc repro --storage postgresql://u:hunter2@db/x"}))
    assert headline.main(readme, REPO / "reports", panel) == 0
    assert "hunter2" not in headline.current_block(readme.read_text(), headline.PANEL_BEGIN, headline.PANEL_END)
    assert "`scheme://user:password@`" in readme.read_text()


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


def test_the_team_section_uses_what_make_services_sets_up():
    """README: Working as a team is pasted as it is: its names must be the script's."""
    services = script_module("services")
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Working as a team"):text.index("## Params")]
    assert f"source {services.STATE}/env.sh" in section
    assert f"dvc remote add -d team s3://{services.BUCKET}/dvc" in section
    exported = services.client_variables("http://mlflow", "postgresql://db", "key", "secret", "http://s3")
    assert '"$NEXTCLOSE_S3_ENDPOINT"' in section and '"$OPTUNA_STORAGE"' in section
    for name in exported:  # each named where the section says what env.sh holds
        assert name in section or f"{name.split('_')[0]}_*" in section, name
    makefile = (REPO / "Makefile").read_text()
    assert "services: $(STAMP)\n\t$(BIN)/python scripts/services.py start\n" in makefile


# --- the panel's block: bench/results/sp500/, copied out of a run on the 20 stocks -------------

PANEL = REPO / headline.PANEL_REPORTS


def test_the_readme_panel_block_is_what_the_committed_panel_reports_give():
    text = (REPO / "README.md").read_text()
    assert headline.current_block(text, headline.PANEL_BEGIN, headline.PANEL_END) == headline.render_panel_from(
        PANEL), "README.md's panel figures differ from bench/results/sp500/: run `make figures`"


def test_the_panel_verdict_is_the_walk_forward_rank_ics():
    """Ranking skill is claimed from the walk-forward Rank IC's HAC p-value, and only below 0.05."""
    metrics, backtest, ranking, run = headline.read_reports(
        PANEL, "metrics.json", "backtest.json", "cross_section.json", "run.json")
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
