"""The ingest pipeline on real files into a real store: counts, dedupe, re-runs, streaming, errors."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from labelloop.config import parse_config
from labelloop.errors import IngestError
from labelloop.ingest import pipeline, textfiles
from labelloop.ingest.chunking import backend_of, load_tokenizer
from labelloop.ingest.pipeline import file_sha256, ingest
from labelloop.store import Store

from tests.helpers.documents import make_docx, make_pdf

ARTICLE = (
    "Shares in the carmaker rose 4% after it reported record quarterly profits.\n\n"
    "The company said demand for electric models had doubled. Analysts were surprised.\n\n"
    "Its chief executive said the firm would open two new factories next year."
)

pytestmark = pytest.mark.unit


def make_config(tmp_path: Path, chunk_size: int = 256, **ingest_section):
    inp = tmp_path / "input"
    inp.mkdir(exist_ok=True)
    raw = {
        "classification": {"classes": ["business", "sport"], "desc": "News topics."},
        "path": {"input_dir": "input", "output_dir": "out"},
        "system": {"chunk_size": chunk_size},
    }
    if ingest_section:
        raw["ingest"] = ingest_section
    return parse_config(raw, base_dir=tmp_path)


@pytest.fixture
def project(tmp_path):
    cfg = make_config(tmp_path)
    return cfg, Store(cfg.db_path), cfg.path.input_dir


def test_mixed_folder_is_ingested_with_problems_recorded(project):
    cfg, store, inp = project
    (inp / "news").mkdir()
    (inp / "news" / "cars.txt").write_text(ARTICLE)
    (inp / "notes.md").write_text("# Notes\n\nThe striker scored twice in the final.")
    make_pdf(inp / "report.pdf", ["Revenue grew in every region.", "The board approved a dividend."])
    make_docx(inp / "memo.docx", ["The match was postponed because of snow."])
    (inp / "rows.jsonl").write_text(json.dumps({"text": "Oil prices fell.", "id": 7}) + "\n{bad\n")
    (inp / "table.csv").write_text("text,topic\nThe team won the cup.,sport\n")
    (inp / "empty.txt").write_text("")
    (inp / "photo.jpg").write_bytes(b"\xff\xd8\xff")

    report = ingest(cfg, store, progress=False)

    assert report.files_seen == 7 and report.files_ingested == 6
    assert report.documents == 7  # txt, md, 2 pdf pages, docx, 1 jsonl row, 1 csv row
    chunks = store.chunks()
    assert report.new_chunks == len(chunks) == 7 and report.duplicate_chunks == 0
    by_source = {c.source: c for c in chunks}
    assert by_source["rows.jsonl#L1"].metadata == {"id": 7}
    assert by_source["table.csv#row1"].metadata == {"topic": "sport"}
    assert sorted(c.metadata["page"] for c in chunks if c.source == "report.pdf") == [1, 2]
    assert all(c.n_tokens and c.n_tokens <= 256 for c in chunks)
    problems = {(p.path, p.severity) for p in report.problems}
    assert problems == {("rows.jsonl:2", "error"), ("empty.txt", "warning"), ("photo.jpg", "warning")}
    assert {(p["path"], p["severity"]) for p in store.ingest_problems()} == problems
    rendered = str(report.render())
    assert len(rendered.splitlines()) == 1 + len(report.problems)
    assert "rows.jsonl:2: not valid JSON" in rendered


def test_chunks_respect_chunk_size(tmp_path):
    cfg = make_config(tmp_path, chunk_size=16)
    text = "\n\n".join(f"Update {i}: shares rose {i} points." for i in range(12))
    (cfg.path.input_dir / "a.txt").write_text(text)
    store = Store(cfg.db_path)
    report = ingest(cfg, store, progress=False)
    chunks = store.chunks()
    assert report.new_chunks == len(chunks) > 3
    assert all(0 < c.n_tokens <= 16 for c in chunks)
    assert [c.position for c in chunks] == list(range(len(chunks)))


def test_duplicates_are_counted_not_stored_twice(project):
    cfg, store, inp = project
    (inp / "a.txt").write_text(ARTICLE)
    (inp / "b.txt").write_text(ARTICLE)
    (inp / "c.jsonl").write_text(json.dumps({"text": ARTICLE}) + "\n" + json.dumps({"text": "Something new."}) + "\n")
    report = ingest(cfg, store, progress=False)
    assert (report.new_chunks, report.duplicate_chunks) == (2, 2)
    chunks = store.chunks()
    assert len(chunks) == 2 and chunks[0].count == 3


def test_rerun_adds_nothing_and_new_or_changed_files_are_ingested(project):
    cfg, store, inp = project
    (inp / "a.txt").write_text(ARTICLE)
    (inp / "bad.csv").write_text("id,body\n1,x\n")
    first = ingest(cfg, store, progress=False)
    assert first.files_ingested == 1 and first.new_chunks == 1

    again = ingest(cfg, store, progress=False)
    assert (again.files_ingested, again.new_chunks, again.duplicate_chunks) == (0, 0, 0)
    assert again.skipped_already_ingested == 1
    assert [p.path for p in again.problems] == ["bad.csv"]  # bad files are reported on every run
    assert [p["path"] for p in store.ingest_problems()] == ["bad.csv"]  # but stored once
    assert len(store.chunks()) == 1

    (inp / "later.txt").write_text("A later document about the football season.")
    (inp / "a.txt").write_text(ARTICLE + "\n\nA correction was added.")
    third = ingest(cfg, store, progress=False)
    assert third.files_ingested == 2 and third.skipped_already_ingested == 0
    assert {c.source for c in store.chunks()} == {"a.txt", "later.txt"}


def test_reingested_changed_file_leaves_no_stale_chunk_and_keeps_unchanged_labels(project):
    cfg, store, inp = project
    rows = lambda *texts: "".join(json.dumps({"text": t}) + "\n" for t in texts)  # noqa: E731
    (inp / "a.jsonl").write_text(rows("Alpha shares rose.", "Beta match was drawn.", "Gamma oil prices fell."))
    (inp / "b.txt").write_text("Gamma oil prices fell.")  # b also holds one of a's chunks
    ingest(cfg, store, progress=False)
    ids = {c.text: c.id for c in store.chunks()}
    store.set_label(ids["Alpha shares rose."], "human", "business")
    store.set_label(ids["Beta match was drawn."], "llm-large", "sport")
    store.set_label(ids["Beta match was drawn."], "human", "sport")
    store.record_review(ids["Beta match was drawn."], "accept", "sport", "ok")

    (inp / "a.jsonl").write_text(rows("Alpha shares rose.", "Delta the striker scored."))
    report = ingest(cfg, store, progress=False)

    chunks = {c.text: c for c in store.chunks()}
    assert set(chunks) == {"Alpha shares rose.", "Gamma oil prices fell.", "Delta the striker scored."}
    assert chunks["Alpha shares rose."].id == ids["Alpha shares rose."]
    assert store.labels_by_chunk("human")[ids["Alpha shares rose."]].label == "business"
    assert ids["Beta match was drawn."] not in store.labels_of_chunks()
    assert all(r.chunk_id != ids["Beta match was drawn."] for r in store.reviews())
    assert chunks["Gamma oil prices fell."].count == 1  # only b holds it now
    assert (report.new_chunks, report.unchanged_chunks, report.dropped_chunks) == (1, 1, 1)
    note = "dropped 1 chunk(s) it no longer contains (1 labeled, 1 reviewed by a person)"
    assert [p.path for p in report.warnings if note in p.message] == ["a.jsonl"]
    assert note in str(report.render()) and "1 stale chunk(s) dropped" in report.summary()
    assert [p["path"] for p in store.ingest_problems() if note in p["message"]] == ["a.jsonl"]

    (inp / "b.txt").write_text("")  # emptied: its last chunk goes too
    report = ingest(cfg, store, progress=False)
    assert report.dropped_chunks == 1
    assert {c.text for c in store.chunks()} == {"Alpha shares rose.", "Delta the striker scored."}


def test_changed_big_file_keeps_chunks_from_every_part(tmp_path, monkeypatch):
    block = 2048
    monkeypatch.setattr(textfiles, "BLOCK_CHARS", block)
    monkeypatch.setattr(pipeline, "BATCH_CHARS", block)
    cfg = make_config(tmp_path, chunk_size=32)
    path = cfg.path.input_dir / "big.txt"
    paragraphs = [f"Paragraph {i} says the index moved {i % 7} points on day {i}." for i in range(400)]
    path.write_text("\n\n".join(paragraphs))
    store = Store(cfg.db_path)
    first = ingest(cfg, store, progress=False)
    before = {c.text: c.id for c in store.chunks()}
    path.write_text("\n\n".join(p for i, p in enumerate(paragraphs) if i % 10))  # every tenth removed
    report = ingest(cfg, store, progress=False)
    after = {c.text: c.id for c in store.chunks()}
    assert first.documents > 5  # read in many parts
    assert report.dropped_chunks > 0 and report.new_chunks + report.unchanged_chunks == len(after)
    assert not any(f"Paragraph {i} says" in text for text in after for i in range(0, 400, 10))
    kept = set(before) & set(after)
    assert len(kept) == report.unchanged_chunks and all(before[t] == after[t] for t in kept)


def test_text_column_from_config_and_argument(tmp_path):
    cfg = make_config(tmp_path, text_column="body")
    (cfg.path.input_dir / "t.csv").write_text("id,body\n1,First body.\n2,Second body.\n")
    (cfg.path.input_dir / "r.jsonl").write_text(json.dumps({"content": "From jsonl."}) + "\n")
    store = Store(cfg.db_path)
    report = ingest(cfg, store, progress=False)
    assert sorted(c.text for c in store.chunks()) == ["First body.", "Second body."]
    assert [p.path for p in report.problems] == ["r.jsonl:1"]
    report = ingest(cfg, store, progress=False, text_column="content")
    assert "From jsonl." in {c.text for c in store.chunks()}


def test_nothing_ingestible_raises_with_what_was_found(project):
    cfg, store, inp = project
    (inp / "scan.tiff").write_bytes(b"II*\x00")
    (inp / "junk.txt").write_bytes(bytes(range(256)) * 8)
    with pytest.raises(IngestError) as info:
        ingest(cfg, store, progress=False)
    msg = str(info.value)
    assert "nothing could be ingested" in msg and "1 .txt" in msg
    assert ".pdf" in msg and ".docx" in msg and ".jsonl" in msg  # what is supported
    assert "junk.txt" in msg and "scan.tiff" in msg
    assert len(store.ingest_problems()) == 2


def test_empty_input_folder_raises(project):
    cfg, store, _ = project
    with pytest.raises(IngestError, match="no supported files"):
        ingest(cfg, store, progress=False)


def test_progress_bar_runs(project, capsys):
    cfg, store, inp = project
    (inp / "a.txt").write_text(ARTICLE)
    report = ingest(cfg, store, progress=True)
    assert report.files_ingested == 1


def test_big_file_streams_through_pipeline_and_is_recorded_once(tmp_path, monkeypatch):
    # Small blocks make a 3.6 MB file behave like a 100+ MB file does with the 1 MB defaults.
    block = 32 * 1024
    monkeypatch.setattr(textfiles, "BLOCK_CHARS", block)
    monkeypatch.setattr(pipeline, "BATCH_CHARS", block)
    cfg = make_config(tmp_path, chunk_size=128)
    path = cfg.path.input_dir / "big.txt"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(50_000):  # unique paragraphs, so every chunk is new
            f.write(f"Paragraph {i} reports that the index moved by {i % 97} points on day {i}.\n\n")
    size = path.stat().st_size
    backend_of(load_tokenizer(cfg.student.encoder))  # load once, outside the measurement
    store = Store(cfg.db_path)
    tracemalloc.start()
    try:
        report = ingest(cfg, store, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.documents > 50  # many streamed parts
    assert report.files_ingested == 1 and report.new_chunks == len(store.chunks()) > 1000
    assert report.duplicate_chunks == 0
    assert peak < size / 3, f"peak {peak / 1e6:.2f} MB of Python memory for a {size / 1e6:.1f} MB file"
    sha, _ = file_sha256(path)
    assert store.document_seen("big.txt", sha)
    again = ingest(cfg, store, progress=False)
    assert (again.new_chunks, again.duplicate_chunks, again.skipped_already_ingested) == (0, 0, 1)
