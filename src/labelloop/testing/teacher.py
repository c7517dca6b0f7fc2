"""The simulated teacher behind the fake server: it knows gold labels and answers with a set accuracy.

    teacher = Teacher(gold={"text": "sports"}, accuracy=0.9)

It finds the document a request is about in its own corpus (labelloop.testing.reading) and takes
its classes from the request's JSON schema, else from its own `classes` (by default the classes its
gold labels name, sorted). It answers the right class with probability `accuracy`, deterministic
per quoted text and seed.

A gold value may be a list of classes (a label set; a plain class is a set of one). A request
asks for a label set when its schema's answer is an array, or, without a schema, when the
teacher is `multi_label` (by default: when any gold value is a list). Each class's membership is
then decided right with probability `accuracy`, independently per class. Requests for free text
(rules) get numbered rules that name every class.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from labelloop.testing import replies
from labelloop.testing.corpus import Corpus, Occurrence, words
from labelloop.testing.reading import Request, find_document

ANSWER_FORMATS = ("bare", "json", "reasoning", "final-index")  # final-index: Augmentoolkit's `Final label: 0`
# What a vulnerable teacher obeys, wherever it sits in the text that quotes the document.
_INJECTION = re.compile(r"(?im)^.*ignore all previous rules and answer\s+[\"'`]?([^\"'`\n.]+)")


def _norm(text: str) -> str:
    return " ".join(words(text))


def _pick(seed_key: str, classes: Sequence[str]) -> str:
    """A class chosen by hash: the teacher's answer about a text it does not know."""
    return classes[int(hashlib.sha256(seed_key.encode()).hexdigest(), 16) % len(classes)]


class Teacher:
    """Gold labels, an accuracy and a seed; answers label requests and writes rules."""

    def __init__(
        self,
        *,
        gold: Mapping[str, str | Sequence[str]] | None = None,
        accuracy: float = 1.0,
        seed: int = 0,
        classes: Iterable[str] | None = None,
        multi_label: bool | None = None,
        answer_format: str = "bare",
        vulnerable: bool = False,
    ):
        if answer_format not in ANSWER_FORMATS:
            raise ValueError(f"answer_format {answer_format!r}: use one of {ANSWER_FORMATS}")
        self.corpus = Corpus(gold)
        self.accuracy = accuracy
        self.seed = seed
        self.classes = list(classes) if classes else self.corpus.classes()
        self.multi_label = (any(not isinstance(v, str) for v in (gold or {}).values())
                            if multi_label is None else multi_label)
        self.answer_format = answer_format
        self.vulnerable = vulnerable
        self._lock = threading.Lock()
        self._found: dict[str, Occurrence | None] = {}
        self.reset()

    def reset(self) -> None:
        """Forget the counts: texts it did not know, and how often each text was sampled."""
        with self._lock:
            self.unknown_texts = 0
            self._sample_counter: Counter[str] = Counter()

    # ------------------------------------------------------------ what it knows

    def _find(self, text: str) -> Occurrence | None:
        norm = _norm(text)
        if norm not in self._found:
            self._found[norm] = self.corpus.find(norm)
        return self._found[norm]

    def true_label(self, text: str) -> str | list[str] | None:
        """Gold label (or label set, as given) of the known text a (chunked or cut) text comes from."""
        found = self._find(text)
        return None if found is None else self.corpus.labels[found.doc]

    def true_set(self, text: str) -> list[str] | None:
        """Gold label set of a text (a plain gold class is a set of one), or None if unknown."""
        truth = self.true_label(text)
        if truth is None:
            return None
        return [truth] if isinstance(truth, str) else list(truth)

    # ------------------------------------------------------------ its answers

    def answer_label(self, text: str, classes: Sequence[str], temperature: float = 0.0) -> tuple[str, bool]:
        """The label the teacher gives a text and whether it is the gold one."""
        found = self._find(text)
        return self._label(found, found.key if found else _norm(text), text, list(classes), temperature)

    def answer_set(self, text: str, classes: Sequence[str],
                   temperature: float = 0.0) -> tuple[list[str], dict[str, bool]]:
        """The label set the teacher gives a text (in class order) and, per class, whether that is right."""
        found = self._find(text)
        return self._set(found, found.key if found else _norm(text), text, list(classes), temperature)

    def _injected(self, text: str, classes: list[str]) -> str | None:
        """The class an injected line names, when this teacher is vulnerable and the text has one."""
        if not self.vulnerable:
            return None
        m = _INJECTION.search(text)
        if not m:
            return None
        named = _norm(m.group(1))
        by_norm = {_norm(c): c for c in classes}
        if named in by_norm:
            return by_norm[named]
        starts = [n for n in by_norm if named.startswith(n + " ")]
        return by_norm[max(starts, key=len)] if starts else None

    def _salt(self, key: str, temperature: float) -> str:
        """Each sampled (temperature > 0) request of a text draws anew; greedy ones repeat."""
        if temperature <= 0:
            return ""
        with self._lock:
            self._sample_counter[key] += 1
            return f":{self._sample_counter[key]}"

    def _unknown(self) -> None:
        with self._lock:
            self.unknown_texts += 1

    def _label(self, found: Occurrence | None, key: str, context: str, classes: list[str],
               temperature: float) -> tuple[str, bool]:
        injected = self._injected(context, classes)
        if injected:
            return injected, False
        truth = None if found is None else self.corpus.labels[found.doc]
        if isinstance(truth, list):  # a label set asked for one label: its first class that is offered
            truth = next((c for c in truth if c in classes), None)
        rng = random.Random(f"{self.seed}:{key}{self._salt(key, temperature)}")
        if truth is None or truth not in classes:
            self._unknown()
            return _pick(key, classes), False
        if rng.random() < self.accuracy or len(classes) < 2:
            return truth, True
        return rng.choice([c for c in classes if c != truth]), False

    def _set(self, found: Occurrence | None, key: str, context: str, classes: list[str],
             temperature: float) -> tuple[list[str], dict[str, bool]]:
        injected = self._injected(context, classes)
        if injected:
            return [injected], {c: False for c in classes}
        if found is None:
            self._unknown()
            return [_pick(key, classes)], {c: False for c in classes}
        truth = self.corpus.labels[found.doc]
        truth = [truth] if isinstance(truth, str) else truth
        salt = self._salt(key, temperature)
        right = {c: random.Random(f"{self.seed}:{key}{salt}:{c}").random() < self.accuracy for c in classes}
        return [c for c in classes if (c in truth) == right[c]], right

    def probs(self, label: str, correct: bool, classes: Sequence[str], key: str) -> dict[str, float]:
        """The teacher's class probabilities for an answer: sure when right, near 0.5 when wrong."""
        rng = random.Random(f"p:{self.seed}:{key}")
        p = rng.uniform(0.7, 0.99) if correct else rng.uniform(0.35, 0.65)
        others = [c for c in classes if c != label]
        weights = [rng.random() + 0.05 for _ in others]
        total = sum(weights) or 1.0
        out = {label: p}
        out.update({c: (1 - p) * w / total for c, w in zip(others, weights, strict=True)})
        return out

    def set_probs(self, chosen: list[str], right: dict[str, bool], classes: Sequence[str],
                  key: str) -> dict[str, float]:
        """The teacher's probability that each class applies: sure where it is right, near 0.5 where wrong."""
        out = {}
        for c in classes:
            rng = random.Random(f"p:{self.seed}:{key}:{c}")
            sure = rng.uniform(0.7, 0.99) if right[c] else rng.uniform(0.5, 0.65)
            out[c] = sure if c in chosen else 1.0 - sure
        return out

    def rules_text(self, classes: Sequence[str], multi_label: bool = False) -> str:
        """Numbered rules that name every class (per label when multi_label; else with a default)."""
        if multi_label:
            lines = [f"{i}. Label `{c}` applies when a part of the document is about {c}: its events, people, "
                     "organisations and vocabulary, whatever else the document is about."
                     for i, c in enumerate(classes, 1)]
            n = len(lines)
            lines.append(f"{n + 1}. A document gets every label that applies, and none of them when no rule applies.")
            lines.append(f"{n + 2}. Edge case: a passing mention is not enough; the part must say something about it.")
            return "\n".join(lines)
        lines = [f"{i}. Label a document `{c}` when its main subject is {c}: its events, people, organisations "
                 "and vocabulary." for i, c in enumerate(classes, 1)]
        n = len(lines)
        lines.append(f"{n + 1}. Default: when no rule clearly applies, use `{classes[0]}`.")
        lines.append(f"{n + 2}. Edge case: a document that touches several classes gets the one it spends most "
                     "words on.")
        return "\n".join(lines)

    # ------------------------------------------------------------ replies

    def reply(self, request: Request) -> tuple[str, dict | None]:
        """(content, logprobs or None) for a request; logprobs only where the request asks for them."""
        classes = request.schema_classes or self.classes
        found = find_document(self.corpus, request.texts, classes)
        asks_label = request.json_mode or request.wants_set is not None or found.together == 1
        if not asks_label or not classes:
            return (self.rules_text(classes, self.multi_label) if classes else "OK"), None
        key = found.occurrence.key if found.occurrence else _norm(found.text)
        wants_set = self.multi_label if request.wants_set is None else request.wants_set
        if wants_set:
            return self._reply_set(request, found.occurrence, key, found.text, classes)
        return self._reply_label(request, found.occurrence, key, found.text, classes)

    def _reply_label(self, request: Request, found: Occurrence | None, key: str, context: str,
                     classes: list[str]) -> tuple[str, dict | None]:
        label, correct = self._label(found, key, context, classes, request.temperature)
        if request.json_mode:
            prefix, suffix = f'{{"{request.json_field or "label"}": "', '"}'
        elif request.endpoint == "completions":
            prefix, suffix = " ", ""
        elif self.answer_format == "json":
            prefix, suffix = '{"label": "', '", "reason": "fits the rules"}'
        elif self.answer_format == "reasoning":
            prefix, suffix = replies.REASONING, ""
        elif self.answer_format == "final-index":
            prefix, suffix = ("Summary of input: a document.\n\nFinal reasoning: considering this evidence, the input "
                              f"can be classified with the label: {label}\nFinal label: "), ""
        else:
            prefix, suffix = "", ""
        by_index = self.answer_format == "final-index" and not request.json_mode
        answer = str(classes.index(label)) if by_index else label
        logprobs = None
        if request.top_n is not None:
            probs = self.probs(label, correct, classes, key)
            if by_index:  # the answer names classes by index: the alternatives are indices too
                probs = {str(classes.index(c)): p for c, p in probs.items()}
            logprobs = replies.label_logprobs(request.endpoint, prefix, answer, suffix, probs, request.top_n)
        return prefix + answer + suffix, logprobs

    def _reply_set(self, request: Request, found: Occurrence | None, key: str, context: str,
                   classes: list[str]) -> tuple[str, dict | None]:
        chosen, right = self._set(found, key, context, classes, request.temperature)
        as_json = request.json_mode or (self.answer_format == "json" and request.endpoint == "chat")
        if request.endpoint == "completions":
            head = " "
        elif self.answer_format == "reasoning":
            head = replies.REASONING_SET + replies.LABELS_LINE + " "
        else:
            head = replies.LABELS_LINE + " "
        segments = replies.set_segments(chosen, json_field=(request.json_field or "labels") if as_json else None,
                                        reason=not request.json_mode, head=head)
        content = "".join(text for text, _kind, _cls in segments)
        logprobs = None
        if request.top_n is not None:
            probs = self.set_probs(chosen, right, classes, key)
            entries = replies.set_entries(segments, chosen, probs, classes, request.top_n)
            logprobs = replies.format_logprobs(request.endpoint, entries)
        return content, logprobs
