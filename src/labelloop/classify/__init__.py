"""Student models behind one interface: fit / predict / predict_proba / save / load."""

from __future__ import annotations

from labelloop.classify.base import BALANCING_MODES, BaseStudent, Student
from labelloop.classify.factory import STUDENT_TYPES, load_student, make_student

__all__ = ["BALANCING_MODES", "BaseStudent", "STUDENT_TYPES", "Student", "load_student", "make_student"]
