"""The embedding-head student run by onnxruntime + tokenizers (no torch): model.onnx in its folder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from labelloop.files import sha256_file, usable_cpus
from labelloop.classify import folder as fmt
from labelloop.classify.head import head_proba, multi_head_proba
from labelloop.classify.student_input import StudentInput
from labelloop.errors import LabelloopError, ModelNotAvailableError

ONNX_FILE = "model.onnx"
ONNX_META = "onnx.json"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
EMBEDDING_OUTPUT = "embedding"
LOGITS_OUTPUT = "logits"
INSTALL_HINT = "pip install 'labelloop[onnx]' (onnxruntime)"


def has_onnx(model_dir: str | os.PathLike) -> bool:
    """True when the classifier folder holds an exported model.onnx."""
    return (Path(model_dir) / ONNX_FILE).is_file()


def file_digest(path: Path) -> str:
    """sha256 of a file (ties model.onnx to the head it was exported with)."""
    return sha256_file(path)


def session_threads() -> int:
    """Threads for one onnxruntime session: the CPUs this process may use (Ray sets OMP_NUM_THREADS per actor)."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return usable_cpus()


class OnnxStudent:
    """A fitted embedding-head student loaded from model.onnx; predict / predict_proba like the torch one."""

    kind = "embedding-head"

    def __init__(self, model_dir: str | os.PathLike, batch_size: int = 32, threads: int | None = None):
        self.model_dir = Path(model_dir)
        self.batch_size = batch_size
        self.threads = threads

    @classmethod
    def load(cls, model_dir: str | os.PathLike, batch_size: int = 32, threads: int | None = None) -> "OnnxStudent":
        """Session, tokenizer and head from the folder; errors say how to re-export."""
        return cls(model_dir, batch_size, threads)._load()

    def _load(self) -> "OnnxStudent":
        folder = self.model_dir
        meta = fmt.read_meta(folder)
        if meta.get("student_type") != "embedding-head":
            raise ModelNotAvailableError(
                f"{str(folder)!r} holds a {meta.get('student_type')!r} student; model.onnx is only used for "
                "embedding-head students. Remove model.onnx, or predict with --runtime torch"
            )
        info = self._read_onnx_meta(folder)
        self.classes_ = list(meta["classes"])
        self.coef_, self.intercept_ = fmt.load_head(folder, len(self.classes_))
        self.multi_label = bool(meta.get("multi_label"))
        if self.multi_label:
            self.thresholds_ = np.array([float(meta["thresholds"][c]) for c in self.classes_])
        head_path = folder / fmt.HEAD_FILE
        if info.get("head_sha256") and info["head_sha256"] != file_digest(head_path):
            raise ModelNotAvailableError(
                f"{str(folder / ONNX_FILE)!r} was exported from another {fmt.HEAD_FILE}; "
                f"export it again with `labelloop export {folder} --onnx`"
            )
        self.max_seq_length = int(info.get("max_seq_length") or meta.get("max_seq_length") or 256)
        self.quantized = info.get("quantized") or False  # "int8-dynamic" when quantized
        self.tokenizer_ = self._tokenizer(folder)
        self.session_ = self._session(folder / ONNX_FILE)
        return self

    @staticmethod
    def _read_onnx_meta(folder: Path) -> dict:
        path = folder / ONNX_META
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ModelNotAvailableError(
                f"cannot read {str(path)!r} ({exc}); export again with `labelloop export {folder} --onnx`"
            ) from None

    def _tokenizer(self, folder: Path):
        """The student's tokenizer (labelloop.ingest.load_tokenizer), truncating and padding like its body."""
        from tokenizers import Tokenizer

        from labelloop.ingest.chunking import backend_of

        contract = StudentInput.load(folder)
        if not (Path(contract.tokenizer_dir) / "tokenizer.json").is_file():
            raise ModelNotAvailableError(
                f"{contract.tokenizer_dir!r} has no tokenizer.json, which the ONNX runtime needs; "
                "save the student with a recent transformers, or predict with --runtime torch"
            )
        tok = Tokenizer.from_str(backend_of(contract.tokenizer()).to_str())  # a copy: settings below are ours
        tok.enable_truncation(max_length=self.max_seq_length, strategy="longest_first")
        pad_id = tok.token_to_id("[PAD]")
        tok.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
        return tok

    def _session(self, path: Path):
        try:
            import onnxruntime as ort
        except ImportError:
            raise LabelloopError(
                f"{str(path)!r} needs onnxruntime, which is not installed; {INSTALL_HINT}, "
                "or predict with --runtime torch"
            ) from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads or session_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - any load failure means the file is unusable
            raise ModelNotAvailableError(
                f"onnxruntime cannot load {str(path)!r} ({type(exc).__name__}: {exc}); "
                f"export it again with `labelloop export {path.parent} --onnx`"
            ) from None

    # ------------------------------------------------------------ the student interface

    def tokenize(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Padded int64 inputs for the session."""
        encs = self.tokenizer_.encode_batch(list(texts))
        return {
            "input_ids": np.asarray([e.ids for e in encs], dtype=np.int64),
            "attention_mask": np.asarray([e.attention_mask for e in encs], dtype=np.int64),
            "token_type_ids": np.asarray([e.type_ids for e in encs], dtype=np.int64),
        }

    def encode_tokens(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """Normalized embeddings of tokenized inputs."""
        names = {i.name for i in self.session_.get_inputs()}
        (emb,) = self.session_.run([EMBEDDING_OUTPUT], {k: v for k, v in feed.items() if k in names})
        return np.asarray(emb, dtype=np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings, batched by length (less padding) and returned in input order."""
        texts = list(texts)
        out = np.zeros((len(texts), self.coef_.shape[1]), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), self.batch_size):
            idx = order[start:start + self.batch_size]
            out[idx] = self.encode_tokens(self.tokenize([texts[i] for i in idx]))
        return out

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, columns in `classes_` order (the torch student's head, in float64)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, len(self.classes_)), dtype=np.float32)
        proba = multi_head_proba if self.multi_label else head_proba
        return proba(self.embed(texts), self.coef_, self.intercept_)

    def predict(self, texts: Sequence[str]) -> list:
        """The most probable class of each text; multi-label: each text's label set by its thresholds."""
        from labelloop.classify.decision import decide

        return decide(self.predict_proba(texts), self.classes_, self.thresholds_ if self.multi_label else None)

    def __repr__(self) -> str:
        return f"OnnxStudent({str(self.model_dir)!r}, quantized={getattr(self, 'quantized', None)})"
