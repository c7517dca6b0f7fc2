"""export-labels: every chunk with its final label and where it came from, JSONL and CSV round trips."""

from __future__ import annotations

import csv
import json

import pytest

from labelloop.errors import LabelloopError
from labelloop.project.export_labels import COLUMNS, export_labels
from labelloop.review.actions import apply
from labelloop.store import NewChunk
from tests.helpers.review_project import XSS_TEXT, make_project

pytestmark = pytest.mark.unit


@pytest.fixture()
def project(tmp_path):
    p = make_project(tmp_path)
    store = p.store
    ids = sorted(p.truth)
    odd = 'Line one, with "quotes"\nline two; ünïcödé ✓ and a tab\there.'
    store.add_document("odd.txt", "odd", len(odd), [NewChunk(text=odd, source="odd.txt", position=3)])
    p.odd_id = store.chunks()[-1].id  # no split, no label: exported with an empty label
    p.corrected, p.discarded = ids[0], ids[1]
    store.set_label(p.corrected, "human", "tech", status="ok")
    store.set_label(p.discarded, "human", None, status="discarded")
    return p


def expected(p, row):
    """What the label and its source must be for one exported row, from the fixture's own facts."""
    cid = row["chunk_id"]
    if cid == p.corrected:
        return "tech", "human", "ok"
    if cid == p.discarded:
        return None, "human", "discarded"
    if cid == p.odd_id:
        return None, None, "none"
    if cid in p.unlabeled:
        return None, None, "unlabeled"
    llm = p.store.labels_by_chunk("llm-large" if row["split"] == "test" else "llm-small")[cid]
    return llm.label, llm.source, "ok"


def test_jsonl_round_trip(project, tmp_path):
    out = tmp_path / "exports" / "labels.jsonl"
    n = export_labels(project.store, out, "jsonl")
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert n == len(rows) == len(project.store.chunks())
    assert all(list(r) == COLUMNS for r in rows)
    texts = {c.id: c.text for c in project.store.chunks()}
    students = project.store.labels_by_chunk("student")
    for row in rows:
        assert row["text"] == texts[row["chunk_id"]]
        assert (row["label"], row["label_source"], row["status"]) == expected(project, row)
        if row["chunk_id"] in students:
            assert row["student_label"] == students[row["chunk_id"]].label
            assert row["student_confidence"] == students[row["chunk_id"]].confidence
    xss = next(r for r in rows if r["chunk_id"] == project.xss_id)
    assert xss["text"] == XSS_TEXT and xss["source"].startswith("inbox/<img")
    flipped = next(r for r in rows if r["chunk_id"] in project.flipped)
    assert flipped["label"] != project.truth[flipped["chunk_id"]]  # the LLM's (wrong) label, as stored


def test_csv_round_trip_matches_jsonl(project, tmp_path):
    export_labels(project.store, tmp_path / "l.jsonl", "jsonl")
    n = export_labels(project.store, tmp_path / "l.csv", "csv")
    with open(tmp_path / "l.csv", encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        rows = list(reader)
    want = [json.loads(line) for line in (tmp_path / "l.jsonl").read_text(encoding="utf-8").splitlines()]
    assert n == len(rows) == len(want)
    for got, ref in zip(rows, want, strict=True):
        assert got == {k: "" if v is None else str(v) for k, v in ref.items()}
    odd = next(r for r in rows if int(r["chunk_id"]) == project.odd_id)
    assert odd["text"].startswith('Line one, with "quotes"\nline two') and odd["label"] == ""


def test_bad_format_or_folder_is_reported(project, tmp_path):
    with pytest.raises(LabelloopError, match="'xml'.*jsonl, csv"):
        export_labels(project.store, tmp_path / "x.xml", "xml")
    with pytest.raises(LabelloopError, match="is a folder"):
        export_labels(project.store, tmp_path, "csv")


def test_a_label_accepted_from_the_student_says_so(project, tmp_path):
    """No LLM label held a class, so Accept took the student's prediction: a person's label that began as the student's."""
    cid = min(project.unlabeled - {project.corrected, project.discarded})
    apply(project.store, cid, "accept", reviewer="ana")
    export_labels(project.store, tmp_path / "l.jsonl", "jsonl")
    rows = {r["chunk_id"]: r for r in map(json.loads, (tmp_path / "l.jsonl").read_text(encoding="utf-8").splitlines())}
    student = project.store.labels_by_chunk("student")[cid]
    got = rows[cid]
    assert (got["label"], got["label_source"], got["status"], got["human_from_student"]) == \
        (student.label, "human", "ok", True)
    assert rows[project.corrected]["human_from_student"] is False
    assert rows[project.odd_id]["human_from_student"] is None
