"""What runs a trained student, without any LLM: local predict, Ray, HTTP serve, ONNX export and runtime."""

from typing import Literal, get_args

Runtime = Literal["auto", "torch", "onnx"]  # auto: onnxruntime when the folder has model.onnx
RUNTIMES = get_args(Runtime)
PartFormat = Literal["jsonl", "parquet"]  # --engine ray writes a folder of part files
PART_FORMATS = get_args(PartFormat)
