"""PDF and Word files: one Document per PDF page with text, one per .docx.

pypdf and python-docx raise many kinds of error on corrupt, truncated or hostile files,
builtins among them (both raise TypeError and AttributeError on malformed objects). Each
`try` here wraps library calls only and names what those libraries raise on bad input
(`_pdf_errors`, `_docx_errors`: found by fuzzing both, and in pypdf's robustness issues),
so a bad file is a reported problem while an error in labelloop's own code surfaces as itself."""

from __future__ import annotations

import logging
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from labelloop.ingest.documents import Document, OnProblem, Problem

# What pypdf raises on corrupt input besides its PyPdfError family: builtins from malformed objects
# (its robustness issues name KeyError, IndexError, ZeroDivisionError, RecursionError, ...).
_PDF_LIBRARY_ERRORS = (ValueError, KeyError, IndexError, TypeError, AttributeError, AssertionError,
                       ZeroDivisionError, RecursionError, NotImplementedError, struct.error, zlib.error)
# What python-docx (through zipfile and lxml) raises on a broken .docx: a part missing (KeyError),
# a bad seek (ValueError), malformed XML (lxml errors, or AttributeError/TypeError on odd elements).
_DOCX_LIBRARY_ERRORS = (zipfile.BadZipFile, zlib.error, KeyError, ValueError, IndexError, TypeError,
                        AttributeError, EOFError, NotImplementedError, RuntimeError)


def _pdf_errors() -> tuple[type[BaseException], ...]:
    from pypdf.errors import DependencyError, DeprecationError, PyPdfError

    return (PyPdfError, DependencyError, DeprecationError, *_PDF_LIBRARY_ERRORS)


def _docx_errors() -> tuple[type[BaseException], ...]:
    from docx.opc.exceptions import OpcError
    from lxml.etree import LxmlError

    return (OpcError, LxmlError, *_DOCX_LIBRARY_ERRORS)


def read_pdf(path: Path, source: str, text_column: str, on_problem: OnProblem) -> Iterator[Document]:
    """One Document per page with a text layer; a page pypdf cannot read is reported and skipped."""
    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    errors = _pdf_errors()
    try:
        reader = PdfReader(path, strict=False)
        locked = reader.is_encrypted and not reader.decrypt("")  # PasswordType.NOT_DECRYPTED is 0
        pages = None if locked else reader.pages
        n_pages = 0 if pages is None else len(pages)
    except errors as exc:
        on_problem(Problem(source, "error", f"cannot read PDF ({type(exc).__name__}: {exc}); the file is "
                                            "corrupt, truncated or encrypted; re-export or re-download it"))
        return
    if pages is None:
        on_problem(Problem(source, "error", "cannot read PDF: it is encrypted with a password; save a copy "
                                            "without the password (e.g. `qpdf --decrypt`) and ingest that"))
        return
    any_text = False
    for i in range(n_pages):
        try:
            text = pages[i].extract_text() or ""
        except errors as exc:
            on_problem(Problem(f"{source}#page{i + 1}", "error",
                               f"cannot extract text ({type(exc).__name__}: {exc}), page skipped"))
            continue
        if text.strip():
            any_text = True
            yield Document(source, text, {"page": i + 1}, i)
    if not any_text:
        on_problem(Problem(source, "warning", f"PDF with {n_pages} page(s) but no text layer (scanned?); run OCR on it first"))


def read_docx(path: Path, source: str, text_column: str, on_problem: OnProblem) -> Iterator[Document]:
    """The paragraphs, then the table rows (cells joined by ' | '), of a .docx as one Document."""
    import docx

    try:
        doc = docx.Document(str(path))
        paragraphs = [p.text for p in doc.paragraphs]
        rows = [[c.text for c in row.cells] for table in doc.tables for row in table.rows]
    except _docx_errors() as exc:
        on_problem(Problem(source, "error", f"cannot read DOCX ({type(exc).__name__}: {exc}); the file is "
                                            "corrupt or not a Word .docx (old .doc files are not supported); "
                                            "re-save it as .docx"))
        return
    parts = paragraphs + [" | ".join(c.strip() for c in cells if c.strip()) for cells in rows]
    text = "\n\n".join(p for p in parts if p.strip())
    if text.strip():
        yield Document(source, text, {}, 0)
    else:
        on_problem(Problem(source, "warning", "DOCX has no text, nothing to ingest"))
