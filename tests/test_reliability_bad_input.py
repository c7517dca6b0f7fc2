"""Issue 7, bad input: `labelloop ingest` over a folder of broken, odd and hostile files.

Every bad file gets one clear line in the ingest report (and a row in the project file);
everything else is ingested. A big text file streams: the ingest process's peak RSS grows far
less than the file's size.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import zipfile

import pytest

from labelloop.store import Store

from tests.helpers.bbc import bbc_docs
from tests.helpers.projects import LABELLOOP, peak_rss_kb, record, write_big_text, write_config

pytestmark = pytest.mark.e2e

LATIN = "Caf\u00e9 cr\u00e8me \u00e0 la fran\u00e7aise: the ma\u00eetre d' served a cr\u00eape and an \u00e9clair."
UTF16 = "\u00dcber-long headline: na\u00efve r\u00e9sum\u00e9s and \u00c5ngstr\u00f6m units in a UTF-16 memo."




def docx_bytes(text: str) -> bytes:
    """A minimal valid DOCX (a zip with word/document.xml)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml",
                   '<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                   '<Default Extension="xml" ContentType="application/xml"/>'
                   '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-'
                   'officedocument.wordprocessingml.document.main+xml"/></Types>')
        z.writestr("_rels/.rels",
                   '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
                   'relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/'
                   '2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>')
        z.writestr("word/document.xml",
                   '<?xml version="1.0"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/'
                   f'2006/main"><w:body><w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:body></w:document>')
    return buf.getvalue()


# (relative path, severity expected, words expected in its report line)
EXPECTED = [
    ("empty.txt", "warning", "empty"),
    ("blank.md", "warning", "whitespace"),
    ("binary.txt", "error", "binary"),
    ("latin1.txt", "warning", "not valid UTF-8"),
    ("truncated.pdf", "error", "cannot read PDF"),
    ("broken.docx", "error", "cannot read DOCX"),
    ("rows.jsonl:2", "error", "not valid JSON"),
    ("rows.jsonl:3", "error", "no 'text' key"),
    ("rows.jsonl:4", "error", "expected a string"),
    ("nocol.csv", "error", "no column 'text'"),
    ("sub/up", "warning", "link loop"),
    ("self.txt", "error", "cannot access"),
    ("dangling.txt", "error", "broken link"),
    ("fifo.txt", "error", "FIFO"),
]


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    inp = root / "input"
    (inp / "sub").mkdir(parents=True)
    good = [text for text, _ in bbc_docs(per_class=1, seed=5)]
    (inp / "good1.txt").write_text(good[0])
    (inp / "sub" / "good2.md").write_text(good[1])
    (inp / "good.docx").write_bytes(docx_bytes("A working DOCX about interest rates and the central bank."))
    (inp / "empty.txt").write_bytes(b"")
    (inp / "blank.md").write_text("  \n\n\t \n")
    (inp / "binary.txt").write_bytes(bytes(range(256)) * 64 + os.urandom(4096))
    (inp / "latin1.txt").write_bytes((LATIN + "\n") .encode("latin-1"))
    (inp / "utf16.txt").write_bytes((UTF16 + "\n").encode("utf-16"))  # with BOM
    pdf = (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [3 0 R] "
           b"/Count 1 >> endobj\n3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>")
    (inp / "truncated.pdf").write_bytes(pdf)  # cut off mid-object: no xref, no trailer, no %%EOF
    whole = docx_bytes("never seen")
    (inp / "broken.docx").write_bytes(whole[: len(whole) // 2])
    (inp / "rows.jsonl").write_text("\n".join([
        json.dumps({"text": "The first good row talks about the football season."}),
        '{"text": "unterminated',
        json.dumps({"body": "a row under the wrong key"}),
        json.dumps({"text": 5}),
        json.dumps({"text": "The last good row is about a film premiere."}),
    ]) + "\n")
    (inp / "nocol.csv").write_text("title,body\nA headline,Some body text\n")
    os.symlink("..", inp / "sub" / "up")  # folder loop
    os.symlink("self.txt", inp / "self.txt")  # link to itself: ELOOP
    os.symlink("does-not-exist.txt", inp / "dangling.txt")
    os.mkfifo(inp / "fifo.txt")  # would block a naive open() forever
    (inp / "locked.txt").write_text("a file nobody may read")
    os.chmod(inp / "locked.txt", 0)
    cfg = write_config(root, inp)
    res = subprocess.run([LABELLOOP, "ingest", str(cfg)], capture_output=True, text=True, timeout=300)
    return root, res, good


def test_ingest_survives_and_reports_every_bad_file(bad_dir):
    root, res, _ = bad_dir
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    lines = [" ".join(ln.split()) for ln in res.stdout.splitlines()]
    flat = " ".join(" ".join(res.stdout.split()).split())
    missing = []
    for path, severity, words in EXPECTED:
        hit = [ln for ln in lines if ln.startswith(f"{severity} {path}:")]
        # rich may wrap a long line; fall back to the flattened text
        if not hit and f"{severity} {path}: " not in flat:
            missing.append((path, severity))
        elif hit and words.lower() not in hit[0].lower() and words.lower() not in flat.lower():
            missing.append((path, words))
    assert not missing, f"no report line for {missing}:\n{res.stdout}"
    record("bad_input", {"bad_inputs_tried": [p for p, _, _ in EXPECTED] + ["locked.txt (chmod 000)"],
                         "reported": len(EXPECTED), "root": os.geteuid() == 0})


def test_bad_files_are_recorded_once_in_the_project_file(bad_dir):
    root, *_ = bad_dir
    store = Store(root / "output" / "labelloop.db", create=False)
    recorded = {(p["path"], p["severity"]) for p in store.ingest_problems()}
    for path, severity, _ in EXPECTED:
        assert (path, severity) in recorded, path
    assert store.integrity_check() == "ok"


def test_the_rest_is_ingested_with_the_right_text(bad_dir):
    root, _, good = bad_dir
    store = Store(root / "output" / "labelloop.db", create=False)
    by_source: dict[str, str] = {}
    for c in store.chunks():
        base = c.source.split(":")[0].split("#")[0]
        by_source[base] = by_source.get(base, "") + " " + c.text
    assert {"good1.txt", "sub/good2.md", "good.docx", "latin1.txt", "utf16.txt", "rows.jsonl"} <= set(by_source)
    assert LATIN in by_source["latin1.txt"]  # decoded, not mojibake
    assert UTF16 in by_source["utf16.txt"]
    assert "football season" in by_source["rows.jsonl"] and "film premiere" in by_source["rows.jsonl"]
    assert good[0].split()[0] in by_source["good1.txt"]
    bad = {"empty.txt", "blank.md", "binary.txt", "truncated.pdf", "broken.docx", "nocol.csv", "self.txt",
           "dangling.txt", "fifo.txt"}
    assert not bad & set(by_source)
    assert not any(s.startswith("sub/up/") for s in by_source)  # the loop was not followed


def test_unreadable_file(bad_dir):
    root, res, _ = bad_dir
    if os.geteuid() == 0:
        pytest.skip("root reads a chmod 000 file; the FIFO, broken link and link loop stand in for unreadable files")
    assert "error locked.txt: cannot read" in " ".join(res.stdout.split())


def test_rerun_adds_nothing_and_reports_again(bad_dir):
    root, first, _ = bad_dir
    store = Store(root / "output" / "labelloop.db", create=False)
    chunks, problems = len(store.chunks()), len(store.ingest_problems())
    res = subprocess.run([LABELLOOP, "ingest", str(root / "config.yaml")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "0 new chunk(s)" in " ".join(res.stdout.split())
    assert "fifo.txt" in res.stdout  # problems are reported on every run, stored once
    store = Store(root / "output" / "labelloop.db", create=False)
    assert len(store.chunks()) == chunks and len(store.ingest_problems()) == problems








def test_big_text_file_streams(tmp_path):
    small, big = tmp_path / "small", tmp_path / "big"
    for d in (small, big):
        (d / "input").mkdir(parents=True)
    (small / "input" / "a.txt").write_text("One short document about the weather.\n")
    size = write_big_text(big / "input" / "big.txt", 48 << 20)
    rc0, base_kb, out0 = peak_rss_kb(LABELLOOP, "ingest", str(write_config(small, small / "input")))
    rc1, big_kb, out1 = peak_rss_kb(LABELLOOP, "ingest", str(write_config(big, big / "input")))
    assert rc0 == 0 and rc1 == 0, out0 + out1
    grew = (big_kb - base_kb) * 1024
    print(f"\npeak RSS: {base_kb / 1024:.0f} MB for one line, {big_kb / 1024:.0f} MB for {size / 2**20:.0f} MB; "
          f"grew {grew / 2**20:.1f} MB")
    record("streaming", {"file_mb": round(size / 2**20), "base_rss_mb": round(base_kb / 1024),
                         "peak_rss_mb": round(big_kb / 1024), "grew_mb": round(grew / 2**20, 1)})
    assert grew < size / 3, f"peak RSS grew {grew / 2**20:.0f} MB for a {size / 2**20:.0f} MB file: not streamed"
    store = Store(big / "output" / "labelloop.db", create=False)
    chunks = store.chunks()
    assert sum(len(c.text) for c in chunks) > size * 0.95  # all of it is in, in many chunks
    assert len({c.source.split("#")[0] for c in chunks}) == 1
