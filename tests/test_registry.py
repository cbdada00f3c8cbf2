"""`nextclose champion`: the newest registered version challenges the champion (the end-to-end
test is in test_predict.py, on a workspace trained twice)."""

import pytest

from nextclose import cli, registry


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
