"""Fixtures: a scratch workspace with tiny params and its own tracking store.

Helpers the tests share live in ``tests/helpers/`` (``from helpers import ...``).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from helpers import tiny_params, write_params


def pytest_collection_modifyitems(items):
    """Mark every test that runs in a scratch workspace ``stage``: those run stages end to end,
    for seconds each, and ``make mutate`` leaves them out (see ``[tool.mutmut]``)."""
    for item in items:
        if "workspace" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.stage)
    # Under mutmut (which runs in mutants/, beside its stats), run a mutant's tests fastest
    # first: its run stops at the first failure, so a killed mutant then costs its cheapest
    # failing test rather than whichever slow test came first.
    stats = Path("mutmut-stats.json")
    if "MUTANT_UNDER_TEST" in os.environ and stats.is_file():
        seconds = json.loads(stats.read_text())["duration_by_test"]
        items.sort(key=lambda item: seconds.get(item.nodeid, 0.0))


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A scratch working directory with tiny params and its own MLflow store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.delenv("OPTUNA_STORAGE", raising=False)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    write_params(tmp_path, tiny_params())
    return tmp_path


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    """The servers of a team, on free loopback ports: the variables ``services.py start`` printed,
    and ``mlflow_database``, the name of the MLflow server's database."""
    from helpers.tools import POSTGRES, drop_database, services_script

    if not POSTGRES:
        pytest.skip("no PostgreSQL server: export NEXTCLOSE_TEST_POSTGRES=$(bash .ci/postgres)")
    state = tmp_path_factory.mktemp("services")
    database = f"mlflow_{uuid.uuid4().hex[:8]}"  # the server outlives the test: a database of its own
    try:
        printed = services_script("start", "--postgres", POSTGRES, "--state", str(state), "--free-ports",
                                  "--mlflow-database", database)
        variables = dict(line.removeprefix("export ").split("=", 1) for line in printed.splitlines())
        yield variables | {"mlflow_database": database}
    finally:
        services_script("stop", "--state", str(state))
        drop_database(database)
