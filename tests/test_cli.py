"""The CLI through its real entry point: help everywhere, errors as messages, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

LABELLOOP = str(Path(sys.executable).parent / "labelloop")
COMMANDS = ["init", "ingest", "status", "plan", "run", "rules", "predict", "serve", "review", "export-labels", "export"]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([LABELLOOP, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_top_level_help_lists_commands():
    res = cli("--help")
    assert res.returncode == 0
    for command in COMMANDS:
        assert command in res.stdout


@pytest.mark.parametrize("command", COMMANDS + ["rules show", "rules edit"])
def test_every_command_has_help(command):
    res = cli(*command.split(), "--help")
    assert res.returncode == 0, res.stderr
    assert "Usage" in res.stdout


def test_init_writes_a_starter_and_refuses_to_overwrite(tmp_path):
    res = cli("init", str(tmp_path / "proj"))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "proj" / "config.yaml").is_file() and (tmp_path / "proj" / "input").is_dir()
    again = cli("init", str(tmp_path / "proj"))
    assert again.returncode == 2 and "--force" in again.stderr and "Traceback" not in again.stderr


def test_status_of_a_folder_without_project_is_a_clear_error(tmp_path):
    res = cli("status", str(tmp_path))
    assert res.returncode == 2
    assert "has no labelloop.db" in res.stderr and "labelloop run CONFIG" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout


def test_bad_config_lists_problems_without_traceback(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("classification:\n  classes: [a]\n  desc: d\npath:\n  input_dir: nope\n  output_dir: out\n")
    res = cli("ingest", str(cfg))
    assert res.returncode == 2
    assert "classification.classes" in res.stderr and "at least 2 classes" in res.stderr
    assert "Traceback" not in res.stderr


def test_debug_flag_shows_the_traceback(tmp_path):
    res = cli("--debug", "status", str(tmp_path))
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_wrong_arguments_get_usage_not_traceback(tmp_path):
    res = cli("export-labels", str(tmp_path), "--format", "xml")
    assert res.returncode == 2 and "xml" in res.stderr and "Traceback" not in res.stderr
    res = cli("run")
    assert res.returncode == 2 and "Missing argument" in res.stderr
