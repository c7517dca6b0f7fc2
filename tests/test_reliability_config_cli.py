"""Issue 7, bad config and CLI use: every documented config error and wrong argument gives a
one-screen message that names the problem and the fix, exit code 2, and no traceback; a
traceback appears only with --debug."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

LABELLOOP = str(Path(sys.executable).parent / "labelloop")
SCREEN_LINES = 24


def good_config() -> dict:
    llm = {"mode": "api", "base_url": "http://127.0.0.1:9/v1", "model": "m"}
    return {"classification": {"classes": ["spam", "ham"], "desc": "Sort mail."},
            "path": {"input_dir": "input", "output_dir": "output"},
            "training": {"max_iters": 2}, "small_model": llm, "large_model": dict(llm)}


def edit(path: str, value) -> dict:
    """good_config() with one dotted key set (value DELETE removes it)."""
    cfg = good_config()
    *parents, last = path.split(".")
    node = cfg
    for p in parents:
        node = node.setdefault(p, {})
    if value is DELETE:
        node.pop(last, None)
    else:
        node[last] = value
    return cfg


DELETE = object()

# name -> (config mapping or raw text, words the message must contain)
CONFIG_CASES = {
    "unknown key": (edit("training.max_iter", 3), ["training.max_iter", "unknown key", "max_iters"]),
    "unknown section": (edit("trainig", {}), ["trainig", "unknown key", "training"]),
    "wrong type": (edit("training.max_iters", "many"), ["training.max_iters", "'many'", "integer"]),
    "one class": (edit("classification.classes", ["spam"]), ["classification.classes", "at least 2 classes"]),
    "duplicate classes": (edit("classification.classes", ["spam", "Spam", "ham"]), ["duplicate", "spam"]),
    "missing classes": (edit("classification.classes", DELETE), ["classification.classes", "missing"]),
    "missing input_dir key": (edit("path.input_dir", DELETE), ["path.input_dir", "missing"]),
    "input_dir not a folder": (edit("path.input_dir", "nowhere"), ["path.input_dir", "nowhere", "not a folder"]),
    "required_accuracy > 1": (edit("system.required_accuracy", 1.5), ["system.required_accuracy", "1.5", "1"]),
    "required_accuracy < 0": (edit("system.required_accuracy", -0.1), ["system.required_accuracy", "-0.1", "0"]),
    "test_set_size 0": (edit("training.test_set_size", 0), ["training.test_set_size", "greater than 0"]),
    "train_set_increment < 0": (edit("training.train_set_increment", -5), ["training.train_set_increment", "-5"]),
    "chunk_size 0": (edit("system.chunk_size", 0), ["system.chunk_size", "greater than 0"]),
    "bad mode": (edit("small_model.mode", "cloud"), ["small_model.mode", "'cloud'"]),
    "api without base_url": (edit("large_model.base_url", DELETE), ["large_model.base_url", "missing"]),
    "bad YAML": ("classification:\n  classes: [spam, ham\n  desc: x\n", ["not valid YAML"]),
    "not a mapping": ("- just\n- a list\n", ["top level must be a mapping"]),
}


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([LABELLOOP, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def one_screen_no_traceback(res: subprocess.CompletedProcess) -> str:
    text = res.stdout + res.stderr
    assert "Traceback" not in text, text
    assert len(text.strip().splitlines()) <= SCREEN_LINES, f"more than one screen:\n{text}"
    return " ".join(text.split())


@pytest.fixture(scope="module")
def config_results(tmp_path_factory):
    """Run `labelloop run` on every bad config (two at a time) once."""
    root = tmp_path_factory.mktemp("configs")
    (root / "input").mkdir()
    (root / "input" / "a.txt").write_text("some text")
    paths = {}
    for i, (name, (cfg, _)) in enumerate(CONFIG_CASES.items()):
        path = root / f"c{i}.yaml"
        path.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg))
        paths[name] = path
    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(paths, pool.map(lambda p: run("run", str(p)), paths.values())))
    return root, results


@pytest.mark.parametrize("name", list(CONFIG_CASES))
def test_config_error_is_one_clear_screen(config_results, name):
    _, results = config_results
    res = results[name]
    assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-2000:]
    flat = one_screen_no_traceback(res)
    assert "problem(s) in" in flat and "error:" in flat
    for word in CONFIG_CASES[name][1]:
        assert word.lower() in flat.lower(), f"{word!r} not in: {flat}"


def test_every_problem_is_listed_at_once(tmp_path):
    cfg = edit("training.max_iter", 3)
    cfg["system"] = {"required_accuracy": 2, "chunk_size": -1}
    cfg["classification"]["classes"] = ["only"]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    (tmp_path / "input").mkdir()
    flat = one_screen_no_traceback(run("run", str(path)))
    assert "4 problem(s)" in flat
    for key in ("training.max_iter", "system.required_accuracy", "system.chunk_size", "classification.classes"):
        assert key in flat


def test_missing_config_file_says_how_to_make_one(tmp_path):
    res = run("run", str(tmp_path / "nope.yaml"))
    assert res.returncode == 2
    flat = one_screen_no_traceback(res)
    assert "nope.yaml" in flat and "labelloop init" in flat


def test_debug_shows_the_traceback(config_results):
    root, _ = config_results
    res = run("--debug", "run", str(root / "c0.yaml"))
    assert res.returncode != 0 and "Traceback" in res.stderr and "ConfigError" in res.stderr


CLI_CASES = {
    "unknown command": (["lable"], ["No such command", "lable"]),
    "missing argument": (["run"], ["Missing argument", "CONFIG"]),
    "unknown option": (["status", ".", "--colour"], ["No such option", "--colour"]),
    "bad choice": (["export-labels", ".", "--format", "xml"], ["xml", "jsonl", "csv"]),
    "bad int": (["predict", "m", "in.jsonl", "-o", "o.jsonl", "--batch-size", "lots"], ["--batch-size", "integer"]),
    "status without project": (["status", "."], ["labelloop.db", "labelloop run CONFIG"]),
    "rules without project": (["rules", "show", "."], ["labelloop.db"]),
    "predict on a missing model": (["predict", "no-model", "in.jsonl", "-o", "o.jsonl"], ["no-model"]),
    "review without project": (["review", "."], ["labelloop.db"]),
}


@pytest.mark.parametrize("name", list(CLI_CASES))
def test_wrong_cli_use_is_one_clear_screen(tmp_path, name):
    args, words = CLI_CASES[name]
    res = run(*args, cwd=tmp_path)
    assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-2000:]
    flat = one_screen_no_traceback(res)
    for word in words:
        assert word.lower() in flat.lower(), f"{word!r} not in: {flat}"
