"""Readers on real files: encodings, PDF, DOCX, JSONL, CSV, broken and odd inputs, streaming."""

from __future__ import annotations

import io
import json
import os
import random
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from labelloop.ingest import office, records, textfiles
from labelloop.ingest.readers import Document, Problem, iter_documents, iter_files, read_file
from labelloop.ingest.textfiles import BLOCK_CHARS, _paragraph_blocks

from tests.helpers.documents import make_docx, make_pdf

pytestmark = pytest.mark.unit

FRENCH = (
    "Le café était fermé ce matin-là. Élodie a acheté une crème brûlée à la pâtisserie, "
    "puis elle est allée à la bibliothèque où l'on prête des livres à tout le monde. "
)


def read(path: Path, text_column: str = "text") -> tuple[list[Document], list[Problem]]:
    problems: list[Problem] = []
    docs = list(read_file(path, path.name, text_column=text_column, on_problem=problems.append))
    return docs, problems


# ---------------------------------------------------------------- plain text and encodings

def test_utf8_text_and_markdown(tmp_path):
    (tmp_path / "a.txt").write_text("Hello world.\n\nSecond paragraph.", encoding="utf-8")
    (tmp_path / "b.md").write_text("# Title\n\nSome *markdown* text.", encoding="utf-8")
    for name, expected in (("a.txt", "Second paragraph."), ("b.md", "*markdown*")):
        docs, problems = read(tmp_path / name)
        assert problems == []
        assert len(docs) == 1 and expected in docs[0].text and docs[0].part == 0


def test_utf8_bom_is_stripped_silently(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + "naïve text".encode("utf-8"))
    docs, problems = read(path)
    assert problems == [] and docs[0].text == "naïve text"


def test_latin1_file_is_decoded_with_a_warning(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes((FRENCH * 5).encode("latin-1"))
    docs, problems = read(path)
    assert "crème brûlée" in docs[0].text and "Élodie" in docs[0].text
    assert [p.severity for p in problems] == ["warning"]
    assert "not valid UTF-8" in problems[0].message and "decoded as" in problems[0].message


@pytest.mark.parametrize(
    "text, encoding",
    [
        ("Größe und Übermaß – „Zitat“ kostet €5. " * 3, "cp1252"),  # Windows smart quotes and euro sign
        ("Привет, как дела? Это тест кодировки. " * 3, "cp1251"),
    ],
)

def test_legacy_encodings_are_detected(tmp_path, text, encoding):
    path = tmp_path / f"{encoding}.txt"
    path.write_bytes(text.encode(encoding))
    docs, problems = read(path)
    assert docs[0].text == text
    assert f"decoded as {encoding}" in problems[0].message


def test_utf16_with_bom_is_decoded_with_a_warning(tmp_path):
    path = tmp_path / "wide.txt"
    path.write_bytes(FRENCH.encode("utf-16"))
    docs, problems = read(path)
    assert docs[0].text == FRENCH
    assert len(problems) == 1 and "utf-16" in problems[0].message


def test_utf16_without_bom_is_detected(tmp_path):
    path = tmp_path / "wide_le.txt"
    path.write_bytes(FRENCH.encode("utf-16-le"))
    docs, problems = read(path)
    assert docs[0].text == FRENCH and "utf-16-le" in problems[0].message


def test_empty_and_whitespace_files_warn(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.md").write_text("  \n\n \t\n")
    docs, problems = read(tmp_path / "empty.txt")
    assert docs == [] and problems[0].severity == "warning" and "empty" in problems[0].message
    docs, problems = read(tmp_path / "blank.md")
    assert docs == [] and problems[0].severity == "warning" and "whitespace" in problems[0].message


def test_binary_junk_named_txt_is_an_error(tmp_path):
    path = tmp_path / "junk.txt"
    path.write_bytes(bytes(range(256)) * 40)
    docs, problems = read(path)
    assert docs == []
    assert problems[0].severity == "error" and "binary" in problems[0].message


def test_control_characters_without_nul_are_binary(tmp_path):
    path = tmp_path / "ctrl.txt"
    path.write_bytes(bytes([1, 2, 3, 4, 5, 6, 7, 8, 14, 15, 65]) * 100)
    docs, problems = read(path)
    assert docs == [] and problems[0].severity == "error" and "control" in problems[0].message


# ---------------------------------------------------------------- PDF and DOCX


def test_pdf_pages_become_documents(tmp_path):
    path = make_pdf(tmp_path / "report.pdf", ["Quarterly revenue rose sharply.", "Costs fell in the second half."])
    docs, problems = read(path)
    assert problems == []
    assert [d.metadata["page"] for d in docs] == [1, 2]
    assert "Quarterly revenue rose sharply." in docs[0].text and "Costs fell" in docs[1].text


def test_truncated_pdf_is_an_error(tmp_path):
    good = make_pdf(tmp_path / "good.pdf", ["Some text on a page."] * 3)
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    docs, problems = read(bad)
    assert docs == []
    assert len(problems) == 1 and problems[0].severity == "error"
    assert "cannot read PDF" in problems[0].message and "truncated" in problems[0].message


def test_docx_paragraphs_and_tables(tmp_path):
    path = make_docx(tmp_path / "memo.docx", ["Dear team,", "The launch moves to May."], [["Owner", "Date"]])
    docs, problems = read(path)
    assert problems == []
    assert docs[0].text == "Dear team,\n\nThe launch moves to May.\n\nOwner | Date"


def test_broken_zip_docx_is_an_error(tmp_path):
    good = make_docx(tmp_path / "good.docx", ["text"])
    bad = tmp_path / "broken.docx"
    bad.write_bytes(good.read_bytes()[:2000])
    (tmp_path / "notzip.docx").write_bytes(b"PK\x03\x04 definitely not a zip")
    for path in (bad, tmp_path / "notzip.docx"):
        docs, problems = read(path)
        assert docs == [] and len(problems) == 1
        assert problems[0].severity == "error" and "cannot read DOCX" in problems[0].message


# ---------------------------------------------------------------- JSONL and CSV


def test_jsonl_rows_metadata_and_bad_lines(tmp_path):
    path = tmp_path / "rows.jsonl"
    lines = [
        json.dumps({"text": "first row", "id": 1, "lang": "en"}),
        "{not json",
        "",
        json.dumps(["a", "list"]),
        json.dumps({"body": "no text key"}),
        json.dumps({"text": "   "}),
        json.dumps({"text": 42}),
        json.dumps({"text": "last row", "id": 8}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    docs, problems = read(path)
    assert [(d.source, d.text, d.metadata) for d in docs] == [
        ("rows.jsonl#L1", "first row", {"id": 1, "lang": "en"}),
        ("rows.jsonl#L8", "last row", {"id": 8}),
    ]
    assert [p.path for p in problems] == ["rows.jsonl:2", "rows.jsonl:4", "rows.jsonl:5", "rows.jsonl:6", "rows.jsonl:7"]
    assert "not valid JSON" in problems[0].message
    assert "['body']" in problems[2].message and "--text-column" in problems[2].message
    assert problems[3].severity == "warning"


def test_jsonl_text_column_and_problem_cap(tmp_path):
    path = tmp_path / "many.jsonl"
    path.write_text("\n".join(["garbage"] * 30 + [json.dumps({"body": "kept"})]), encoding="utf-8")
    docs, problems = read(path, text_column="body")
    assert [d.text for d in docs] == ["kept"]
    assert len(problems) == 21 and "10 more row problem(s)" in problems[-1].message


def test_csv_without_text_column_names_columns_and_fix(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("id,body,label\n1,Hello there,a\n2,\"Quoted, with comma\",b\n3,,c\n", encoding="utf-8")
    docs, problems = read(path)
    assert docs == [] and len(problems) == 1
    msg = problems[0].message
    assert problems[0].severity == "error"
    assert "'text'" in msg and "['id', 'body', 'label']" in msg
    assert "--text-column" in msg and "ingest.text_column" in msg

    docs, problems = read(path, text_column="body")
    assert [(d.source, d.text, d.metadata) for d in docs] == [
        ("table.csv#row1", "Hello there", {"id": "1", "label": "a"}),
        ("table.csv#row2", "Quoted, with comma", {"id": "2", "label": "b"}),
    ]
    assert [(p.path, p.severity) for p in problems] == [("table.csv#row3", "warning")]


def test_csv_semicolons_and_multiline_cells(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text('text;topic\n"line one\n\nline two";news\nplain;sport\n', encoding="utf-8")
    docs, problems = read(path)
    assert problems == []
    assert [(d.text, d.metadata) for d in docs] == [("line one\n\nline two", {"topic": "news"}), ("plain", {"topic": "sport"})]


# ---------------------------------------------------------------- walking


def test_walk_is_sorted_recursive_and_reports_odd_entries(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.txt").write_text("z")
    (tmp_path / "b" / "a.md").write_text("a")
    (tmp_path / "a.txt").write_text("top")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / ".hidden.txt").write_text("secret")
    (tmp_path / "b" / "loop").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "dangling.txt").symlink_to(tmp_path / "nowhere.txt")
    os.mkfifo(tmp_path / "pipe.txt")
    problems: list[Problem] = []
    found = [source for _, source in iter_files(tmp_path, problems.append)]
    assert found == ["a.txt", "b/a.md", "b/z.txt"]
    by_path = {p.path: p for p in problems}
    assert "link loop" in by_path["b/loop"].message
    assert by_path["dangling.txt"].severity == "error" and "broken link" in by_path["dangling.txt"].message
    assert by_path["pipe.txt"].severity == "error" and "FIFO" in by_path["pipe.txt"].message
    assert "unsupported file type '.png'" in by_path["image.png"].message
    assert "hidden" in by_path[".hidden.txt"].message


def test_unreadable_file_is_reported(tmp_path):
    folder = tmp_path / "folder.txt"  # open() fails on it even for root
    folder.mkdir()
    docs, problems = read(folder)
    assert docs == [] and problems[0].severity == "error" and "cannot read" in problems[0].message

    path = tmp_path / "locked.txt"
    path.write_text("you cannot read me")
    path.chmod(0)
    try:
        problems = []
        docs = list(read_file(path, "locked.txt", on_problem=problems.append))
        if os.geteuid() == 0:
            pytest.skip("running as root: chmod 000 does not block reads (the folder, FIFO and broken links cover this)")
        assert docs == []
        assert problems[0].severity == "error" and "chmod" in problems[0].message
    finally:
        path.chmod(0o644)


def test_iter_documents_mixes_formats(tmp_path):
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "beta"}) + "\n")
    (tmp_path / "c.csv").write_text("text\ngamma\n")
    problems: list[Problem] = []
    docs = list(iter_documents(tmp_path, on_problem=problems.append))
    assert [(d.source, d.text) for d in docs] == [("a.txt", "alpha"), ("b.jsonl#L1", "beta"), ("c.csv#row1", "gamma")]
    assert problems == []


# ---------------------------------------------------------------- streaming


def test_paragraph_blocks_cut_at_blank_lines_and_lose_nothing():
    paragraphs = [f"Paragraph {i} " + "word " * (i % 37) for i in range(2000)]
    text = "\n\n".join(paragraphs)
    blocks = list(_paragraph_blocks(io.StringIO(text), block_chars=4096))
    assert len(blocks) > 10
    assert "".join(blocks) == text
    assert all(b.endswith("\n\n") for b in blocks[:-1])
    assert all(len(b) <= 2 * 4096 for b in blocks)


def test_paragraph_blocks_without_blank_lines_still_bounded():
    text = "x" * 50_000
    blocks = list(_paragraph_blocks(io.StringIO(text), block_chars=4096))
    assert "".join(blocks) == text and max(len(b) for b in blocks) <= 2 * 4096


def test_big_text_file_streams_in_parts(tmp_path):
    path = tmp_path / "big.txt"
    para = "This is a generated paragraph about nothing in particular, number {}.\n\n"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(700_000):  # about 50 MB
            f.write(para.format(i))
    size = path.stat().st_size
    assert size > 45_000_000
    tracemalloc.start()
    try:
        parts = 0
        chars = 0
        problems: list[Problem] = []
        for doc in read_file(path, "big.txt", on_problem=problems.append):
            assert doc.part == parts
            parts += 1
            chars += len(doc.text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert problems == []
    assert chars == size  # ASCII: one char per byte, nothing lost
    assert parts >= size // BLOCK_CHARS - 1
    assert peak < 12 * BLOCK_CHARS, f"peak {peak / 1e6:.1f} MB while streaming a {size / 1e6:.0f} MB file"


# ---------------------------------------------------------------- a bad file is a problem; a bug is a bug


def good_files(tmp_path: Path) -> dict[str, Path]:
    """One readable file of each supported type."""
    (tmp_path / "a.txt").write_text("Some plain text.")
    (tmp_path / "b.md").write_text("# Title\n\nSome markdown.")
    (tmp_path / "c.jsonl").write_text(json.dumps({"text": "a row"}) + "\n")
    (tmp_path / "d.csv").write_text("text\na row\n")
    make_pdf(tmp_path / "e.pdf", ["A page of text."])
    make_docx(tmp_path / "f.docx", ["A paragraph."])
    return {p.suffix: p for p in sorted(tmp_path.iterdir())}


READER_MODULES = {".txt": textfiles, ".md": textfiles, ".jsonl": records, ".csv": records,
                  ".pdf": office, ".docx": office}


@pytest.mark.parametrize("error", [TypeError, AttributeError, KeyError, ValueError])
@pytest.mark.parametrize("suffix", list(READER_MODULES))
def test_a_bug_in_labelloop_code_surfaces_as_itself(tmp_path, monkeypatch, suffix, error):
    # The error types the libraries raise on bad files, raised by labelloop's own code instead:
    # they must not be reported as a problem with the file.
    path = good_files(tmp_path)[suffix]

    def bug(*args, **kwargs):
        raise error("a bug in labelloop")

    monkeypatch.setattr(READER_MODULES[suffix], "Document", bug)
    with pytest.raises(error, match="a bug in labelloop"):
        read(path)


@pytest.mark.parametrize("suffix", [".txt", ".jsonl", ".csv"])
def test_a_bug_in_decoding_surfaces_as_itself(tmp_path, monkeypatch, suffix):
    path = good_files(tmp_path)[suffix]

    def bug(*args, **kwargs):
        raise TypeError("a bug in labelloop")

    monkeypatch.setattr(textfiles, "_looks_binary", bug)
    with pytest.raises(TypeError, match="a bug in labelloop"):
        read(path)


def test_pypdf_failing_on_a_page_is_a_page_problem(tmp_path, monkeypatch):
    # pypdf raises builtins such as TypeError on malformed pages (no stable real file provokes it).
    from pypdf import PageObject

    path = make_pdf(tmp_path / "odd.pdf", ["First page.", "Second page."])
    calls = iter([TypeError("unsupported operand type(s)"), None])

    def extract_text(self, *args, **kwargs):
        error = next(calls)
        if error:
            raise error
        return "Second page."

    monkeypatch.setattr(PageObject, "extract_text", extract_text)
    docs, problems = read(path)
    assert [d.text for d in docs] == ["Second page."]
    assert [(p.path, p.severity) for p in problems] == [("odd.pdf#page1", "error")]
    assert "TypeError" in problems[0].message and "page skipped" in problems[0].message


def test_password_protected_pdf_says_so(tmp_path):
    from pypdf import PdfReader, PdfWriter

    plain = make_pdf(tmp_path / "plain.pdf", ["Secret plans."])
    writer = PdfWriter(clone_from=PdfReader(plain))
    writer.encrypt("secret", algorithm="RC4-128")
    path = tmp_path / "locked.pdf"
    with open(path, "wb") as f:
        writer.write(f)
    docs, problems = read(path)
    assert docs == [] and len(problems) == 1
    assert problems[0].severity == "error" and "password" in problems[0].message


def test_bytes_the_encoding_cannot_decode_are_a_file_problem(tmp_path):
    path = tmp_path / "cut.txt"
    path.write_bytes(FRENCH.encode("utf-16") + b"\x41")  # a BOM, then an odd trailing byte
    docs, problems = read(path)
    assert docs == []
    assert [p.severity for p in problems] == ["warning", "error"]  # decoded as utf-16; then it fails
    assert "cannot decode as utf-16" in problems[1].message and "re-save it as UTF-8" in problems[1].message


def test_hostile_jsonl_lines_are_row_problems_and_the_other_rows_are_read(tmp_path):
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join([
        json.dumps({"text": "before"}),
        "[" * 100_000 + "]" * 100_000,  # nested past the recursion limit
        '{"text": "big", "n": ' + "9" * 5000 + "}",  # past the integer string conversion limit
        json.dumps({"text": "after"}),
    ]) + "\n", encoding="utf-8")
    docs, problems = read(path)
    assert [d.text for d in docs] == ["before", "after"]
    assert [(p.path, p.severity) for p in problems] == [("hostile.jsonl:2", "error"), ("hostile.jsonl:3", "error")]
    assert "nested too deeply" in problems[0].message and "not valid JSON" in problems[1].message


def _mutants(data: bytes, rng: random.Random, n: int) -> list[bytes]:
    """Truncated, overwritten, cut and spliced copies of data: what a bad disk or download leaves."""
    out = []
    for _ in range(n):
        b = bytearray(data)
        i = rng.randrange(len(b))
        kind = rng.randrange(4)
        if kind == 0:
            b = b[:i]
        elif kind == 1:
            for _ in range(rng.randint(1, 30)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif kind == 2:
            del b[i:i + rng.randint(1, 200)]
        else:
            b[i:i] = bytes(rng.randrange(256) for _ in range(50))
        out.append(bytes(b))
    return out


def _docx_with_a_broken_part(data: bytes, rng: random.Random) -> bytes:
    """A well-formed zip whose one part (XML or relationships) is missing, cut or corrupted."""
    src = zipfile.ZipFile(io.BytesIO(data))
    victim = rng.choice(src.namelist())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for name in src.namelist():
            part = src.read(name)
            if name == victim:
                if rng.random() < 0.3:
                    continue
                part = _mutants(part, rng, 1)[0]
            out.writestr(name, part)
    return buf.getvalue()


def test_corrupt_pdf_and_docx_files_are_reported_never_raised(tmp_path):
    # Seeded corruption of real files: whatever pypdf and python-docx raise on them is a file problem.
    rng = random.Random(24)
    pdf = make_pdf(tmp_path / "good.pdf", ["Quarterly revenue rose sharply. " * 20, "Costs fell. " * 20]).read_bytes()
    docx_ = make_docx(tmp_path / "good.docx", ["Dear team,", "The launch moves to May."], [["Owner", "Date"]]).read_bytes()
    variants = [("pdf", b) for b in _mutants(pdf, rng, 40)] + [("docx", b) for b in _mutants(docx_, rng, 20)]
    variants += [("docx", _docx_with_a_broken_part(docx_, rng)) for _ in range(30)]
    reported = 0
    for i, (kind, data) in enumerate(variants):
        path = tmp_path / f"v{i}.{kind}"
        path.write_bytes(data)
        docs, problems = read(path)  # raises if a library error escaped
        assert docs or problems, path.name
        reported += any(p.severity == "error" for p in problems)
    assert reported >= len(variants) // 3  # most of them really are broken
