"""`nextclose champion`: the newest registered version challenges the champion (the end-to-end
test is in test_predict.py, on a workspace trained twice)."""

import mlflow
import pytest

from nextclose import cli, registry, tracking
from nextclose.commands import champion
from nextclose.errors import UserError


@pytest.mark.parametrize("newest, champion, expected", [
    (("2", 0.5), None, ("2", True, "version 2's best_val_loss 0.5; there was no champion")),
    (("2", 0.5), ("1", 0.7), ("2", True, "version 2's best_val_loss 0.5 is below champion version 1's 0.7")),
    (("2", 0.7), ("1", 0.7), ("1", False, "version 2's best_val_loss 0.7 is not below champion version 1's 0.7")),
    (("2", 0.9), ("1", 0.7), ("1", False, "is not below champion version 1's 0.7")),
    (("2", 0.9), ("1", None), ("2", True, "champion version 1 has no best_val_loss")),
    (("2", 0.9), ("1", float("nan")), ("2", True, "champion version 1 has no best_val_loss")),
    (("2", 0.9), ("2", 0.9), ("2", False, "version 2 is already the champion")),
    (("2", 0.9), ("1", 0.7, "takes tensors"), ("2", True, "0.9; champion version 1 takes tensors")),
])
def test_the_challenger_takes_the_title_only_with_a_lower_figure(newest, champion, expected):
    decision = registry.challenge("best_val_loss", *newest, *(champion or (None, None)))
    assert (decision.champion, decision.moved) == expected[:2]
    assert expected[2] in decision.reason


@pytest.mark.parametrize("figure", [None, float("inf")])
def test_a_challenger_without_the_figure_is_refused(figure):
    with pytest.raises(registry.RegistryError, match="version 3 has no backtest_rmse_ratio; run the backtest"):
        registry.challenge("backtest_rmse_ratio", "3", figure, "1", 0.9)


def test_no_test_split_figure_can_choose():
    assert set(registry.SPLITS.values()) == {"validation", "in-sample", "backtest"}
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["champion", "--metric", "rmse_ratio_persistence"])


def test_champion_without_models_is_a_clear_error(workspace, capsys):
    assert cli.main(["champion"]) == 2
    assert "no versions of registered model 'nextclose-lstm'" in capsys.readouterr().err


@pytest.mark.parametrize("newest, champion, expected", [
    (0.05, 0.02, ("2", True, "version 2's backtest_rank_ic 0.05 is above champion version 1's 0.02 "
                             "(higher is better)")),
    (0.02, 0.05, ("1", False, "version 2's backtest_rank_ic 0.02 is not above champion version 1's 0.05")),
    (0.03, 0.03, ("1", False, "is not above")),  # a tie keeps the champion
    (-0.01, -0.02, ("2", True, "is above")),
])
def test_a_figure_where_higher_is_better_crowns_the_higher(newest, champion, expected):
    decision = registry.challenge("backtest_rank_ic", "2", newest, "1", champion)
    assert (decision.champion, decision.moved) == expected[:2]
    assert expected[2] in decision.reason


def test_every_metric_has_one_direction_and_the_words_follow_it():
    assert registry.DIRECTIONS == {"best_val_loss": "min", "final_cost": "min", "backtest_rmse_ratio": "min",
                                   "backtest_rank_ic": "max"}
    assert set(registry.BY_NAME) == set(registry.TRAIN_METRICS + registry.EXECUTION_METRICS)
    assert registry.PANEL_METRICS == ("backtest_rank_ic",)
    assert [registry.is_better("best_val_loss", 0.4, than) for than in (0.5, 0.4, 0.3)] == [True, False, False]
    assert [registry.is_better("backtest_rank_ic", 0.4, than) for than in (0.5, 0.4, 0.3)] == [False, False, True]
    assert "(lower is better)" in registry.challenge("backtest_rmse_ratio", "2", 0.9, "1", 0.95).reason
    assert registry.metric_split("backtest_rank_ic") == "backtest"


def test_rank_ic_is_refused_for_one_series_models_and_named_when_missing():
    registry.check_metric("backtest_rank_ic", panel=True)
    registry.check_metric("best_val_loss", panel=False)
    with pytest.raises(UserError, match=r"backtest_rank_ic: only for the global models of panels \(--panel\)"):
        registry.check_metric("backtest_rank_ic", panel=False)
    with pytest.raises(registry.RegistryError, match="version 3 has no backtest_rank_ic; run the backtest stage "
                                                     "on a panel of at least two symbols"):
        registry.challenge("backtest_rank_ic", "3", None, "1", 0.02)


def test_champion_on_rank_ic_without_panel_exits_2_before_reading_the_store(workspace, capsys):
    assert cli.main(["champion", "--metric", "backtest_rank_ic"]) == 2
    assert "only for the global models of panels (--panel)" in capsys.readouterr().err
    assert not (workspace / "mlflow.db").exists()


def fake_panel_versions(figures: list) -> tuple[mlflow.MlflowClient, list[str]]:
    """Registered versions of nextclose-lstm-panel, each trained by a finished run of its own
    pipeline execution, whose run has ``backtest_rank_ic`` (None: not logged); the client and
    the executions' run ids."""
    uri = tracking.tracking_uri()
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    train = client.create_experiment("nextclose-train")
    pipeline = client.create_experiment(tracking.PIPELINE_EXPERIMENT)
    client.create_registered_model("nextclose-lstm-panel")
    executions = []
    for number, figure in enumerate(figures, start=1):
        execution = f"execution-{number}"
        train_run = client.create_run(train, tags={"pipeline_execution": execution})
        client.set_terminated(train_run.info.run_id)
        run = client.create_run(pipeline, tags={"pipeline_execution": execution})
        if figure is not None:
            client.log_metric(run.info.run_id, "backtest_rank_ic", figure)
        client.set_terminated(run.info.run_id)
        executions.append(run.info.run_id)
        client.create_model_version("nextclose-lstm-panel", f"runs:/{train_run.info.run_id}/model",
                                    train_run.info.run_id)
    return client, executions


def test_champion_on_rank_ic_moves_to_the_higher_and_says_so(workspace, capsys, monkeypatch):
    monkeypatch.setattr(champion, "takes_bars", lambda name, version: True)  # no real models here
    client, executions = fake_panel_versions([0.01, 0.03, None])
    assert cli.main(["champion", "--panel", "--metric", "backtest_rank_ic"]) == 0
    out = capsys.readouterr().out
    assert "passed over version 3 (no backtest_rank_ic)" in out
    assert ("version 2 is now @champion: version 2's backtest_rank_ic 0.03; there was no champion (backtest)"
            in out)
    client.set_registered_model_alias("nextclose-lstm-panel", "champion", "1")
    assert cli.main(["champion", "--panel", "--metric", "backtest_rank_ic"]) == 0
    assert ("version 2 is now @champion: version 2's backtest_rank_ic 0.03 is above champion version 1's 0.01 "
            "(higher is better) (backtest)") in capsys.readouterr().out
    assert str(client.get_model_version_by_alias("nextclose-lstm-panel", "champion").version) == "2"
    # a champion with the higher figure stays
    client.log_metric(executions[0], "backtest_rank_ic", 0.05, step=1)
    client.set_registered_model_alias("nextclose-lstm-panel", "champion", "1")
    assert cli.main(["champion", "--panel", "--metric", "backtest_rank_ic"]) == 0
    assert ("version 1 stays @champion: version 2's backtest_rank_ic 0.03 is not above champion version 1's 0.05"
            in capsys.readouterr().out)
    assert str(client.get_model_version_by_alias("nextclose-lstm-panel", "champion").version) == "1"


def test_champion_on_rank_ic_when_no_version_has_it_says_what_to_run(workspace, capsys, monkeypatch):
    monkeypatch.setattr(champion, "takes_bars", lambda name, version: True)
    fake_panel_versions([None, None])
    assert cli.main(["champion", "--panel", "--metric", "backtest_rank_ic"]) == 2
    assert ("no version of 'nextclose-lstm-panel' can be champion: none has backtest_rank_ic and takes bars "
            "(run the train stage); run the backtest stage on a panel of at least two symbols"
            in capsys.readouterr().err)
