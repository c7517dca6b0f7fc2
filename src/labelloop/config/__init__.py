"""config.yaml: strict pydantic models, Augmentoolkit's keys accepted unchanged.

Augmentoolkit's classifier config (`pipeline`, `api`, `classification`, `path`, `system`,
`training`, `meta_datagen`) loads as is; labelloop's own optional sections refine it.
`schema` holds the models, `augmentoolkit` maps Augmentoolkit's keys (`resolve_llm`), and
`loading` reads a file and reports every problem at once.
"""

from labelloop.config.augmentoolkit import PLACEHOLDER, resolve_llm
from labelloop.config.loading import load_config, parse_config
from labelloop.config.schema import (
    ApiSection,
    BalancingMode,
    BalancingSection,
    ClassificationSection,
    Config,
    IngestSection,
    LLMMode,
    LLMSection,
    MetaDatagenSection,
    MultiMetric,
    PathSection,
    ReviewSection,
    SamplingSection,
    SamplingStrategy,
    StoppingSection,
    StudentChoice,
    StudentSection,
    StudentType,
    SystemSection,
    TrainingSection,
    TruncationType,
)

__all__ = [
    "PLACEHOLDER", "ApiSection", "BalancingMode", "BalancingSection", "ClassificationSection", "Config",
    "IngestSection", "LLMMode", "LLMSection", "MetaDatagenSection", "MultiMetric", "PathSection", "ReviewSection",
    "SamplingSection", "SamplingStrategy", "StoppingSection", "StudentChoice", "StudentSection", "StudentType",
    "SystemSection", "TrainingSection", "TruncationType", "load_config", "parse_config", "resolve_llm",
]
