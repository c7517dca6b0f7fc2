"""The saved-student folder: labelloop.json, weights in safetensors, a README; never pickle."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from labelloop.errors import LabelloopError, ModelNotAvailableError

META_FILE = "labelloop.json"
HEAD_FILE = "head.safetensors"
BODY_DIR = "body"
FORMAT_VERSION = 1
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".onnx", ".pt")

HEAD_README = """# labelloop student: {kind}

Sentence-transformers body (`body/`) + logistic-regression head (`head.safetensors`).
Classes: {classes}. {cut_note}
Load it without labelloop (needs sentence-transformers, safetensors, numpy{tokenizers}):

```python
{cut_code}import json, numpy as np
from safetensors.numpy import load_file
from sentence_transformers import SentenceTransformer
meta, head = json.load(open("labelloop.json")), load_file("head.safetensors")
body = SentenceTransformer("body", device="cpu")
emb = body.encode(texts, normalize_embeddings=meta["normalize"])
logits = emb @ head["coef"].T + head["intercept"]
labels = [meta["id2label"][str(i)] for i in logits.argmax(axis=1)]
```
"""

HEAD_README_MULTI = """# labelloop student: {kind} (multi-label)

Sentence-transformers body (`body/`) + one logistic-regression head per label (`head.safetensors`:
`coef`, `intercept`, and each label's decision `thresholds`, tuned on out-of-fold predictions).
Labels: {classes}. A text gets every label whose probability reaches its threshold (or none).
{cut_note} Load it without labelloop (needs sentence-transformers, safetensors, numpy{tokenizers}):

```python
{cut_code}import json, numpy as np
from safetensors.numpy import load_file
from sentence_transformers import SentenceTransformer
meta, head = json.load(open("labelloop.json")), load_file("head.safetensors")
emb = SentenceTransformer("body", device="cpu").encode(texts, normalize_embeddings=True)
probs = 1 / (1 + np.exp(-(emb @ head["coef"].T + head["intercept"])))
labels = [[meta["classes"][j] for j in np.flatnonzero(p >= head["thresholds"])] for p in probs]
```
"""

TRANSFORMER_README = """# labelloop student: transformer

A transformers sequence classifier (config.json has id2label / label2id).
Classes: {classes}. {cut_note}
Load it without labelloop (needs transformers, torch{tokenizers}):

```python
{cut_code}from transformers import AutoModelForSequenceClassification, AutoTokenizer
import torch
tok = AutoTokenizer.from_pretrained(".")
model = AutoModelForSequenceClassification.from_pretrained(".").eval()
enc = tok(texts, truncation=True, max_length={max_seq_length}, padding=True, return_tensors="pt")
with torch.no_grad():
    probs = model(**enc).logits.softmax(-1)
labels = [model.config.id2label[int(i)] for i in probs.argmax(-1)]
```
"""

TRANSFORMER_README_MULTI = """# labelloop student: transformer (multi-label)

A transformers sequence classifier with one independent (sigmoid) output per label: config.json has
id2label / label2id, problem_type "multi_label_classification" and `label_thresholds`, each label's
decision threshold (tuned on out-of-fold predictions; also in labelloop.json as `thresholds`).
Labels: {classes}. A text gets every label whose probability reaches its threshold (or none).
{cut_note} Load it without labelloop (needs transformers, torch{tokenizers}):

```python
{cut_code}from transformers import AutoModelForSequenceClassification, AutoTokenizer
import torch
tok = AutoTokenizer.from_pretrained(".")
model = AutoModelForSequenceClassification.from_pretrained(".").eval()
enc = tok(texts, truncation=True, max_length={max_seq_length}, padding=True, return_tensors="pt")
with torch.no_grad():
    probs = model(**enc).logits.sigmoid().tolist()
cfg = model.config
labels = [[cfg.id2label[j] for j in range(cfg.num_labels) if p[j] >= cfg.label_thresholds[cfg.id2label[j]]]
          for p in probs]
```
"""

STATIC_README = """# labelloop student: static

Static token embeddings distilled with model2vec from {encoder} (`static/`), averaged per text,
then a logistic-regression head (`head.safetensors`). Classes: {classes}. {cut_note}
Predict without labelloop (numpy, safetensors, tokenizers):

```python
{cut_code}import json, numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer
meta, head = json.load(open("labelloop.json")), load_file("head.safetensors")
emb = load_file("static/embeddings.safetensors")["embeddings"]
tok = Tokenizer.from_file("static/tokenizer.json"); tok.no_truncation(); tok.no_padding()
def embed(text):
    ids = tok.encode(text, add_special_tokens=False).ids[:{max_seq_length}] or [0]
    v = emb[ids].mean(axis=0)
    return v / (np.linalg.norm(v) or 1.0)
X = np.stack([embed(t) for t in texts])
labels = [meta["id2label"][str(i)] for i in (X @ head["coef"].T + head["intercept"]).argmax(1)]
```
"""

STATIC_MULTI_NOTE = """
Multi-label: each label has its own head row and decision threshold (tuned on out-of-fold predictions):

```python
probs = 1 / (1 + np.exp(-(X @ head["coef"].T + head["intercept"])))
labels = [[meta["classes"][j] for j in np.flatnonzero(p >= head["thresholds"])] for p in probs]
```
"""

CUT_CODE = """import json
from tokenizers import Tokenizer
# How labelloop cut every text longer than the student's window, in training and in `labelloop predict`.
rule = json.load(open("labelloop.json"))["input"]
SEPARATOR, HEAD_FRACTION = rule["marker"], rule["head_fraction"]
cut_tok = Tokenizer.from_file(rule["tokenizer"]); cut_tok.no_truncation(); cut_tok.no_padding()

{functions}

texts = [cut_text(t, cut_tok, rule["max_tokens"], rule["truncation"])[0] for t in texts]

"""

_HOW = {
    "head": "keeping the first {max_tokens} tokens",
    "head-tail": ("keeping the first quarter and the last three quarters of {max_tokens} tokens, joined by "
                  "{marker!r}"),
}


def versions() -> dict[str, str]:
    """Library versions that wrote the folder."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("labelloop", "sentence-transformers", "transformers", "torch", "setfit", "scikit-learn"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def write_meta(folder: Path, kind: str, classes: list[str], **settings) -> dict:
    """labelloop.json, written from an explicit list of fields; returns them."""
    meta = {
        "format_version": FORMAT_VERSION,
        "student_type": kind,
        "classes": list(classes),
        "id2label": {str(i): c for i, c in enumerate(classes)},
        "label2id": {c: i for i, c in enumerate(classes)},
        **settings,
        "versions": versions(),
    }
    _write_json(folder / META_FILE, meta)
    return meta


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def record_input(folder: Path, cut: dict) -> None:
    """Record the student-input contract's cut in labelloop.json (`truncation`, `input`) and the README's code."""
    meta = read_meta(folder)
    meta["truncation"] = cut["truncation"]
    meta["input"] = dict(cut)
    _write_json(folder / META_FILE, meta)
    write_readme(folder, meta)


def write_readme(folder: Path, meta: dict) -> None:
    """The folder's README.md: how to load it without labelloop, cutting long texts as its labelloop.json says."""
    kind, multi = meta["student_type"], bool(meta.get("multi_label"))
    if kind == "transformer":
        template = TRANSFORMER_README_MULTI if multi else TRANSFORMER_README
    elif kind == "static":
        template = STATIC_README + (STATIC_MULTI_NOTE if multi else "")
    else:
        template = HEAD_README_MULTI if multi else HEAD_README
    cut = meta.get("input")
    text = template.format(
        kind=kind, classes=", ".join(meta["classes"]), max_seq_length=meta["max_seq_length"],
        encoder=meta.get("encoder_path") or "all-MiniLM-L6-v2",
        cut_note=_cut_note(meta), cut_code=_cut_code() if cut else "",
        tokenizers=", tokenizers" if cut and kind != "static" else "",
    )
    (folder / "README.md").write_text(text, encoding="utf-8")


def _cut_note(meta: dict) -> str:
    cut = meta.get("input")
    if not cut:
        return f"Texts longer than {meta['max_seq_length']} tokens are cut (head)."
    how = _HOW[cut["truncation"]].format(**cut)
    return (f"Texts longer than {cut['max_tokens']} tokens ({cut['max_length']} with the special tokens) are cut "
            f"{cut['truncation']}, {how}, as labelloop cut them in training; the code below does the same.")


def _cut_code() -> str:
    import inspect

    from labelloop.ingest.truncation import CUT_FUNCTIONS

    return CUT_CODE.format(functions="\n\n\n".join(inspect.getsource(f).rstrip() for f in CUT_FUNCTIONS))


def read_meta(folder: str | os.PathLike) -> dict:
    """labelloop.json of a saved student, or an error saying what the folder lacks."""
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise ModelNotAvailableError(
            f"{str(folder)!r} is not a saved labelloop student: it has no {META_FILE}; "
            "pass a folder written by student.save() (e.g. output_dir/classifiers/classifier_<N>)"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelNotAvailableError(f"cannot read {str(path)!r}: {exc}; save the student again") from exc
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise ModelNotAvailableError(
            f"{str(path)!r} has format_version {meta['format_version']}, newer than this labelloop "
            f"understands ({FORMAT_VERSION}); upgrade labelloop"
        )
    return meta


def save_head(folder: Path, coef: np.ndarray, intercept: np.ndarray, thresholds: np.ndarray | None = None) -> None:
    """head.safetensors with float32 `coef` (n_classes, dim) and `intercept` (n_classes,); multi-label
    heads also hold each label's decision `thresholds` (n_classes,)."""
    from safetensors.numpy import save_file

    arrays = {"coef": np.ascontiguousarray(coef, dtype=np.float32),
              "intercept": np.ascontiguousarray(intercept, dtype=np.float32)}
    if thresholds is not None:
        arrays["thresholds"] = np.ascontiguousarray(thresholds, dtype=np.float32)
    save_file(arrays, str(folder / HEAD_FILE))


def load_head(folder: Path, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The head's arrays, checked against the class count."""
    from safetensors.numpy import load_file

    path = folder / HEAD_FILE
    if not path.is_file():
        raise ModelNotAvailableError(f"{str(folder)!r} has no {HEAD_FILE}; save the student again")
    arrays = load_file(str(path))
    coef, intercept = arrays.get("coef"), arrays.get("intercept")
    if coef is None or intercept is None or coef.shape[0] != n_classes or intercept.shape != (n_classes,):
        raise ModelNotAvailableError(
            f"{str(path)!r} does not hold a head for {n_classes} classes "
            f"(coef {None if coef is None else coef.shape}, intercept {None if intercept is None else intercept.shape})"
        )
    return coef, intercept


def copy_model_folder(src: str, dst: Path) -> None:
    """Copy a model folder; large weight files are hard-linked when possible (same bytes, no space)."""

    def link_or_copy(s: str, d: str) -> str:
        if s.endswith(_WEIGHT_SUFFIXES):
            try:
                os.link(s, d)
                return d
            except OSError:
                pass
        return shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=link_or_copy, ignore=shutil.ignore_patterns(".git*", "__pycache__"))


def set_body_max_length(body: Path, max_seq_length: int) -> None:
    """Record the truncation length in the body's sentence_bert_config.json (a fresh file, never via a link)."""
    cfg_path = body / "sentence_bert_config.json"
    cfg = json.loads(cfg_path.read_text()) if cfg_path.is_file() else {}
    cfg["max_seq_length"] = int(max_seq_length)
    if cfg_path.exists():
        cfg_path.unlink()
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")


def prepare_folder(path: str | os.PathLike) -> Path:
    """The target folder, created; it must not already hold something else."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise LabelloopError(f"cannot save a student to {str(folder)!r}: it is a file; choose a folder path")
    if folder.is_dir() and any(folder.iterdir()):
        raise LabelloopError(
            f"cannot save a student to {str(folder)!r}: the folder is not empty; choose a new or empty folder"
        )
    folder.mkdir(parents=True, exist_ok=True)
    return folder
