"""`labelloop export --onnx`: the embedding-head student as one model.onnx (body + mean pooling + normalize + head)."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from pathlib import Path

from labelloop.classify import folder as fmt
from labelloop.serving.onnx_runtime import (
    EMBEDDING_OUTPUT,
    INPUT_NAMES,
    LOGITS_OUTPUT,
    ONNX_FILE,
    ONNX_META,
    file_digest,
)
from labelloop.errors import LabelloopError, ModelNotAvailableError

OPSET = 17
POOLING_MODES = ("mean", "cls")


def body_pooling(body: Path) -> str:
    """The body's pooling (sentence-transformers 1_Pooling/config.json): mean or cls."""
    modules_path = body / "modules.json"
    modules = json.loads(modules_path.read_text()) if modules_path.is_file() else []
    pooling = next((m for m in modules if m.get("type", "").endswith("Pooling")), None)
    if pooling is None:
        return "mean"  # sentence-transformers' default for a plain transformers folder
    cfg = json.loads((body / pooling["path"] / "config.json").read_text())
    if cfg.get("pooling_mode_mean_tokens"):
        return "mean"
    if cfg.get("pooling_mode_cls_token"):
        return "cls"
    modes = sorted(k for k, v in cfg.items() if k.startswith("pooling_mode") and v)
    raise LabelloopError(
        f"{str(body)!r} pools with {modes}; ONNX export supports {list(POOLING_MODES)} pooling. "
        "Predict with the torch runtime (the default without model.onnx)"
    )


def _wrapper(body: Path, coef, intercept, pooling: str):
    """A torch module: token ids -> (normalized embedding, head logits)."""
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(body), attn_implementation="eager", local_files_only=True).eval()

    class StudentGraph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = model
            self.coef = torch.nn.Parameter(torch.from_numpy(coef.copy()), requires_grad=False)
            self.intercept = torch.nn.Parameter(torch.from_numpy(intercept.copy()), requires_grad=False)

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.body(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
            if pooling == "cls":
                pooled = hidden[:, 0]
            else:
                weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            emb = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
            return emb, emb @ self.coef.T + self.intercept

    return StudentGraph().eval()


def export_onnx(model_dir: str | os.PathLike, *, int8: bool = False) -> Path:
    """Write model.onnx (and onnx.json) into an embedding-head classifier folder; int8 quantizes the weights."""
    folder = Path(model_dir)
    meta = fmt.read_meta(folder)
    if meta.get("student_type") != "embedding-head":
        raise LabelloopError(
            f"{str(folder)!r} holds a {meta.get('student_type')!r} student; `export --onnx` supports "
            "embedding-head students (student.type: embedding-head, the default)"
        )
    _require("onnx", "`labelloop export --onnx`")
    if int8:
        _require("onnxruntime", "`labelloop export --onnx --int8`")
    body = folder / meta.get("body", fmt.BODY_DIR)
    if not (body / "tokenizer.json").is_file():
        raise ModelNotAvailableError(f"{str(body)!r} has no tokenizer.json; the ONNX runtime needs one")
    pooling = body_pooling(body)
    coef, intercept = fmt.load_head(folder, len(meta["classes"]))
    graph = _wrapper(body, coef, intercept, pooling)
    target = folder / ONNX_FILE
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        plain = Path(tmp) / "plain.onnx"
        _trace(graph, plain)
        if int8:
            _quantize(plain, Path(tmp) / "int8.onnx")
            plain = Path(tmp) / "int8.onnx"
        os.replace(plain, target)
    info = {
        "file": ONNX_FILE, "inputs": list(INPUT_NAMES), "outputs": [EMBEDDING_OUTPUT, LOGITS_OUTPUT],
        "pooling": pooling, "normalize": True, "max_seq_length": int(meta.get("max_seq_length") or 256),
        "opset": OPSET, "quantized": "int8-dynamic" if int8 else False,
        "head_sha256": file_digest(folder / fmt.HEAD_FILE), "versions": _versions(),
        # multi-label: each logit through a sigmoid, then each label's threshold (labelloop.json)
        "activation": "sigmoid" if meta.get("multi_label") else "softmax",
    }
    (folder / ONNX_META).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return target


def _trace(graph, path: Path) -> None:
    import torch

    # Two rows of different lengths, so padding is masked in the traced graph, not folded away.
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.long)
    mask = (ids != 0).long()
    types = torch.zeros_like(ids)
    axes = {name: {0: "batch", 1: "tokens"} for name in INPUT_NAMES}
    axes.update({EMBEDDING_OUTPUT: {0: "batch"}, LOGITS_OUTPUT: {0: "batch"}})
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (ids, mask, types), str(path), input_names=list(INPUT_NAMES),
                          output_names=[EMBEDDING_OUTPUT, LOGITS_OUTPUT], dynamic_axes=axes,
                          opset_version=OPSET, dynamo=False)


def _require(module: str, what: str) -> None:
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        raise LabelloopError(
            f"{what} needs the {module!r} package, which is not installed; install it with "
            "pip install 'labelloop[onnx]' (onnx + onnxruntime)"
        ) from None


def _quantize(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its "consider pre-processing" notice is not for our users
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("labelloop", "torch", "onnx", "onnxruntime"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out
