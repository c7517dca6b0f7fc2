"""Ingestion: read documents (txt, md, pdf, docx, jsonl, csv), chunk and truncate by student tokens."""

from labelloop.ingest.chunking import Chunker, load_tokenizer
from labelloop.ingest.pipeline import IngestReport, ingest
from labelloop.ingest.readers import SUPPORTED, Document, Problem, iter_documents, iter_files, read_file
from labelloop.ingest.truncation import SEPARATOR, Truncated, truncate

__all__ = [
    "SEPARATOR", "SUPPORTED", "Chunker", "Document", "IngestReport", "Problem", "Truncated",
    "ingest", "iter_documents", "iter_files", "load_tokenizer", "read_file", "truncate",
]
