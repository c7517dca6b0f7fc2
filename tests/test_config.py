"""config.yaml: Augmentoolkit's keys unchanged, strict, every problem reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from labelloop.config import load_config, parse_config, resolve_llm
from labelloop.errors import ConfigError

pytestmark = pytest.mark.unit



def minimal(tmp_path: Path, **overrides) -> dict:
    (tmp_path / "in").mkdir(exist_ok=True)
    raw = {
        "classification": {"classes": ["a", "b"], "desc": "d"},
        "path": {"input_dir": "in", "output_dir": "out"},
    }
    for key, value in overrides.items():
        raw[key] = value
    return raw


def test_parse_config_leaves_the_callers_mapping_alone(tmp_path):
    raw = minimal(tmp_path, api={"large_mode": "telepathy", "small_mode": "api", "small_base_url": "http://x/v1",
                                 "small_model": "m"})
    before = __import__("copy").deepcopy(raw)
    with pytest.raises(ConfigError):
        parse_config(raw, base_dir=tmp_path)
    assert raw == before


def test_defaults_use_the_embedded_backend(tmp_path):
    cfg = parse_config(minimal(tmp_path), base_dir=tmp_path)
    assert resolve_llm(cfg, "small").mode == "embedded" and resolve_llm(cfg, "large").mode == "embedded"
    assert cfg.db_path == (tmp_path / "out" / "labelloop.db").resolve()


def test_class_list_written_as_string_is_accepted(tmp_path):
    raw = minimal(tmp_path)
    raw["classification"]["classes"] = "['spam', 'not spam']"
    assert parse_config(raw, base_dir=tmp_path).classes == ["spam", "not spam"]


def test_every_problem_is_reported_at_once(tmp_path):
    raw = minimal(tmp_path)
    raw["classification"]["classes"] = ["only"]
    raw["system"] = {"required_accuracy": 1.5, "chunk_size": 0, "bogus_key": 1}
    raw["training"] = {"train_set_size": -3, "max_iters": "many"}
    raw["sampling"] = {"strategy": "psychic"}
    with pytest.raises(ConfigError) as info:
        parse_config(raw, base_dir=tmp_path)
    msg = str(info.value)
    for expected in (
        "classification.classes", "at least 2 classes",
        "system.required_accuracy", "1.5",
        "system.chunk_size", "system.bogus_key", "unknown key",
        "training.train_set_size", "-3",
        "training.max_iters", "'many'",
        "sampling.strategy", "'psychic'",
    ):
        assert expected in msg, expected
    assert len(info.value.problems) == 7


def test_duplicate_classes_are_named(tmp_path):
    raw = minimal(tmp_path)
    raw["classification"]["classes"] = ["Sport", "tech", "sport"]
    with pytest.raises(ConfigError, match=r"duplicate classes \['sport'\]"):
        parse_config(raw, base_dir=tmp_path)


def test_unknown_key_suggests_the_right_one(tmp_path):
    raw = minimal(tmp_path)
    raw["training"] = {"max_iter": 3}
    with pytest.raises(ConfigError, match="training.max_iter: unknown key; did you mean 'max_iters'"):
        parse_config(raw, base_dir=tmp_path)


def test_missing_input_dir_says_how_to_fix(tmp_path):
    raw = minimal(tmp_path)
    raw["path"]["input_dir"] = "nowhere"
    with pytest.raises(ConfigError, match="path.input_dir: .*nowhere.* is not a folder; create it"):
        parse_config(raw, base_dir=tmp_path)


def test_missing_required_sections_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="classification: required key is missing"):
        parse_config({"path": {"input_dir": ".", "output_dir": "o"}}, base_dir=tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("classification: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="labelloop init"):
        load_config(tmp_path / "missing.yaml")


def test_api_mode_needs_a_base_url_and_known_mode(tmp_path):
    raw = minimal(tmp_path, small_model={"mode": "api", "model": "m"}, api={"large_mode": "telepathy"})
    with pytest.raises(ConfigError) as info:
        parse_config(raw, base_dir=tmp_path)
    msg = str(info.value)
    assert "small_model.base_url" in msg and "api.large_mode: 'telepathy'" in msg


def test_starter_config_is_valid(tmp_path):
    from labelloop.project.starter import write_starter

    path = write_starter(tmp_path)
    cfg = load_config(path)
    assert cfg.classes == ["negative", "positive"]
    assert yaml.safe_load(path.read_text())["training"]["truncation_type"] == "head-tail"


def test_null_keeps_its_meaning_for_labelloops_own_keys(tmp_path):
    """Augmentoolkit's keys read null as "the default"; labelloop's own read it as "off"."""
    raw = minimal(tmp_path, system={"probe_timeout_s": None, "chunk_size": None}, stopping={"kappa": None})
    cfg = parse_config(raw, base_dir=tmp_path)
    assert cfg.system.probe_timeout_s is None and cfg.stopping.kappa is None
    assert cfg.system.chunk_size == 256
