"""No secret leaves nextclose: one redaction function at its three ways out (MLflow, files, output).

Unit tests of :mod:`nextclose.redaction`; the MLflow boundary against a real store; a scan of the
code that fails on any route around the boundary; and, slow, the whole pipeline run with
passwords in ``OPTUNA_STORAGE``, ``MLFLOW_TRACKING_URI`` and the S3 credentials, then every byte
it left searched for them.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from nextclose import redaction, tracking
from nextclose.params import ParamsError, parse_params

from helpers import REPO, tiny_params, write_params

SRC = REPO / "src" / "nextclose"
POSTGRES = os.environ.get("NEXTCLOSE_TEST_POSTGRES")


def secret() -> tuple[str, list[str]]:
    """A password with "/", ":" and "@" in it, and the two tokens that mark any piece of it."""
    head, tail = f"sEcA{uuid.uuid4().hex[:12]}", f"sEcZ{uuid.uuid4().hex[:12]}"
    return f"{head}/pa:ss@{tail}", [head, tail]


def in_url(password: str) -> str:
    """The password as a URL's userinfo holds it: "/" and ":" as they are, "@" as %40."""
    return quote(password, safe="/:")


# --- the function ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, shown", [
    ("postgresql://tuner:s3cret@db:5432/optuna", "postgresql://tuner:***@db:5432/optuna"),
    ("postgresql+psycopg2://tuner:se/cr:et@db/optuna", "postgresql+psycopg2://tuner:***@db/optuna"),
    ("mysql://tuner:a%40b@db/optuna", "mysql://tuner:***@db/optuna"),
    ("mysql://tuner:raw@at@db/optuna", "mysql://tuner:***@db/optuna"),
    ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
    ("http://team:pw@127.0.0.1:5000", "http://team:***@127.0.0.1:5000"),
    ("storage postgresql://u:p@h/db, then more text: a@b", "storage postgresql://u:***@h/db, then more text: a@b"),
    ('{"storage": "postgresql://u:pw@h/db", "mail": "a@b"}', '{"storage": "postgresql://u:***@h/db", "mail": "a@b"}'),
    ("postgresql://tuner@db/optuna", "postgresql://tuner@db/optuna"),
    ("http://127.0.0.1:5000/#/experiments/1 by me@host", "http://127.0.0.1:5000/#/experiments/1 by me@host"),
    ("sqlite:///studies.db and file:///a/b:c@d", "sqlite:///studies.db and file:///a/b:c@d"),
    ("mlflow-artifacts:/1/a models:/nextclose-lstm@champion", "mlflow-artifacts:/1/a models:/nextclose-lstm@champion"),
])
def test_a_url_password_is_masked_whatever_it_holds(text, shown, monkeypatch):
    for name in list(os.environ):
        monkeypatch.delenv(name)
    assert redaction.redact(text) == shown
    assert redaction.redact(shown) == shown  # masking twice changes nothing


def test_the_environments_credentials_are_masked_in_every_spelling(monkeypatch):
    password, tokens = secret()
    monkeypatch.setenv("OPTUNA_STORAGE", f"postgresql://tuner:{in_url(password)}@db/optuna")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")  # an identifier, not a secret
    monkeypatch.setenv("PGPASSWORD", "xyz")  # too short to mask as free text
    for spelling in (password, in_url(password), quote(password, safe=""), json.dumps(password)[1:-1]):
        shown = redaction.redact(f"could not connect with {spelling}: testing xyz")
        assert shown == "could not connect with ***: testing xyz", spelling
        assert not any(token in shown for token in tokens)
    assert redaction.redact("key wJalrXUtnFEMI%2FK7MDENG%2FbPxRfiCYzEXAMPLEKEY") == "key ***"


def test_weak_credentials_mask_urls_not_keys_dates_or_words(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:mlflow@tracking:5000")
    monkeypatch.setenv("PGPASSWORD", "2024")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")  # no token: names are read by whole parts
    monkeypatch.setenv("MYSQL_PWD", "0123456789")
    text = 'mlflow.note.content 2024-01-02 12024.5 {"arima": false} tracking http://mlflow:mlflow@tracking:5000'
    assert redaction.redact(text) == text.replace("mlflow:mlflow@", "mlflow:***@")
    assert redaction.redact("pwd 0123456789, in 90123456789") == "pwd ***, in 90123456789"


@pytest.mark.parametrize("name, credential", [
    ("AWS_SECRET_ACCESS_KEY", True), ("AWS_ACCESS_KEY_ID", False), ("PGPASSWORD", True), ("MYSQL_PWD", True),
    ("PWD", False), ("OLDPWD", False), ("TOKENIZERS_PARALLELISM", False), ("MLFLOW_TRACKING_TOKEN", True),
    ("GITHUB_TOKEN", True), ("JQDATA_PASSWORD", True), ("OPENAI_API_KEY", True), ("DJANGO_SECRET_KEY", True),
    ("SSH_AUTH_SOCK", False), ("GPG_KEY", False), ("MLFLOW_TRACKING_PASSWORD", True),
])
def test_credential_variables_are_named_like_one(name, credential):
    assert bool(redaction.CREDENTIAL_NAME.search(name)) == credential


def test_a_password_in_a_url_query_is_masked_and_refused():
    url = "postgresql://tuner@db/optuna?password=hunter2secret&sslmode=require"
    assert redaction.redact(url) == "postgresql://tuner@db/optuna?password=***&sslmode=require"
    assert redaction.password_in_url(url) == "hunter2secret"
    with pytest.raises(ParamsError, match="tune.storage: holds a password"):
        parse_params(tiny_params(tune={"storage": url}))


def test_text_without_secrets_is_unchanged(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-123456")
    text = (REPO / "reports" / "metrics.json").read_text() + (REPO / "params.yaml").read_text()
    assert redaction.redact(text) == text


def test_redacted_streams_mask_what_is_printed_even_in_pieces(capsys, monkeypatch):
    monkeypatch.setenv("OPTUNA_STORAGE", "postgresql://tuner:pa/ss:w%40rd@db/optuna")
    redaction.redact_process_output()
    redaction.redact_process_output()  # once is enough: not wrapped twice
    assert not isinstance(sys.stdout.stream, redaction.RedactedStream)
    print("storage postgresql://tuner:pa/ss:w%40rd@db/optuna, password pa/ss:w@rd")
    print("pieces: pa/ss:", "w@rd", sep="")  # a secret written in two writes
    print("to stderr: pa/ss:w@rd", file=sys.stderr)
    print("a progress line pa/ss:w@rd", end="\r", flush=True)
    captured = capsys.readouterr()
    assert captured.out == "storage postgresql://tuner:***@db/optuna, password ***\npieces: ***\na progress line ***\r"
    assert captured.err == "to stderr: ***\n"
    with pytest.raises(AttributeError):
        _ = sys.stdout.buffer


def test_the_command_prints_through_the_redaction(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPTUNA_STORAGE", "postgresql://u:hunter2x@db/x")
    from nextclose import cli

    assert cli.main(["prepare", "--params", "hunter2x.yaml"]) == 2
    assert capsys.readouterr().err == "nextclose prepare: error: ***.yaml: params file not found\n"


def test_a_tracking_uri_whose_password_a_url_cannot_hold_is_named_not_shown():
    password, tokens = secret()
    for uri in (f"http://team:{in_url(password)}@127.0.0.1:1", f"http://team:{password}@127.0.0.1:1"):
        with pytest.raises(tracking.TrackingServerDown) as refused:
            tracking.check_server(uri)
        assert "must percent-encode (/ as %2F" in str(refused.value), uri
        assert not any(token in str(refused.value) for token in tokens)
    with pytest.raises(tracking.TrackingServerDown) as down:  # encoded, it is a URL: nothing answers there
        tracking.check_server(f"http://team:{quote(password, safe='')}@127.0.0.1:1", timeout=2)
    assert "no MLflow server answers there" in str(down.value)
    assert not any(token in str(down.value) for token in tokens)


# --- params.yaml refuses a password ----------------------------------------------------------------

def test_a_password_in_tune_storage_is_refused_naming_the_key_not_the_password():
    password, tokens = secret()
    raw = tiny_params(tune={"storage": f"postgresql+psycopg2://postgres:{in_url(password)}@127.0.0.1:5/optuna"})
    with pytest.raises(ParamsError) as refused:
        parse_params(raw, "params.yaml")
    message = str(refused.value)
    assert message.startswith("params.yaml: tune.storage: holds a password")
    assert "OPTUNA_STORAGE" in message and ".pgpass" in message and "git" in message
    assert not any(token in message for token in tokens) and "%40" not in message
    # without a password, a server URL stays allowed
    allowed = tiny_params(tune={"storage": "postgresql+psycopg2://postgres@127.0.0.1:5/optuna"})
    assert parse_params(allowed).tune.storage == "postgresql+psycopg2://postgres@127.0.0.1:5/optuna"


def test_the_stages_exit_2_on_a_password_in_params(tmp_path):
    password, tokens = secret()
    write_params(tmp_path, tiny_params(tune={"storage": f"redis://:{in_url(password)}@127.0.0.1:6379/0"}))
    for stage in ("prepare", "tune"):
        done = subprocess.run([sys.executable, "-m", "nextclose", stage], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"nextclose {stage}: error: params.yaml: tune.storage: holds a password")
        assert not any(token in done.stdout + done.stderr for token in tokens)


# --- run names -------------------------------------------------------------------------------------

def test_run_names_say_only_what_the_experiment_changed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    subprocess.run(["git", "init", "-q"], check=True)
    write_params(tmp_path, tiny_params())
    subprocess.run(["git", "add", "params.yaml"], check=True)
    subprocess.run(["git", "-c", "user.email=t@t.invalid", "-c", "user.name=t", "commit", "-qm", "p"], check=True)
    write_params(tmp_path, tiny_params(tune={"storage": "postgresql://tuner@db/optuna", "n_trials": 1},
                                       evaluate={"interval": 0.8}, model={"hidden_units": 16}))
    assert tracking.execution_name() == "hidden_units=16"


# --- the MLflow boundary, against a real store ------------------------------------------------------

def _every_byte(*places: Path) -> bytes:
    return b"".join(path.read_bytes() for place in places if place.exists()
                    for path in ([place] if place.is_file() else sorted(place.rglob("*"))) if path.is_file())


def test_every_kind_of_string_sent_to_mlflow_is_redacted(tmp_path, monkeypatch):
    import pandas as pd

    password, tokens = secret()
    url = f"postgresql://tuner:{in_url(password)}@db.example/optuna"
    monkeypatch.setenv("OPTUNA_STORAGE", url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    client = tracking.open_client()  # (sets MLflow's URI: another test may have set another)
    mlflow = tracking.mlflow_api()
    experiment = client.create_experiment("leaks", artifact_location=(tmp_path / "mlartifacts").as_uri())
    client.set_experiment_tag(experiment, "storage", url)
    mlflow.set_experiment("leaks")
    text_file = tmp_path / "notes.yaml"
    text_file.write_text(f"storage: {url}\npassword: {password}\n")
    from mlflow.entities import Param, RunTag

    with mlflow.start_run(run_name=f"storage={url}", tags={"storage": url}, description=password) as run:
        mlflow.log_param("storage", url)
        mlflow.log_params({"password": password, "storage_url": url})
        mlflow.set_tag("note", f"connecting with {password}")
        mlflow.set_tags({"mlflow.note.content": f"[{url}]"})
        mlflow.log_dict({"storage": url, "nested": [password]}, "study.json")
        mlflow.log_text(f"storage {url}", "study.txt")
        mlflow.log_artifact(str(text_file))
        mlflow.log_artifact(str(text_file), "copies")
        frame = pd.DataFrame({"close": [1.0, 2.0]})
        dataset = mlflow.data.pandas_dataset.from_pandas(frame, source=f"/data/{password}.csv", name=password)
        mlflow.log_input(dataset, context=url)
        model = mlflow.initialize_logged_model(name="m", params={"storage": url}, tags={"password": password})
        client.set_logged_model_tags(model.model_id, {"again": url})
        client.log_batch(run.info.run_id, params=[Param("batch", url)], tags=[RunTag("batch", password)])
    other = client.create_run(experiment, run_name=password, tags={"storage": url})
    client.set_tag(other.info.run_id, "password", password)
    client.create_registered_model("leaks-model", tags={"storage": url}, description=password)
    client.set_registered_model_tag("leaks-model", "password", password)
    client.update_registered_model("leaks-model", description=url)

    logged = _every_byte(tmp_path / "mlflow.db", tmp_path / "mlartifacts")
    assert not any(token.encode() in logged for token in tokens)
    stored = client.get_run(run.info.run_id)
    assert stored.info.run_name == "storage=postgresql://tuner:***@db.example/optuna"
    assert stored.data.params["password"] == "***" and stored.data.tags["note"] == "connecting with ***"
    artifacts = tmp_path / "mlartifacts" / run.info.run_id / "artifacts"
    shown = "storage: postgresql://tuner:***@db.example/optuna\npassword: ***\n"
    assert (artifacts / "notes.yaml").read_text() == shown
    assert (artifacts / "copies" / "notes.yaml").exists()

    # The search finds what a call around the boundary sends.
    import mlflow as raw

    with raw.start_run(experiment_id=experiment):
        raw.set_tag("around", password)
    assert tokens[0].encode() in _every_byte(tmp_path / "mlflow.db")


def test_only_what_nextclose_uses_is_reachable_through_the_boundary(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = tracking.open_client()
    for name in ("log_artifacts", "autolog", "log_table", "_tracking_client", "_target_"):
        with pytest.raises(AttributeError, match="not reachable"):
            getattr(tracking.mlflow_api() if name != "_tracking_client" else client, name)
    with pytest.raises(AttributeError, match="not reachable"):
        _ = tracking.mlflow_api().models.Model.load


def test_a_clients_log_artifact_logs_the_redacted_text(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = tracking.open_client()
    experiment = client.create_experiment("files", artifact_location=(tmp_path / "mlartifacts").as_uri())
    run = client.create_run(experiment)
    notes = tmp_path / "notes.txt"
    notes.write_text("storage postgresql://u:hunter2secret@db/x\n")
    client.log_artifact(run.info.run_id, str(notes), "texts")
    assert (tmp_path / "mlartifacts" / run.info.run_id / "artifacts" / "texts" / "notes.txt").read_text() == (
        "storage postgresql://u:***@db/x\n")
    with pytest.raises(ValueError, match="log each file"):
        client.log_artifact(run.info.run_id, str(tmp_path))


def test_a_client_made_through_the_boundary_redacts_too(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    tracking.open_client()
    made = tracking.mlflow_api().MlflowClient()
    assert isinstance(made, tracking.Redacted)
    assert isinstance(tracking.mlflow_api().tracking.MlflowClient(), tracking.Redacted)
    with pytest.raises(tracking.mlflow_api().exceptions.MlflowException):  # except clauses get the class itself
        made.get_run("no-such-run")


# --- no route around the boundary: a scan of the code ------------------------------------------------

BOUNDARY = "tracking.py"
FILES_BOUNDARY = "atomic.py"  # its write_new redacts; its journal and lock hold paths only
# From MLflow, outside the boundary, only what sends nothing: the base class of the served model
# and a pure function of its example.
IMPORTABLE = {"PythonModel", "infer_signature"}
# In the boundary, the raw MLflow calls that send no text: connecting, making a client (for the
# wrapper only), saving a model folder that a redacted call logs, building entities (redacted
# when sent), the signature.
RAW_CALLS = {"set_tracking_uri", "MlflowClient", "save_model", "Metric", "Param", "RunTag", "infer_signature"}
# Calls that write a file or a stream by themselves (the last name of the call).
FILE_WRITERS = {"write_text", "write_bytes", "to_json", "to_parquet", "to_pickle", "to_excel", "savetxt",
                "fdopen", "FileHandler", "StreamHandler", "basicConfig", "ZipFile", "TarFile"}
COPIERS = {"copy", "copy2", "copyfile", "copytree", "move"}  # shutil's
# Writers that hold no text of ours, by file: why each is safe.
BINARY_WRITERS = {
    ("layout.py", "ZipFile"): "arrays (.npz) and Keras's own archive (weights, layer names)",
    ("served.py", "copytree"): "nextclose's own source, which the served model carries",
}
WRITE_MODES = set("wax+")


def _chain(node: ast.AST) -> list[str]:
    """``a.b.c`` as ["a", "b", "c"] (empty when the root is not a name)."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    return [node.id, *reversed(names)] if isinstance(node, ast.Name) else []


def _last_name(node: ast.AST) -> str:
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""


def _mode(node: ast.Call, position: int) -> ast.AST | None:
    given = [*node.args[position:position + 1], *(k.value for k in node.keywords if k.arg == "mode")]
    return given[0] if given else None


def _writes(mode: ast.AST | None) -> bool:
    """Whether a file mode may write: any mode that is not a constant read mode."""
    return mode is not None and not (isinstance(mode, ast.Constant) and isinstance(mode.value, str)
                                     and not set(mode.value) & WRITE_MODES)


def routes_around_the_boundary(source: str, filename: str) -> list[str]:
    """Each place in ``source`` that could send, write or print a string without redaction."""
    tree = ast.parse(source)
    found = []
    mlflow_names = {"mlflow"}
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "mlflow":
                    mlflow_names.add(alias.asname or "mlflow")
                    if filename != BOUNDARY:
                        found.append(f"{where}: import {alias.name} (use tracking.mlflow_api() or tracking.client())")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mlflow":
            for alias in node.names:
                mlflow_names.add(alias.asname or alias.name)
                if filename != BOUNDARY and alias.name not in IMPORTABLE:
                    found.append(f"{where}: from {node.module} import {alias.name}")
        elif isinstance(node, ast.Attribute) and node.attr in ("_target", "stream", "_tracking_client") and (
                filename not in (BOUNDARY, "redaction.py")):
            found.append(f"{where}: .{node.attr}: the unredacted object inside a redacting wrapper")
        elif isinstance(node, ast.Attribute) and (node.attr in ("__stdout__", "__stderr__") or (
                node.attr == "buffer" and _chain(node.value) in (["sys", "stdout"], ["sys", "stderr"]))):
            found.append(f"{where}: sys.{node.attr} is not redacted")
        elif isinstance(node, ast.Call):
            chain, name = _chain(node.func), _last_name(node.func)
            constant_args = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if name in ("import_module", "__import__") and any(a.split(".")[0] == "mlflow" for a in constant_args):
                found.append(f"{where}: {name}('mlflow...') goes around the boundary")
            if filename == BOUNDARY and chain and chain[0] in mlflow_names:
                wrapped = isinstance(parents.get(node), ast.Call) and _chain(parents[node].func) == ["Redacted"]
                if chain[-1] not in RAW_CALLS or (chain[-1] == "MlflowClient" and not wrapped):
                    found.append(f"{where}: {'.'.join(chain)}(...) sends without redaction")
            if name == "print" and any(k.arg == "file" and _chain(k.value) not in (["sys", "stdout"], ["sys", "stderr"])
                                       for k in node.keywords):
                found.append(f"{where}: print(file=...) into something other than sys.stdout or sys.stderr")
            if filename == FILES_BOUNDARY:
                continue
            receiver = _chain(node.func.value) if isinstance(node.func, ast.Attribute) else None
            if (name in FILE_WRITERS or (name in COPIERS and chain[:1] == ["shutil"])) and receiver not in (
                    ["commit"], ["atomic"]) and (filename, name) not in BINARY_WRITERS:
                if name not in ("ZipFile", "TarFile") or _writes(_mode(node, 1)):
                    found.append(f"{where}: {name}(...) writes a file without atomic.write_new")
            if name == "to_csv" and (node.args or any(k.arg == "path_or_buf" for k in node.keywords)):
                found.append(f"{where}: to_csv into a file (to_csv() to a string, then atomic.write_new)")
            if chain in (["json", "dump"], ["yaml", "dump"], ["yaml", "safe_dump"]) and (
                    len(node.args) > 1 or any(k.arg in ("fp", "stream") for k in node.keywords)):
                found.append(f"{where}: {'.'.join(chain)} into a stream")
            if chain in (["np", "save"], ["np", "savez"], ["numpy", "save"]):
                found.append(f"{where}: {'.'.join(chain)} writes a file (layout.save_npz)")
            if (chain in (["open"], ["io", "open"], ["os", "open"]) and _writes(_mode(node, 1))) or (
                    name == "open" and chain not in (["open"], ["io", "open"], ["os", "open"])
                    and _writes(_mode(node, 0))):
                found.append(f"{where}: open(...) for writing")
            if chain == ["os", "write"] and filename != "cli.py":
                found.append(f"{where}: os.write bypasses the redacted streams")
    return found


def test_nothing_in_nextclose_sends_writes_or_prints_around_the_redaction():
    found = []
    for path in sorted(SRC.rglob("*.py")):
        found += routes_around_the_boundary(path.read_text(), path.relative_to(SRC).as_posix())
    assert found == []


@pytest.mark.parametrize("source, filename", [
    ("import mlflow\nmlflow.log_param('storage', url)", "stages/tune.py"),
    ("import mlflow.pyfunc", "served.py"),
    ("from mlflow.models import Model", "served.py"),
    ("import mlflow\nmlflow.set_tag('storage', url)", BOUNDARY),
    ("import mlflow\nclient = mlflow.MlflowClient()", BOUNDARY),
    ("from mlflow.models import Model\nModel.log(name=url)", BOUNDARY),
    ("client._target.set_tag('k', url)", "commands/champion.py"),
    ("(folder / 'a.json').write_text(url)", "layout.py"),
    ("frame.to_csv(path)", "layout.py"),
    ("json.dump(value, handle)", "layout.py"),
    ("with open(path, 'w') as handle: pass", "layout.py"),
    ("sys.__stderr__.write(url)", "cli.py"),
    ("import importlib\nimportlib.import_module('mlflow').set_tag('k', url)", "stages/train.py"),
    ("__import__('mlflow.tracking')", "stages/train.py"),
    ("import mlflow as m\nm.set_tag('k', url)", BOUNDARY),
    ("client._tracking_client.set_tag('r', 'k', url)", "commands/champion.py"),
    ("with path.open('w') as handle: pass", "layout.py"),
    ("with open(path, mode) as handle: pass", "layout.py"),
    ("io.open(path, 'a')", "layout.py"),
    ("os.fdopen(descriptor, 'w')", "layout.py"),
    ("json.dump(value, fp=handle)", "layout.py"),
    ("yaml.safe_dump(value, stream=handle)", "layout.py"),
    ("print(url, file=handle)", "stages/train.py"),
    ("frame.to_json(path)", "layout.py"),
    ("np.savetxt(path, values)", "layout.py"),
    ("zipfile.ZipFile(path, 'w')", "served.py"),
    ("shutil.copy(source, target)", "layout.py"),
    ("logging.FileHandler(path)", "stages/tune.py"),
    ("logging.StreamHandler(sys.stderr)", "stages/tune.py"),
    ("sys.stdout.buffer.write(data)", "commands/predict.py"),
])
def test_the_scan_finds_each_route_around_the_boundary(source, filename):
    assert routes_around_the_boundary(source, filename), source


def test_the_command_redacts_its_output_before_anything_else():
    main = next(node for node in ast.parse((SRC / "cli.py").read_text()).body
                if isinstance(node, ast.FunctionDef) and node.name == "main")
    first = next(node for node in main.body
                 if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)))
    assert isinstance(first, ast.Expr) and _chain(first.value.func) == ["redaction", "redact_process_output"]


# --- the whole pipeline, every byte it leaves searched ------------------------------------------------

def _leaks(tokens: list[str], named: dict[str, bytes]) -> list[str]:
    """The places that hold a token (raw or hex-encoded, as a database dump shows bytes)."""
    needles = [form for token in tokens for form in (token.encode(), token.encode().hex().encode())]
    return sorted(name for name, content in named.items() if any(needle in content for needle in needles))


def _database_rows(url: str) -> bytes:
    """Every row of every table of a PostgreSQL database, as text."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            tables = connection.execute(sqlalchemy.text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")).scalars().all()
            rows = [row for table in tables for row in connection.execute(
                sqlalchemy.text(f'SELECT CAST(t.* AS text) FROM "{table}" t')).scalars()]
    finally:
        engine.dispose()
    assert rows, f"{url}: no rows: nothing was searched"
    return "\n".join(rows).encode()


def _workspace_bytes(repo: Path) -> dict[str, bytes]:
    return {f"{repo.name}/{name}": _every_byte(repo / name)
            for name in ("mlflow.db", "mlartifacts", "reports", "models", ".nextclose", "data", "dvc.lock")}


def _run(args: list[str], cwd: Path, env: dict, outputs: dict[str, bytes], expect: int = 0) -> None:
    from helpers.tools import tool_env

    done = subprocess.run(args, cwd=cwd, env=tool_env() | env, capture_output=True, timeout=900)
    outputs[f"{' '.join(args)} (stdout)"] = done.stdout
    outputs[f"{' '.join(args)} (stderr)"] = done.stderr
    assert done.returncode == expect, f"{' '.join(args)}: {done.returncode}\n{done.stderr.decode()[-3000:]}"


@pytest.mark.slow
def test_no_password_anywhere_after_the_pipeline_runs(tmp_path):
    """The issue's reproduction and more: passwords in OPTUNA_STORAGE (PostgreSQL), in a git
    remote, in the S3 credentials and in params.yaml's tune.storage (refused); the pipeline, tune,
    champion and predict run; every byte they left is searched."""
    if not POSTGRES:
        pytest.skip("no PostgreSQL server: export NEXTCLOSE_TEST_POSTGRES=$(bash .ci/postgres)")
    from helpers.tools import copy_repo, run

    passwords = {name: secret() for name in ("storage", "s3", "params", "git")}
    tokens = [token for _, marks in passwords.values() for token in marks]
    database = POSTGRES.replace("postgres@", f"postgres:{in_url(passwords['storage'][0])}@", 1)
    assert database != POSTGRES
    env = {"OPTUNA_STORAGE": database, "AWS_ACCESS_KEY_ID": "nextclose",
           "AWS_SECRET_ACCESS_KEY": passwords["s3"][0]}
    repo = copy_repo(tmp_path / "repo", tiny_params(tune={"study_name": f"leak-{uuid.uuid4().hex[:8]}",
                                                          "n_trials": 1}))
    run(["git", "remote", "add", "origin", f"https://ci:{in_url(passwords['git'][0])}@git.invalid/n.git"], repo)
    outputs: dict[str, bytes] = {}

    # The reproduction: a password in tune.storage is refused before anything runs.
    refused = dict(tiny_params(), tune={**tiny_params()["tune"], "storage": database.replace(
        in_url(passwords["storage"][0]), in_url(passwords["params"][0]))})
    write_params(repo, refused)
    for stage in ("prepare", "tune"):
        _run(["nextclose", stage], repo, env, outputs, expect=2)
    run(["git", "checkout", "params.yaml"], repo)

    _run(["dvc", "repro"], repo, env, outputs)
    _run(["nextclose", "tune", "--n-trials", "1"], repo, env, outputs)
    _run(["nextclose", "predict", "--json"], repo, env, outputs)  # no champion yet: says where it looked
    _run(["nextclose", "champion"], repo, env, outputs)
    _run(["nextclose", "predict"], repo, env, outputs)
    searched = outputs | _workspace_bytes(repo) | {"optuna database": _database_rows(database)}
    assert json.loads((repo / "reports" / "tune_study.json").read_text())["storage"].startswith(
        "postgresql+psycopg2://postgres:***@")  # the storage is named, masked
    assert _leaks(tokens, searched) == []


@pytest.mark.slow
def test_no_password_anywhere_in_team_mode(services, tmp_path):
    """Team mode: a password in MLFLOW_TRACKING_URI (the MLflow server), in OPTUNA_STORAGE and in the
    S3 credentials (the DVC remote in the bucket); then the server's PostgreSQL database, the study's,
    every object in the bucket, the clone and what the commands printed are searched."""
    from helpers.tools import BUCKET, copy_repo, database_url, run, s3_client

    passwords = {name: secret() for name in ("tracking", "storage", "s3")}
    tokens = [token for _, marks in passwords.values() for token in marks]
    # (an HTTP URL's user part percent-encodes "/" too)
    user_part = f"team:{quote(passwords['tracking'][0], safe='')}@"
    tracking_uri = services["MLFLOW_TRACKING_URI"].replace("://", f"://{user_part}", 1)
    storage = services["OPTUNA_STORAGE"].replace("postgres@", f"postgres:{in_url(passwords['storage'][0])}@", 1)
    assert storage != services["OPTUNA_STORAGE"]
    env = {"MLFLOW_TRACKING_URI": tracking_uri, "OPTUNA_STORAGE": storage,
           "AWS_ACCESS_KEY_ID": services["AWS_ACCESS_KEY_ID"], "AWS_SECRET_ACCESS_KEY": passwords["s3"][0]}
    repo = copy_repo(tmp_path / "repo", tiny_params(tune={"study_name": f"leak-{uuid.uuid4().hex[:8]}",
                                                          "n_trials": 1}))
    run(["dvc", "remote", "add", "-d", "team", f"s3://{BUCKET}/leaks"], repo)
    run(["dvc", "remote", "modify", "team", "endpointurl", services["NEXTCLOSE_S3_ENDPOINT"]], repo)
    outputs: dict[str, bytes] = {}
    _run(["dvc", "exp", "run", "-n", "leaks"], repo, env, outputs)
    _run(["nextclose", "predict", "--json"], repo, env, outputs)  # no champion: names the store it looked in
    _run(["nextclose", "champion"], repo, env, outputs)
    _run(["nextclose", "predict"], repo, env, outputs)
    _run(["dvc", "push"], repo, env, outputs)

    s3 = s3_client(services)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    bucket = {f"s3://{BUCKET}/{item['Key']}": s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
              for page in pages for item in page.get("Contents", [])}
    assert any(key.startswith(f"s3://{BUCKET}/leaks/") for key in bucket)  # DVC pushed
    assert any(key.endswith("/MLmodel") for key in bucket)  # the server stored the models there
    searched = outputs | bucket | _workspace_bytes(repo) | {
        "MLflow's database": _database_rows(database_url(services["mlflow_database"])),
        "optuna database": _database_rows(storage)}
    assert _leaks(tokens, searched) == []
