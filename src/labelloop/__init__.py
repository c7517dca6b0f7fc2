"""labelloop: bootstrap a small, fast text classifier from raw documents and an LLM."""

__version__ = "0.1.0"
