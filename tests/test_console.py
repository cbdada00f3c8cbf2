"""What a stage prints: our lines and real warnings, not TensorFlow's start-up chatter."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from nextclose import cli

# An absl record as TensorFlow's native code writes it: severity, date, time, thread, file:line.
RECORD = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:[\d.]+ +\d+ \S+:\d+\] ", re.MULTILINE)
ERROR_RECORD = re.compile(r"^[EF]\d{4} ", re.MULTILINE)

FAKE_LIBRARY = '''
import os, sys
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
os.write(2, b"I0000 00:00:1795833539.796403    2806 port.cc:153] oneDNN custom operations are on.\\n")
os.write(2, b"W0000 00:00:1795833539.796403    2806 thing.cc:12] a native warning\\n")
os.write(2, b"E0000 00:00:1795833543.291328    2806 cuda_platform.cc:52] failed call to cuInit\\n")
# what warnings.warn prints (pytest would catch a real one), through Python's sys.stderr
print("fake_tensorflow.py:7: UserWarning: a real Python warning", file=sys.stderr)
'''


@pytest.mark.parametrize(("line", "level", "kept"), [
    (b"I0000 00:00:1795833539.796403    2806 port.cc:153] oneDNN custom operations are on.\n", 2, False),
    (b"I0000 00:00:1795833539.796403    2806 port.cc:153] oneDNN custom operations are on.\n", 0, True),
    (b"W0000 00:00:1795833539.796403    2806 x.cc:1] w\n", 1, True),
    (b"W0000 00:00:1795833539.796403    2806 x.cc:1] w\n", 2, False),
    (b"E0000 00:00:1795833543.291328    2806 cuda_platform.cc:52] failed call to cuInit\n", 2, True),
    (b"E0000 00:00:1795833543.291328    2806 cuda_platform.cc:52] failed call to cuInit\n", 3, False),
    (b"F0000 00:00:1795833543.291328    2806 cpu_feature_guard.cc:1] compiled to use AVX\n", 3, True),
    (cli.ABSL_NOTICE + b"\n", 2, False),
    (cli.ABSL_NOTICE + b"\n", 0, True),
    (b"/x/y.py:3: UserWarning: something real\n", 3, True),
    (b"I0000 is how our own line might start\n", 3, True),
])
def test_startup_lines_below_the_level_are_dropped_and_everything_else_kept(line, level, kept):
    assert cli.kept_startup_line(line, level) is kept


def test_the_import_drops_infos_keeps_errors_and_python_warnings(tmp_path, monkeypatch, capfd):
    (tmp_path / "fake_tensorflow.py").write_text(FAKE_LIBRARY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setattr(cli, "TENSORFLOW_MODULE", "fake_tensorflow")
    monkeypatch.delitem(sys.modules, "fake_tensorflow", raising=False)
    cli.import_tensorflow()
    err = capfd.readouterr().err
    assert "a real Python warning" in err
    assert "cuInit" in err  # an error stays visible: tensorflow-cpu is what spares us this one
    assert "oneDNN" not in err and "native warning" not in err and "absl::InitializeLog" not in err


def stage(workspace, name: str) -> subprocess.CompletedProcess:
    """``python -m nextclose <name>`` as a user runs it: no TF_CPP_MIN_LOG_LEVEL of ours."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-m", "nextclose", name], cwd=workspace, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow  # every stage in subprocesses: the fast suite keeps its 5 minutes
def test_stages_print_no_tensorflow_startup_or_cuda_lines(workspace):
    for name in ("prepare", "train"):
        done = stage(workspace, name)
        for output in (done.stderr, done.stdout):
            assert "cuInit" not in output and "cuda" not in output.lower(), output
            assert "use_unbounded_threadpool" not in output, output
            assert not ERROR_RECORD.search(output), output
            assert not RECORD.search(output), output  # no INFO or WARNING records either
            assert "absl::InitializeLog" not in output, output
    assert "trained 2 lstm members" in done.stdout
