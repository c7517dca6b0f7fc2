"""What the student sees of a chunk: one record, written into every model folder, read by every consumer.

`StudentInput` holds the student's base model, how many tokens it takes, how a longer text is
cut (head or head-tail), the chunk size, the classes and whether a text may have several
labels. The loop builds it once from the config and trains with it; it is saved as
`student_input.json` beside the model, with the tokenizer that counts the cut (`cut/`) and the
one that chunked the documents (`chunker/`, when it is another), and predict, Ray, serve, ONNX
and the review app's truncation highlight all load it from there, so training and prediction
can never cut or chunk text differently. labelloop.json and the folder's README say the same
(labelloop.classify.folder.record_input).

The window fits a chunk: `system.chunk_size` counts text tokens (Augmentoolkit's meaning) and
`max_length` counts the special tokens too, so when the base model's own length would hold a
full chunk but for its two special tokens, the window grows by them (`window_for`, when the
model has the positions); otherwise every chunk of exactly chunk_size tokens would lose its
middle to a head-tail cut. The window adapts, not the chunker: chunks stay chunk_size tokens,
as Augmentoolkit means, and ingest need not know the student. A chunk_size beyond the model's
length is a choice to cut (training.truncation_type); an explicit student.max_seq_length is
kept as set.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from labelloop.errors import ModelNotAvailableError

INPUT_FILE = "student_input.json"
CUT_TOKENIZER = "cut/tokenizer.json"  # the tokenizer that counts the cut, in every saved folder
CHUNK_TOKENIZER = "chunker/tokenizer.json"  # the one that chunked the documents, when it is another
SPECIAL_TOKENS = 2  # [CLS] and [SEP] (or <s> and </s>): the budget for text is max_length - 2
FALLBACK_MAX_LENGTH = 256
MAX_POSITIONS = 512


@dataclass(frozen=True)
class StudentInput:
    """The student-input contract. `max_length` counts the special tokens, as max_seq_length does."""

    encoder: str | None  # the base model as configured (None: the packaged all-MiniLM-L6-v2)
    max_length: int
    truncation: str  # "head" or "head-tail"
    chunk_size: int
    classes: tuple[str, ...]
    multi_label: bool = False
    chunk_encoder: str | None = None  # the model whose tokenizer chunked (config.student_model; None: packaged)
    tokenizer_dir: str | None = field(default=None, compare=False)  # where the tokenizer is (not saved)
    chunker_dir: str | None = field(default=None, compare=False)  # where the chunking tokenizer is (not saved)

    # ------------------------------------------------------------ building

    @classmethod
    def from_config(cls, config, base_folder: str | None = None) -> StudentInput:
        """The run's contract: student.max_seq_length, else the base model's window for a chunk (window_for)."""
        from labelloop.models import resolve_model

        folder = base_folder or resolve_model(config.student_model, config.student_model_setting)
        length = config.student.max_seq_length or window_for(folder, config.system.chunk_size)
        return cls(
            encoder=config.student_model, max_length=int(length), truncation=config.training.truncation_type,
            chunk_size=config.system.chunk_size, classes=tuple(config.classes),
            multi_label=bool(getattr(config.classification, "multi_label", False)),
            chunk_encoder=config.student_model, tokenizer_dir=folder, chunker_dir=folder,
        )

    def with_encoder(self, encoder: str | None, config) -> StudentInput:
        """The same contract for another base model (its own tokenizer, and length unless the config sets one)."""
        from labelloop.models import resolve_model

        folder = resolve_model(encoder, "student.encoder")
        length = config.student.max_seq_length or window_for(folder, self.chunk_size)
        return replace(self, encoder=encoder, max_length=int(length), tokenizer_dir=folder)

    @property
    def budget(self) -> int:
        """Tokens of text the student sees (max_length minus the special tokens)."""
        return max(1, self.max_length - SPECIAL_TOKENS)

    # ------------------------------------------------------------ using

    def tokenizer(self) -> Any:
        from labelloop.ingest.chunking import load_tokenizer

        return load_tokenizer(self.tokenizer_dir or self.encoder)

    def chunk_tokenizer(self) -> Any:
        """The tokenizer ingest chunked with (an older saved folder: the student's own)."""
        from labelloop.ingest.chunking import load_tokenizer

        return load_tokenizer(self.chunker_dir or self.tokenizer_dir or self.chunk_encoder)

    def chunker(self):
        """A labelloop.ingest.chunking.Chunker that cuts documents exactly as ingest cut the training chunks."""
        from labelloop.ingest.chunking import Chunker

        return Chunker(self.chunk_tokenizer(), self.chunk_size)

    def cut(self, text: str):
        """The text as the student sees it, with the kept spans (labelloop.ingest.truncation.Truncated)."""
        from labelloop.ingest.truncation import truncate

        return truncate(text, self.tokenizer(), self.budget, self.truncation)  # type: ignore[arg-type]

    def prepare(self, texts: list[str]) -> list[str]:
        """Texts cut to what the student sees, the same way in training and in prediction."""
        return [self.cut(t).text for t in texts]

    __call__ = prepare

    # ------------------------------------------------------------ the model folder

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("tokenizer_dir")
        out.pop("chunker_dir")
        out["classes"] = list(self.classes)
        return out

    @classmethod
    def from_dict(cls, data: dict, tokenizer_dir: str | None = None) -> StudentInput:
        return cls(
            encoder=data.get("encoder"), max_length=int(data["max_length"]),
            truncation=data.get("truncation", "head-tail"), chunk_size=int(data.get("chunk_size", 256)),
            classes=tuple(data["classes"]), multi_label=bool(data.get("multi_label", False)),
            chunk_encoder=data.get("chunk_encoder", data.get("encoder")), tokenizer_dir=tokenizer_dir,
        )

    def save(self, folder: str | Path) -> Path:
        """Write student_input.json and its tokenizers into a saved student's folder; labelloop.json and
        the README then record this cut (labelloop.classify.folder.record_input)."""
        from labelloop.classify.folder import record_input
        from labelloop.ingest.chunking import backend_of

        folder = Path(folder)
        cut = backend_of(self.tokenizer()).to_str()
        chunk = backend_of(self.chunk_tokenizer()).to_str()
        _write(folder / CUT_TOKENIZER, cut)
        if chunk != cut:
            _write(folder / CHUNK_TOKENIZER, chunk)
        data = {**self.to_dict(), "tokenizer": CUT_TOKENIZER, "chunk_tokenizer": CHUNK_TOKENIZER if chunk != cut
                else CUT_TOKENIZER}
        path = folder / INPUT_FILE
        _write(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        record_input(folder, self.cut_meta())
        return path

    def cut_meta(self) -> dict:
        """How a longer text is cut, for labelloop.json and a loader without labelloop."""
        from labelloop.ingest.truncation import HEAD_FRACTION, SEPARATOR

        return {"truncation": self.truncation, "max_length": self.max_length, "max_tokens": self.budget,
                "marker": SEPARATOR, "head_fraction": HEAD_FRACTION, "tokenizer": CUT_TOKENIZER,
                "chunk_size": self.chunk_size}

    @classmethod
    def load(cls, folder: str | Path) -> StudentInput:
        """The contract of a saved student, with the tokenizers recorded in the folder (older folders: its own)."""
        folder = Path(folder)
        path = folder / INPUT_FILE
        if not path.is_file() and (folder / "labelloop.json").is_file():
            return _from_older_folder(folder)
        if not path.is_file():
            raise ModelNotAvailableError(
                f"{str(folder)!r} has no {INPUT_FILE}: it was not saved by `labelloop run` (or by an older "
                "labelloop); pass one of <output_dir>/classifiers/classifier_<N>, or train it again"
            )
        data = json.loads(path.read_text(encoding="utf-8"))
        own = str(tokenizer_folder(folder))
        tokenizer_dir = _recorded(folder, data.get("tokenizer")) or own
        contract = cls.from_dict(data, tokenizer_dir=tokenizer_dir)
        return replace(contract, chunker_dir=_recorded(folder, data.get("chunk_tokenizer")) or own)


def _recorded(folder: Path, relative: str | None) -> str | None:
    """The folder of a tokenizer file recorded in student_input.json, when it is there."""
    if not relative or not (folder / relative).is_file():
        return None
    return str((folder / relative).parent)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _from_older_folder(folder: Path) -> StudentInput:
    """A folder saved before student_input.json existed: labelloop.json and labelloop_run.json say enough."""
    meta = _json(folder / "labelloop.json")
    run = _json(folder / "labelloop_run.json")
    return StudentInput(
        encoder=meta.get("encoder_source"), max_length=int(meta.get("max_seq_length") or FALLBACK_MAX_LENGTH),
        truncation=run.get("truncation_type", "head-tail"), chunk_size=int(run.get("chunk_size", 256)),
        classes=tuple(meta.get("classes") or run.get("classes") or ()), tokenizer_dir=str(tokenizer_folder(folder)),
    )


def tokenizer_folder(model_dir: Path) -> Path:
    """Where a saved student keeps its tokenizer: body/ (embedding students) or the folder (transformer)."""
    body = Path(model_dir) / "body"
    return body if body.is_dir() else Path(model_dir)


def window_for(folder: str | Path, chunk_size: int) -> int:
    """The base model's own length, grown by the special tokens when only they keep a full chunk out."""
    own = default_max_length(folder)
    if own - SPECIAL_TOKENS < chunk_size <= own:
        return max(own, min(chunk_size + SPECIAL_TOKENS, max_positions(folder) or own))
    return own


def max_positions(folder: str | Path) -> int | None:
    """How many positions the base model has (config.json, <= 512), or None when it does not say."""
    folder = Path(folder)
    for cfg in (folder / "config.json", *sorted(folder.glob("*/config.json"))):
        value = _json(cfg).get("max_position_embeddings")
        if isinstance(value, int) and value > 0:
            return min(value, MAX_POSITIONS)
    return None


def default_max_length(folder: str | Path) -> int:
    """The base model's own input length: sentence-transformers' max_seq_length, else the tokenizer's (<= 512)."""
    folder = Path(folder)
    for cfg in (folder / "sentence_bert_config.json", *sorted(folder.glob("*/sentence_bert_config.json"))):
        value = _json(cfg).get("max_seq_length")
        if value:
            return int(value)
    for cfg in (folder / "tokenizer_config.json", *sorted(folder.glob("*/tokenizer_config.json"))):
        value = _json(cfg).get("model_max_length")
        if isinstance(value, int) and 0 < value < 100_000:
            return min(value, MAX_POSITIONS)
    value = _json(folder / "config.json").get("max_position_embeddings")
    if isinstance(value, int) and value > 0:
        return min(value, MAX_POSITIONS)
    return FALLBACK_MAX_LENGTH


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


CONTRACT_META = "student_input"  # the run's contract in the project file, before any student is saved
