"""Driving the real tools as a user's shell does: ``from helpers.tools import ...``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

from helpers import REPO, write_params

BIN = Path(sys.executable).parent


def tool_env() -> dict:
    """The environment of a user's shell: the venv's tools first, default stores."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    for name in ("MLFLOW_TRACKING_URI", "OPTUNA_STORAGE", "DVC_ROOT", "DVC_EXP_NAME",
                 "NEXTCLOSE_EXECUTION_ID"):
        env.pop(name, None)
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


def run(args, cwd, timeout=900, columns=None, env: Optional[dict] = None) -> str:
    """Run a command in ``cwd`` with :func:`tool_env` (plus ``env``); its output, or a failure with it."""
    env = tool_env() | ({"COLUMNS": str(columns)} if columns else {}) | (env or {})
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout + done.stderr


def commit(repo: Path, message: str) -> str:
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", message], repo)
    return run(["git", "rev-parse", "HEAD"], repo).strip()


def copy_repo(destination: Path, params: dict) -> Path:
    """The project's tracked and new files (not its stores or outputs) with ``params``, as a fresh git repo."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()
    for name in listed:
        source = REPO / name
        if source.is_file() and not name.startswith(("bench/", "reports/")):
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (destination / "dvc.lock").unlink(missing_ok=True)
    run(["git", "init", "-q", "-b", "main"], destination)
    run(["git", "config", "user.email", "ci@nextclose.invalid"], destination)
    run(["git", "config", "user.name", "nextclose tests"], destination)
    write_params(destination, params)
    commit(destination, "tiny pipeline")
    return destination


# --- the servers of a team (scripts/services.py), for the team and redaction tests ---------------

POSTGRES = os.environ.get("NEXTCLOSE_TEST_POSTGRES")
BUCKET = "nextclose"


def services_script(*args: str) -> str:
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "services.py"), *args],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"services.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr[-4000:]}"
    return done.stdout


def drop_database(name: str) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(sqlalchemy.engine.make_url(POSTGRES), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


def database_url(name: str) -> str:
    """The URL of database ``name`` on the test's PostgreSQL server."""
    import sqlalchemy

    return sqlalchemy.engine.make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)


def s3_client(services: dict):
    import boto3

    return boto3.client("s3", endpoint_url=services["NEXTCLOSE_S3_ENDPOINT"], region_name="us-east-1",
                        aws_access_key_id=services["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=services["AWS_SECRET_ACCESS_KEY"])


def bucket_keys(services: dict, prefix: str) -> list[str]:
    pages = s3_client(services).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]
