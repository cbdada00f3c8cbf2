"""Every trained model is a registered version; `nextclose champion` aliases the best one."""

import json

import mlflow
import numpy as np
import pytest

from nextclose import cli, registry
from nextclose.layout import read_windows

from helpers import tiny_params, write_params


def test_choose_champion_takes_the_lowest_figure_and_skips_missing():
    assert registry.choose_champion({"1": 0.9, "2": 0.7, "3": None, "4": float("nan")}) == "2"
    assert registry.choose_champion({"1": 0.5, "2": 0.5}) == "1"
    assert registry.choose_champion({"1": None}) is None


@pytest.mark.slow  # three trainings and evaluations end to end: with the pipeline's tests
def test_each_training_registers_a_version_and_champion_moves_the_alias(workspace, capsys):
    assert cli.main(["prepare"]) == 0
    figures = {}
    for steps in (20, 60):
        write_params(workspace, tiny_params(train={"steps": steps, "learning_rate": 0.01}))
        assert cli.main(["train"]) == 0
        assert cli.main(["evaluate"]) == 0
        train = json.loads((workspace / "models/train.json").read_text())
        trained_by = json.loads((workspace / ".nextclose/train_run.json").read_text())
        assert trained_by["registered_model"] == "nextclose-lstm"
        metrics = json.loads((workspace / "reports/metrics.json").read_text())
        figures[str(trained_by["registered_version"])] = (train["best_val_loss"], metrics["rmse_ratio_persistence"])
    assert sorted(figures) == ["1", "2"]

    client = mlflow.MlflowClient()
    # the default chooses on validation (the served ensemble's loss), and the tag says so;
    # choosing on a test figure is allowed, with a note that it spends the test split
    for argv, position, split in (([], 0, "validation"), (["--metric", "rmse_ratio_persistence"], 1, "test")):
        capsys.readouterr()
        assert cli.main(["champion", *argv]) == 0
        expected = min(figures, key=lambda v: (figures[v][position], int(v)))
        version = client.get_model_version_by_alias("nextclose-lstm", "champion")
        assert str(version.version) == expected
        assert version.tags["champion_chosen_on"] == split
        out = capsys.readouterr().out
        assert "<- champion" in out and (("chosen on the test split" in out) == (split == "test"))

    champion = mlflow.pyfunc.load_model("models:/nextclose-lstm@champion")
    x = read_windows(workspace / "data/prepared")["test"].inputs[:3]
    assert np.asarray(champion.predict(x)).shape == (3,)


def test_champion_without_models_is_a_clear_error(workspace, capsys):
    assert cli.main(["champion"]) == 2
    assert "no versions of registered model 'nextclose-lstm'" in capsys.readouterr().err
