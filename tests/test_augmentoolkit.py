"""Augmentoolkit's own config file and prompt folders, as Augmentoolkit ships them (see fixtures/augmentoolkit/SOURCE.md).

The config and prompt fixtures are byte-for-byte copies of Augmentoolkit's files; only the
config's !!PLACEHOLDER!! values are filled. Runs go through the real CLI against the fake
OpenAI-compatible server, pointed at by the `api.*_base_url` keys (the edit the README tells
a migrating user to make).
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from labelloop.config import PLACEHOLDER, load_config, resolve_llm
from labelloop.errors import ConfigError
from labelloop.llm.message_files import final_label_span
from labelloop.llm.prompts import PromptSet, build_label_messages, build_rules_messages, find_fenced
from labelloop.llm.base import Example, LabelTask
from labelloop.store import Store
from labelloop.testing.fake_openai import FakeOpenAI

FIXTURES = Path(__file__).parent / "fixtures" / "augmentoolkit"
LABELLOOP = str(Path(sys.executable).parent / "labelloop")
CLASSES = ["cruise", "not cruise"]
unit = pytest.mark.unit
e2e = pytest.mark.e2e


def run_cli(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([LABELLOOP, *args], capture_output=True, text=True, timeout=timeout, env=env)


def cruise_docs(n_per_class: int = 40, seed: int = 0) -> list[tuple[str, str]]:
    """Short texts about cruise holidays and about other maritime matters, each with its true class."""
    rng = random.Random(seed)
    ships = ["Aurora", "Sea Breeze", "Northern Star", "Coral Queen", "Atlantic Dawn", "Blue Horizon"]
    ports = ["Barcelona", "Miami", "Southampton", "Naples", "Bergen", "Piraeus", "Lisbon", "Split"]
    cruise = ["The {s} cruise left {p} with 2,400 passengers for a week of island hopping, buffet dinners "
              "and evening shows in the theatre.",
              "Our ten-night cruise on the {s} stopped at {p}; the cabin had a balcony and the spa was excellent.",
              "Cruise lines report record bookings: families chose the {s} for its water slides and kids club "
              "on the route from {p}.",
              "Passengers on the {s} enjoyed shore excursions in {p}, then dinner at the captain's table and a "
              "cocktail on the pool deck.",
              "A guide to cruise holidays: pick an itinerary from {p}, book a cabin on the {s}, and plan your "
              "days at sea."]
    other = ["The container ship {s} ran aground near {p}; the coastguard is assessing fuel leaks and salvage.",
             "Port of {p} dock workers unloaded 12,000 containers of grain from the freighter {s} this week.",
             "Fishing trawlers out of {p} report lower cod catches; the {s} returned with half its quota.",
             "The navy frigate {s} finished sea trials off {p} and joins the fleet for anti-piracy patrols.",
             "Marine biologists aboard the research vessel {s} mapped coral reefs and currents near {p}."]
    docs = []
    for label, templates in (("cruise", cruise), ("not cruise", other)):
        for i in range(n_per_class):
            text = rng.choice(templates).format(s=rng.choice(ships), p=rng.choice(ports))
            docs.append((f"{text} (Report {label[:3]}-{i}.)", label))
    rng.shuffle(docs)
    return docs


def copy_project(tmp_path: Path, fake: FakeOpenAI, docs) -> Path:
    """The fixture folder in tmp_path, its api.*_base_url pointed at the fake server, documents in input_dir."""
    shutil.copytree(FIXTURES, tmp_path, dirs_exist_ok=True)
    cfg = tmp_path / "config.yaml"
    text = cfg.read_text(encoding="utf-8")
    text = text.replace("https://api.deepinfra.com/v1/openai", fake.base_url)
    cfg.write_text(text, encoding="utf-8")
    inp = tmp_path / "inputs" / "cruises"
    inp.mkdir(parents=True)
    for i, (doc, _label) in enumerate(docs):
        (inp / f"doc{i:03d}.txt").write_text(doc, encoding="utf-8")
    return cfg


def stand_in_hub_cache(cache: Path, repo_id: str) -> None:
    """A model-hub cache holding `repo_id`, as `huggingface-cli download` leaves it where the hub is reachable.

    The files are the packaged all-MiniLM-L6-v2 (distilbert-base-uncased itself is not on this
    machine); what is tested is that labelloop finds a hub id through the user's hub cache.
    """
    from labelloop.models import default_encoder_path

    commit = "0" * 40
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(default_encoder_path(), repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


# ------------------------------------------------------------------ the config file


@unit
def test_fixtures_are_the_upstream_files():
    upstream = (FIXTURES / "config.upstream.yaml").read_bytes()
    filled = (FIXTURES / "config.yaml").read_bytes()
    first, rest = filled.split(b"\n", 1)
    assert first.startswith(b"# Augmentoolkit") and b"36c858000c6dd99d9b7a5aca6d3b394f29c4bc8a" in first
    # Only the placeholder values differ.
    pattern = re.escape(upstream).replace(re.escape(PLACEHOLDER.encode()), b"[^\\s]+")
    assert re.fullmatch(pattern, rest), "config.yaml differs from Augmentoolkit's beyond the placeholders"
    assert upstream.endswith(b"meta_datagen_extras:")  # the empty key this issue is about


@e2e
def test_placeholders_are_named_without_a_traceback(tmp_path):
    shutil.copy(FIXTURES / "config.upstream.yaml", tmp_path / "config.yaml")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "config.yaml")
    msg = str(info.value)
    for key in ("api.large_api_key", "api.small_api_key", "path.input_dir", "path.output_dir"):
        assert f"{key}: still {PLACEHOLDER}" in msg, key
    assert len(info.value.problems) == 4
    res = run_cli("run", str(tmp_path / "config.yaml"))
    assert res.returncode == 2
    assert "api.large_api_key: still !!PLACEHOLDER!!" in res.stderr and "Traceback" not in res.stderr + res.stdout


@unit
def test_filled_config_loads_with_augmentoolkit_meanings(tmp_path):
    shutil.copytree(FIXTURES, tmp_path, dirs_exist_ok=True)
    (tmp_path / "inputs" / "cruises").mkdir(parents=True)
    cfg = load_config(tmp_path / "config.yaml")
    assert cfg.classes == CLASSES  # the value before `# !!ATTENTION!! ...` (a comment after a value)
    assert cfg.classification.desc.startswith('Classify whether the text is about 0. "cruise"')
    assert cfg.classification.predict_on_whole_set_at_the_end is True
    assert cfg.meta_datagen.meta_datagen_extras == []  # `meta_datagen_extras:` with no value: no extras
    assert cfg.meta_datagen.meta_datagen_keys == ["label_details", "rules_creation_details"]
    assert cfg.training.truncation_type == "head-tail" and cfg.training.model_path == "distilbert-base-uncased"
    assert cfg.system.chunk_size == 900 and cfg.system.concurrency_limit == 50
    assert cfg.path.prompts == (tmp_path / "prompts_classifier").resolve()
    large = resolve_llm(cfg, "large")
    assert (large.mode, large.model, large.api_key) == ("api", "meta-llama/Meta-Llama-3.1-70B-Instruct", "sk-fill-large")


def _augmentoolkit_keys() -> list[tuple[str, str]]:
    raw = yaml.safe_load((FIXTURES / "config.yaml").read_text())
    return [(section, key) for section, body in raw.items() if isinstance(body, dict) for key in body]


REQUIRED = {("classification", "classes"), ("classification", "desc"), ("path", "input_dir"), ("path", "output_dir")}


@unit
@pytest.mark.parametrize(("section", "key"), _augmentoolkit_keys())
def test_every_key_left_empty_keeps_augmentoolkits_meaning(tmp_path, section, key):
    shutil.copytree(FIXTURES, tmp_path, dirs_exist_ok=True)
    (tmp_path / "inputs" / "cruises").mkdir(parents=True)
    text = (tmp_path / "config.yaml").read_text()
    # Empty the key the way Augmentoolkit's file empties meta_datagen_extras: `key:` and nothing after it.
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line == f"{section}:")
    i = next(j for j in range(start + 1, len(lines)) if lines[j].startswith(f"  {key}:"))
    end = i + 1
    while end < len(lines) and lines[end].startswith("    "):
        end += 1  # a block list under the key goes too
    lines[i:end] = [f"  {key}:"]
    (tmp_path / "config.yaml").write_text("\n".join(lines))
    if (section, key) in REQUIRED:
        with pytest.raises(ConfigError, match=rf"{section}\.{key}: is empty but needs a value"):
            load_config(tmp_path / "config.yaml")
        return
    if section == "api" and key.endswith(("_base_url", "_model")):  # needed because *_mode is api
        role, what = key.split("_", 1)
        with pytest.raises(ConfigError, match=rf"api\.{key}\): missing for mode 'api'"):
            load_config(tmp_path / "config.yaml")
        return
    cfg = load_config(tmp_path / "config.yaml")
    model = type(getattr(cfg, section))
    default = model.model_fields[key].get_default(call_default_factory=True)
    assert getattr(getattr(cfg, section), key) == default


@unit
def test_an_empty_section_keeps_every_default(tmp_path):
    shutil.copytree(FIXTURES, tmp_path, dirs_exist_ok=True)
    (tmp_path / "inputs" / "cruises").mkdir(parents=True)
    text = (tmp_path / "config.yaml").read_text()
    text = re.sub(r"meta_datagen:\n(  .*\n?)+", "meta_datagen:\n", text)
    (tmp_path / "config.yaml").write_text(text)
    assert load_config(tmp_path / "config.yaml").meta_datagen.do_meta_datagen is False


@unit
def test_an_unknown_yaml_tag_is_named(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "c.yaml").write_text("classification:\n  classes: [a, b]\n  desc: !!mystery d\n"
                                     "path:\n  input_dir: in\n  output_dir: out\n")
    with pytest.raises(ConfigError, match=r"classification.desc: unknown YAML tag 'tag:yaml.org,2002:mystery'"):
        load_config(tmp_path / "c.yaml")


# ------------------------------------------------------------------ the prompt files


@unit
def test_label_prompt_file_is_filled_and_fences_the_text():
    prompts = PromptSet([FIXTURES / "prompts_classifier"])
    assert prompts.label_messages is not None and prompts.answer_style == "index"
    upstream = yaml.safe_load((FIXTURES / "prompts_classifier" / "create_labels_for_chunk.yaml").read_text())
    task = LabelTask("The Aurora left Miami.", tuple(CLASSES), "1. Cruises are holidays at sea.", "desc",
                     examples=(Example("Dock workers unloaded grain.", "not cruise"),))
    messages = build_label_messages(task, "index", prompts)
    # Augmentoolkit's conversation, in order: system, two worked examples, then ours (example, chunk).
    assert [m["role"] for m in messages] == [m["role"] for m in upstream[:-1]] + ["user", "assistant", "user"]
    assert messages[0]["content"] == upstream[0]["content"]
    assert messages[2]["content"] == upstream[2]["content"]  # the worked example's answer, unchanged
    last = messages[-1]["content"]
    assert '"""\n0. cruise\n1. not cruise\n"""' in last and "1. Cruises are holidays at sea." in last
    assert find_fenced(last) == ["The Aurora left Miami."]  # labelloop's own data fence inside {text}
    assert messages[-2]["content"] == "Final label: 1"  # the reviewed example, answered as Augmentoolkit answers


@unit
def test_rules_prompt_file_is_filled():
    prompts = PromptSet([FIXTURES / "prompts_classifier_local"])
    messages = build_rules_messages("Cruises versus other maritime news.", CLASSES, ["sample"], prompts)
    upstream = yaml.safe_load((FIXTURES / "prompts_classifier_local" / "create_rules_for_desc.yaml").read_text())
    assert messages[0]["content"] == upstream[0]["content"]
    assert '"""\n0. cruise\n1. not cruise\n"""' in messages[1]["content"]
    assert "Cruises versus other maritime news." in messages[1]["content"]


@unit
@pytest.mark.parametrize(("reply", "expected"), [
    ("Summary...\nFinal label: 1", "not cruise"),
    ("Final label: 0\nwait, no.\nFinal label: 1", "not cruise"),  # the last one counts
    ("Final label: cruise", "cruise"),
    ("Final label: 1 (maritime)", "not cruise"),
    ("Final label: 1. not cruise", "not cruise"),
    ("Final label: **0**", "cruise"),
    ("Final label: 1. cruise", None),  # index and name disagree
    ("Final label: 7", None),
    ("I think it is about cruises.", None),
])
def test_final_label_is_read_as_augmentoolkit_reads_it(reply, expected):
    found = final_label_span(reply, CLASSES)
    assert (found[0] if found else None) == expected


@unit
def test_unused_prompt_files_are_named(tmp_path):
    folder = tmp_path / "prompts"
    shutil.copytree(FIXTURES / "prompts_classifier_local", folder)
    (folder / "label_system.txt").write_text("mine")
    (folder / "notes.md").write_text("hello")
    prompts = PromptSet([folder, tmp_path / "missing"])
    notes = "\n".join(prompts.notes)
    assert f"{folder / 'label_system.txt'} is not used" in notes and "replaces the whole labeling conversation" in notes
    assert f"{folder / 'notes.md'} is not used: not a prompt labelloop knows" in notes
    assert f"prompt folder {tmp_path / 'missing'} does not exist" in notes
    assert len(prompts.notes) == 3


@unit
def test_a_broken_prompt_file_names_the_file_and_field(tmp_path):
    from labelloop.errors import LabelloopError

    (tmp_path / "create_labels_for_chunk.yaml").write_text("- role: user\n  content: 'Label {text} as {label}'\n")
    with pytest.raises(LabelloopError, match=r"create_labels_for_chunk.yaml: message 0 uses \{label\}"):
        PromptSet([tmp_path])


# ------------------------------------------------------------------ runs through the CLI


@pytest.fixture(scope="module")
def docs():
    return cruise_docs()


@e2e
def test_hub_model_not_here_stops_before_any_call(tmp_path, docs):
    """Augmentoolkit's model_path (distilbert-base-uncased) with the hub offline: exit 2, nothing spent."""
    with FakeOpenAI(gold=dict(docs), classes=CLASSES, answer_format="final-index") as fake:
        cfg = copy_project(tmp_path, fake, docs)
        env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty-hub")}
        res = run_cli("run", str(cfg), env=env)
        assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-2000:]
        err = " ".join(res.stderr.split())
        assert "training.model_path: model 'distilbert-base-uncased' is not available here" in err
        assert "leave training.model_path unset" in err and "local folder" in err
        assert "Traceback" not in res.stderr
        assert fake.total == 0


@e2e
def test_augmentoolkit_config_runs_unchanged(tmp_path, docs):
    """The filled file, its prompt folder and its hub model name, end to end; only base_url points at our server."""
    stand_in_hub_cache(tmp_path / "hub", "distilbert-base-uncased")
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    with FakeOpenAI(gold=dict(docs), classes=CLASSES, accuracy=0.95, answer_format="final-index",
                    models=["meta-llama/Meta-Llama-3.1-70B-Instruct", "meta-llama/Meta-Llama-3.1-8B-Instruct"]) as fake:
        cfg = copy_project(tmp_path / "project", fake, docs)
        res = run_cli("run", str(cfg), env=env)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        out = tmp_path / "project" / "outputs" / "cruises"
        store = Store(out / "labelloop.db")
        labels = store.labels("llm-small") + store.labels("llm-large")
        assert labels and all(lab.label in CLASSES for lab in labels)
        assert sum(lab.status == "ok" for lab in labels) == len(labels)
        # The user's label prompt reached the server, answered in Augmentoolkit's `Final label: <index>`.
        label_requests = [r for r in fake.requests if find_fenced(str(r["messages"][-1]["content"]))]
        assert label_requests
        system = yaml.safe_load((FIXTURES / "prompts_classifier" / "create_labels_for_chunk.yaml").read_text())[0]
        assert all(r["messages"][0]["content"] == system["content"] for r in label_requests)
        assert "response_format" not in label_requests[0]
        assert "Student: embedding-head" in res.stdout and "distilbert-base-uncased (training.model_path)" in res.stdout
        assert "student.type: transformer" in res.stdout
        assert (out / "classifiers" / "classifier_1" / "labelloop.json").is_file()
        assert (out / "final_classifier_output" / "predictions.jsonl").is_file()
        assert (out / "rules_creation_generation.yaml").is_file()
        # create_rules_for_desc.yaml is not in prompts_classifier: the built-in rules prompt ran (no warning needed).
        assert "is not used" not in res.stdout


@e2e
def test_local_folder_model_path_trains(tmp_path, docs):
    from labelloop.models import default_encoder_path

    local = tmp_path / "my-encoder"
    shutil.copytree(default_encoder_path(), local)
    with FakeOpenAI(gold=dict(docs), classes=CLASSES, answer_format="final-index",
                    models=["meta-llama/Meta-Llama-3.1-70B-Instruct", "meta-llama/Meta-Llama-3.1-8B-Instruct"]) as fake:
        cfg = copy_project(tmp_path / "project", fake, docs)
        text = cfg.read_text().replace("model_path: distilbert-base-uncased", f"model_path: {local}")
        text = text.replace("max_iters: 5", "max_iters: 1")
        cfg.write_text(text)
        res = run_cli("run", str(cfg))
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        meta = json.loads((tmp_path / "project" / "outputs" / "cruises" / "classifiers" / "classifier_1"
                           / "labelloop.json").read_text())
        assert meta["encoder_source"] == str(local)
        assert f"{local} (training.model_path)" in " ".join(res.stdout.split())
