"""The settings of config.yaml as strict pydantic models: every key, its type, bounds and default.

The sections Augmentoolkit's classifier config has (`api`, `classification`, `path`,
`system`, `training`, `meta_datagen`) take its value shapes too: a key left empty keeps its
default, and `classes` may be written as a string. labelloop's own optional sections
(`small_model`, `large_model`, `student`, `balancing`, `sampling`, `stopping`, `review`,
`ingest`) refine them.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

LLMMode = Literal["api", "local", "embedded"]
# The one list of each choice; the packages read them with typing.get_args.
StudentType = Literal["embedding-head", "setfit", "transformer", "static"]
StudentChoice = Literal["embedding-head", "setfit", "transformer", "static", "auto"]
BalancingMode = Literal["auto", "class-weight", "oversample", "none"]
SamplingStrategy = Literal["sequential", "random", "uncertainty", "diverse-uncertainty", "balanced"]
TruncationType = Literal["head", "head-tail"]


class Strict(BaseModel):
    """A section that rejects unknown keys and checks values on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AugmentoolkitSection(Strict):
    """A section Augmentoolkit's config has: a key left empty (YAML null) keeps its default.

    Augmentoolkit's own file ends with `meta_datagen_extras:` and no value; in Augmentoolkit
    an empty key means "nothing" or "the default", and so it does here.
    """

    # The keys Augmentoolkit's own file has (labelloop's additions keep null as null: "off").
    augmentoolkit_keys: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _empty_means_default(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {k: _default_if_empty(cls, k, v) if k in cls.augmentoolkit_keys else v for k, v in value.items()}


def _default_if_empty(model: type[BaseModel], key: str, value: Any) -> Any:
    """A YAML null for a key with a default becomes that default; required keys stay null (and are reported)."""
    field = model.model_fields.get(key)
    if value is not None or field is None or field.is_required():
        return value
    return field.get_default(call_default_factory=True)


class ApiSection(AugmentoolkitSection):
    """Augmentoolkit's `api` section: two OpenAI-compatible endpoints."""
    augmentoolkit_keys = frozenset(['large_model', 'large_api_key', 'large_base_url', 'large_mode', 'small_model', 'small_api_key', 'small_base_url', 'small_mode'])

    large_model: str | None = Field(None, description="Model name on the large endpoint.")
    large_api_key: str | None = Field(None, description="API key for the large endpoint.")
    large_base_url: str | None = Field(None, description="Base URL of the large endpoint.")
    large_mode: str | None = Field(None, description="'api' (HTTP) or 'local'/'embedded' (llama.cpp).")
    small_model: str | None = None
    small_api_key: str | None = None
    small_base_url: str | None = None
    small_mode: str | None = None


MultiMetric = Literal["micro_f1", "macro_f1", "subset_accuracy", "hamming_loss"]


class ClassificationSection(AugmentoolkitSection):
    augmentoolkit_keys = frozenset(['classes', 'desc', 'predict_on_whole_set_at_the_end'])
    classes: list[str] = Field(..., description="Class names, at least two, all different.")
    desc: str = Field(..., description="Plain-language description of the task and classes.")
    predict_on_whole_set_at_the_end: bool = Field(
        False, description="Run the final student on every chunk the LLM did not label."
    )
    # labelloop's own keys (Augmentoolkit has no multi-label mode)
    multi_label: bool = Field(
        False, description="Each chunk gets a set of labels (several, or none of them) instead of exactly one class."
    )
    multi_label_metric: MultiMetric = Field(
        "micro_f1", description="Multi-label: the metric system.required_accuracy is compared with "
        "(micro_f1, macro_f1, subset_accuracy, or hamming_loss as 1 - loss).",
    )

    @field_validator("classes", mode="before")
    @classmethod
    def _parse_class_list(cls, value: Any) -> Any:
        # Augmentoolkit also accepts the list written as a string: "['a', 'b']".
        if isinstance(value, str):
            try:
                parsed = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                parsed = [part.strip() for part in value.split(",") if part.strip()]
            return parsed
        return value

    @field_validator("classes")
    @classmethod
    def _check_classes(cls, value: list[str]) -> list[str]:
        cleaned = [c.strip() for c in value]
        if any(not c for c in cleaned):
            raise ValueError("class names must not be empty; remove the empty entry")
        if len(cleaned) < 2:
            raise ValueError("need at least 2 classes; add another class name to the list")
        seen: set[str] = set()
        dups = [c for c in cleaned if c.lower() in seen or seen.add(c.lower())]
        if dups:
            raise ValueError(
                f"duplicate classes {sorted(set(dups))} (case-insensitive); give each class once"
            )
        return cleaned


class PathSection(AugmentoolkitSection):
    augmentoolkit_keys = frozenset(['default_prompts', 'input_dir', 'output_dir', 'prompts'])
    input_dir: Path = Field(..., description="Folder of documents to ingest (walked recursively).")
    output_dir: Path = Field(..., description="Where the project file and all outputs go.")
    prompts: Path | None = Field(None, description="Folder of prompt overrides (optional).")
    default_prompts: Path | None = Field(None, description="Fallback prompt folder (optional).")


class SystemSection(AugmentoolkitSection):
    augmentoolkit_keys = frozenset(['chunk_size', 'completion_mode', 'concurrency_limit', 'required_accuracy', 'use_stop'])
    chunk_size: int = Field(256, gt=0, description="Max tokens per chunk (student tokenizer).")
    completion_mode: bool = Field(False, description="Use /completions instead of /chat/completions.")
    concurrency_limit: int = Field(8, gt=0, description="Max LLM requests in flight.")
    required_accuracy: float = Field(0.9, ge=0.0, le=1.0, description="Stop when reached.")
    use_stop: bool = Field(True, description="Send stop sequences to the LLM.")
    timeout_s: float = Field(60.0, gt=0, description="Seconds to wait for one LLM answer (a model's own timeout_s wins).")
    probe_timeout_s: float | None = Field(
        900.0, gt=0, description="The first request of each kind waits up to this long (slow local servers); "
        "later ones wait 4x the slowest answer seen, at least timeout_s. null: no probe.",
    )


class TrainingSection(AugmentoolkitSection):
    augmentoolkit_keys = frozenset(['max_iters', 'model_path', 'test_set_size', 'train_set_increment', 'train_set_size', 'truncation_type'])
    max_iters: int = Field(5, gt=0, description="Max train/evaluate rounds.")
    model_path: str | None = Field(
        None, description="Base model of the student (student.encoder wins when set): a local folder, a "
        "packaged name or a model-hub id. Augmentoolkit fine-tunes it; labelloop's default student embeds "
        "with it (set student.type: transformer to fine-tune it).",
    )
    test_set_size: int = Field(100, gt=0, description="Chunks the large LLM labels as the test set.")
    train_set_increment: int = Field(100, gt=0, description="Chunks added per round.")
    train_set_size: int = Field(200, gt=0, description="Chunks in the first training set.")
    truncation_type: TruncationType = Field(
        "head-tail", description="How the student's input is cut to its max length."
    )


class MetaDatagenSection(AugmentoolkitSection):
    augmentoolkit_keys = frozenset(['do_meta_datagen', 'meta_datagen_keys', 'meta_datagen_extras'])
    do_meta_datagen: bool = False
    meta_datagen_keys: list[str] = Field(default_factory=list)
    meta_datagen_extras: list[str] = Field(default_factory=list)


class LLMSection(Strict):
    """labelloop's own LLM section (`small_model` / `large_model`)."""

    mode: LLMMode = Field("embedded", description="'api' for HTTP, 'embedded'/'local' for llama.cpp.")
    model: str | None = Field(
        None, description="Model name (api), or a packaged model name or GGUF path (embedded; default: packaged)."
    )
    base_url: str | None = Field(None, description="OpenAI-compatible base URL, e.g. http://host:8000/v1")
    api_key: str | None = Field(None, description="API key; prefer api_key_env.")
    api_key_env: str | None = Field(None, description="Name of the environment variable holding the key.")
    timeout_s: float | None = Field(None, gt=0, description="Seconds to wait for one answer; default system.timeout_s.")
    max_retries: int = Field(6, ge=0)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(512, gt=0)
    structured_output: Literal["auto", "json_schema", "json_object+schema", "json_object", "none"] = Field(
        "auto", description="auto: the first request shape the server takes (json_schema, json_object+schema, "
        "json_object, text); or one of them; none: plain text.",
    )
    rules_max_tokens: int = Field(1024, gt=0, description="Most tokens the rules may take (the large model).")
    samples: int = Field(1, ge=1, description="k samples for agreement confidence when no logprobs.")
    price_per_1k_input: float | None = Field(None, ge=0)
    price_per_1k_output: float | None = Field(None, ge=0)
    n_ctx: int = Field(4096, gt=0, description="Context window of the embedded model.")
    rules_model: str | None = Field(
        None, description="Embedded mode: another GGUF (or packaged name) that writes the rules; default: `model`."
    )
    calibrate: bool = Field(
        True, description="Contextual calibration of embedded label scores (Zhao et al. 2021); measured to help or "
        "tie for every packaged model (bench/bench_teacher.py).",
    )
    doc_tokens: int | None = Field(
        256, gt=0, description="Embedded: the document is cut to this many model tokens (about what the student sees)."
    )
    doc_chars: int = Field(
        6000, gt=0, description="The document and each few-shot example are cut to this many characters before the "
        "prompt is built (api and embedded; embedded then also cuts to doc_tokens).",
    )


class StudentSection(Strict):
    type: StudentChoice = Field(
        "embedding-head", description="embedding-head, setfit, transformer, static, or auto (the student that best "
        "agrees with the teacher in cross-validation, within budget_s).",
    )
    encoder: str | None = Field(
        None, description="Base model: a folder, a packaged name (all-MiniLM-L6-v2, all-mpnet-base-v2) or a hub id; "
        "default: the packaged all-MiniLM-L6-v2.",
    )
    max_seq_length: int | None = Field(None, gt=0)
    batch_size: int = Field(32, gt=0)
    epochs: int | None = Field(None, gt=0, description="Epochs; default: setfit 1, transformer 5.")
    setfit_iterations: int = Field(20, gt=0, description="setfit contrastive pairs per example.")
    learning_rate: float | None = Field(None, gt=0, description="Default: setfit 2e-5, transformer 1e-4.")
    seed: int = 0
    prune_label_errors: bool = Field(
        True, description="Leave out LLM labels that confident learning flags as likely wrong when training."
    )
    cv_folds: int = Field(5, ge=2, description="Folds of the student's own cross-validation (label errors, auto).")
    budget_s: float = Field(
        900.0, gt=0, description="student.type auto: seconds per round for trying students (cross-validation included).",
    )
    soft_labels: bool = Field(
        False, description="Train on the teacher's class probabilities (where it gave them), not only its label.",
    )


class BalancingSection(Strict):
    mode: BalancingMode = Field(
        "auto", description=("How classes are weighted. auto: the embedding-head and static students choose "
                             "class-weight or none (and the head's C) by cross-validated agreement with the "
                             "training labels each round; the others use class-weight."),
    )


class SamplingSection(Strict):
    strategy: SamplingStrategy = Field(
        "random", description="Which unlabeled chunks the LLM labels next (see the starter config)."
    )
    seed: int = 0
    pool_limit: int = Field(
        5000, gt=0, description="Student-guided strategies score a seeded sample of this many unlabeled chunks."
    )


class StoppingSection(Strict):
    """Stopping rules besides system.required_accuracy and training.max_iters."""

    lower_bound: bool = Field(
        False, description="Check required_accuracy against the accuracy's 95% lower bound, not the estimate."
    )
    kappa: float | None = Field(
        0.99, ge=0.0, le=1.0, description="Stop when successive students agree this well (Cohen's kappa); null: off."
    )
    kappa_window: int = Field(2, gt=0, description="Successive pairs of rounds that must all agree.")
    stop_set_size: int = Field(1000, gt=0, description="Chunks the kappa rule compares predictions on.")
    min_gain: float | None = Field(
        None, ge=0.0, le=1.0, description="Stop when one more round projects less accuracy gain; null: off."
    )


class ReviewSection(Strict):
    gold_min: int = Field(30, gt=0, description="Human test labels needed to report gold accuracy.")
    few_shot_per_class: int = Field(2, ge=0, description="Reviewed examples per class in prompts.")
    relabel_suspects: bool = Field(
        False, description="Ask the large model to re-label the training labels flagged as likely errors."
    )
    confirm_rare: bool = Field(
        True, description=("Single-label: ask the large model about every small-model label of a rare class (one "
                           "holding less than half an even share of the training labels); its label counts."),
    )


class IngestSection(Strict):
    text_column: str = Field("text", description="Column/key holding the text in CSV and JSONL.")


class Config(Strict):
    pipeline: str | None = Field(None, description="Augmentoolkit pipeline name (accepted, not used).")
    api: ApiSection | None = None
    classification: ClassificationSection
    path: PathSection
    system: SystemSection = Field(default_factory=SystemSection)
    training: TrainingSection = Field(default_factory=TrainingSection)
    meta_datagen: MetaDatagenSection = Field(default_factory=MetaDatagenSection)
    small_model: LLMSection | None = None
    large_model: LLMSection | None = None
    student: StudentSection = Field(default_factory=StudentSection)
    balancing: BalancingSection = Field(default_factory=BalancingSection)
    sampling: SamplingSection = Field(default_factory=SamplingSection)
    stopping: StoppingSection = Field(default_factory=StoppingSection)
    review: ReviewSection = Field(default_factory=ReviewSection)
    ingest: IngestSection = Field(default_factory=IngestSection)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, value: Any) -> Any:
        # `system:` with nothing under it is an empty section: every key keeps its default.
        if isinstance(value, dict):
            return {k: _default_if_empty(cls, k, v) for k, v in value.items()}
        return value

    @property
    def classes(self) -> list[str]:
        return self.classification.classes

    @property
    def multi_label(self) -> bool:
        """True when each chunk gets a set of labels (classification.multi_label)."""
        return self.classification.multi_label

    @property
    def student_model(self) -> str | None:
        """The student's base model as configured: student.encoder, else training.model_path (None: packaged)."""
        return self.student.encoder or self.training.model_path

    @property
    def student_model_setting(self) -> str:
        """Which key named the student's base model (for messages)."""
        if self.student.encoder:
            return "student.encoder"
        return "training.model_path" if self.training.model_path else "student.encoder"

    @property
    def output_dir(self) -> Path:
        return self.path.output_dir

    @property
    def db_path(self) -> Path:
        return self.path.output_dir / "labelloop.db"
