"""The team's servers on one machine, to try team mode: ``python scripts/services.py start`` (``make services``).

Starts, on loopback:

- PostgreSQL (``bash .ci/postgres``: a throwaway server, installing Debian's ``postgresql`` when
  missing, which needs root), or uses the one ``--postgres URL`` names; its database ``optuna``
  holds the studies and a database ``mlflow`` (made here) MLflow's runs and registry;
- an S3-compatible server, moto's (``moto_server``, in memory: gone when stopped), with the bucket
  ``nextclose``: the DVC remote under ``s3://nextclose/dvc``, MLflow's artifacts under
  ``s3://nextclose/mlflow``;
- ``mlflow server`` on that database, proxying the artifacts to the bucket, so its clients need
  only ``MLFLOW_TRACKING_URI`` and no S3 credentials.

It writes the variables a client sets to ``<state>/env.sh`` (and prints them): source it in each
shell. ``python scripts/services.py stop`` (``make services-stop``) ends what ``start`` started.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from loopback import NoAnswer, free_port, wait_until_up  # scripts/loopback.py, beside this file

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
BUCKET = "nextclose"
STATE = "/tmp/nextclose-services"  # pids, logs and env.sh
REGION = "us-east-1"


def make_database(postgres: str, name: str) -> str:
    """The URL of database ``name`` on the server of ``postgres``, made when missing."""
    import sqlalchemy

    url = sqlalchemy.engine.make_url(postgres)
    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            found = connection.execute(sqlalchemy.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                       {"name": name}).first()
            if not found:
                connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    except sqlalchemy.exc.SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        if url.password:
            reason = reason.replace(str(url.password), "***")
        raise SystemExit(f"PostgreSQL at {url.render_as_string(hide_password=True)}: cannot make the database "
                         f"{name!r} ({reason}); check that the server runs and the URL (--postgres)") from None
    finally:
        engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def launch(name: str, command: list[str], env: dict, state: Path) -> subprocess.Popen:
    """Start ``command`` in a session of its own (so ``stop`` ends it with its workers), logging to
    ``<state>/<name>.log``, and record its pid."""
    log = state / f"{name}.log"
    with log.open("ab") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True, cwd=state)
    pids_file = state / "pids.json"
    pids = json.loads(pids_file.read_text()) if pids_file.exists() else {}
    pids[name] = process.pid
    pids_file.write_text(json.dumps(pids))
    return process


def client_variables(tracking: str, postgres: str, key_id: str, secret: str, s3: str) -> dict[str, str]:
    """What a client of the servers sets (env.sh)."""
    return {
        "MLFLOW_TRACKING_URI": tracking,
        "OPTUNA_STORAGE": postgres,
        # for dvc push / pull only: the remote's credentials, never in .dvc/config
        "AWS_ACCESS_KEY_ID": key_id,
        "AWS_SECRET_ACCESS_KEY": secret,
        "NEXTCLOSE_S3_ENDPOINT": s3,  # the remote's endpointurl
    }


def start(args: argparse.Namespace) -> None:
    state = Path(args.state)
    if (state / "pids.json").exists():
        raise SystemExit(f"services already started from {state}: stop them first (scripts/services.py stop)")
    state.mkdir(parents=True, exist_ok=True)
    s3_port = free_port() if args.free_ports else args.s3_port
    mlflow_port = free_port() if args.free_ports else args.mlflow_port
    key_id, secret = f"nextclose-{secrets.token_hex(4)}", secrets.token_hex(16)  # moto takes any
    try:
        postgres = args.postgres
        if not postgres:
            started = subprocess.run(["bash", str(ROOT / ".ci" / "postgres")], capture_output=True, text=True)
            if started.returncode != 0:
                raise SystemExit(f".ci/postgres could not start PostgreSQL (it needs root to install it):\n"
                                 f"{started.stderr[-2000:]}")
            postgres = started.stdout.strip()
            (state / "postgres-started").write_text(postgres + "\n")
        mlflow_database = make_database(postgres, args.mlflow_database)

        s3 = f"http://127.0.0.1:{s3_port}"
        # the database URL in the environment, not the command line: the process list shows no password
        server_env = dict(os.environ, AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret,
                          AWS_DEFAULT_REGION=REGION, MLFLOW_S3_ENDPOINT_URL=s3,
                          MLFLOW_BACKEND_STORE_URI=mlflow_database)
        moto = launch("s3", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)], server_env, state)
        wait_until_up(f"{s3}/", moto, log=state / "s3.log", any_answer=True)
        import boto3

        boto3.client("s3", endpoint_url=s3, aws_access_key_id=key_id, aws_secret_access_key=secret,
                     region_name=REGION).create_bucket(Bucket=BUCKET)

        tracking = f"http://127.0.0.1:{mlflow_port}"
        mlflow = launch("mlflow", [
            str(BIN / "mlflow"), "server", "--artifacts-destination", f"s3://{BUCKET}/mlflow",
            "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1",
        ], server_env, state)
        wait_until_up(f"{tracking}/health", mlflow, log=state / "mlflow.log")
    except BaseException:
        stop(args)
        raise
    exports = client_variables(tracking, postgres, key_id, secret, s3)
    text = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in exports.items())
    (state / "env.sh").unlink(missing_ok=True)
    with os.fdopen(os.open(state / "env.sh", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as env_file:
        env_file.write(text)  # the keys (and a database password): readable by this user only
    print(text, end="")


def stop(args: argparse.Namespace) -> None:
    state = Path(args.state)
    pids_file = state / "pids.json"
    pids = json.loads(pids_file.read_text()) if pids_file.exists() else {}
    for name, pid in reversed(list(pids.items())):
        try:
            os.killpg(pid, signal.SIGTERM)  # its own session: the server and its workers
        except ProcessLookupError:
            continue
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            print(f"{name} (pid {pid}) did not stop in 30 s: killed", file=sys.stderr)
            os.killpg(pid, signal.SIGKILL)
    pids_file.unlink(missing_ok=True)
    (state / "env.sh").unlink(missing_ok=True)
    if (state / "postgres-started").exists():
        subprocess.run(["bash", str(ROOT / ".ci" / "postgres"), "stop"], check=True)
        (state / "postgres-started").unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--state", default=STATE,
                        help="folder of the pids, logs and env.sh (default: %(default)s)")
    parser.add_argument("--postgres", help="a PostgreSQL URL to use instead of starting one (.ci/postgres)")
    parser.add_argument("--mlflow-database", default="mlflow", help="MLflow's database (default: %(default)s)")
    parser.add_argument("--mlflow-port", type=int, default=5000)
    parser.add_argument("--s3-port", type=int, default=9000)
    parser.add_argument("--free-ports", action="store_true", help="any free loopback ports instead")
    args = parser.parse_args()
    try:
        start(args) if args.action == "start" else stop(args)
    except NoAnswer as error:
        raise SystemExit(str(error)) from None


if __name__ == "__main__":
    main()
