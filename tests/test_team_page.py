"""docs/how-to/team.md, Working as a team, is pasted as it is: its names must be the script's."""

from __future__ import annotations

from helpers import REPO, script_module


def test_the_team_page_uses_what_make_services_sets_up():
    services = script_module("services")
    section = (REPO / "docs" / "how-to" / "team.md").read_text()
    assert f"source {services.STATE}/env.sh" in section
    assert f"dvc remote add -d team s3://{services.BUCKET}/dvc" in section
    exported = services.client_variables("http://mlflow", "postgresql://db", "key", "secret", "http://s3")
    assert '"$NEXTCLOSE_S3_ENDPOINT"' in section and '"$OPTUNA_STORAGE"' in section
    for name in exported:  # each named where the page says what env.sh holds
        assert name in section or f"{name.split('_')[0]}_*" in section, name
    makefile = (REPO / "Makefile").read_text()
    assert "services: $(STAMP)\n\t$(BIN)/python scripts/services.py start\n" in makefile
