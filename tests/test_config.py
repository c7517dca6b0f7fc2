"""config.yaml: Augmentoolkit's keys unchanged, strict, every problem reported at once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from labelloop.config import load_config, parse_config, resolve_llm
from labelloop.errors import ConfigError

FIXTURE = Path(__file__).parent / "fixtures" / "augmentoolkit_classifier_config.yaml"


def minimal(tmp_path: Path, **overrides) -> dict:
    (tmp_path / "in").mkdir(exist_ok=True)
    raw = {
        "classification": {"classes": ["a", "b"], "desc": "d"},
        "path": {"input_dir": "in", "output_dir": "out"},
    }
    for key, value in overrides.items():
        raw[key] = value
    return raw


def test_augmentoolkit_config_loads_unchanged(tmp_path):
    cfg_path = tmp_path / "config.yaml"
    shutil.copy(FIXTURE, cfg_path)
    (tmp_path / "inputs").mkdir()
    cfg = load_config(cfg_path)
    assert cfg.classes == ["negative", "positive"]
    assert cfg.system.required_accuracy == 0.9 and cfg.training.truncation_type == "head-tail"
    assert cfg.training.model_path == "distilbert/distilbert-base-uncased"
    # paths resolve against the config file's folder
    assert cfg.path.input_dir == (tmp_path / "inputs").resolve()
    assert cfg.path.output_dir == (tmp_path / "output" / "classifier").resolve()
    # api.* maps onto labelloop's LLM sections in one place
    small, large = resolve_llm(cfg, "small"), resolve_llm(cfg, "large")
    assert (small.mode, small.model, small.base_url) == (
        "api", "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo", "https://api.together.xyz/v1")
    assert large.model == "meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo" and large.api_key == "key-here"
    assert cfg.meta_datagen.meta_datagen_keys == ["label_details", "rules_creation_details"]


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
    from labelloop.starter import write_starter

    path = write_starter(tmp_path)
    cfg = load_config(path)
    assert cfg.classes == ["negative", "positive"]
    assert yaml.safe_load(path.read_text())["training"]["truncation_type"] == "head-tail"
