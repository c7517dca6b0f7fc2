"""A multi-label project file for the review tests, filled the way the loop fills one.

Texts are real BBC News articles: single articles (one label), two articles of different
topics joined into one text (both labels), and entertainment articles (none of the classes).
The LLM's label sets are the truth except for a few deliberate mistakes (one label flipped);
the student agrees with the truth, so it disagrees with the LLM exactly on those.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path

from labelloop.classify.student_input import CONTRACT_META, StudentInput
from labelloop.labels import encode_set
from labelloop.loop.label_errors import METRICS_KEY, Flags
from labelloop.store import NewChunk, Store
from tests.helpers.review_project import XSS_TEXT, bbc_dir

ML_CLASSES = ["business", "politics", "sports", "tech"]
THRESHOLDS = {"business": 0.45, "politics": 0.5, "sports": 0.35, "tech": 0.6}
PAIRS = [("business", "tech"), ("politics", "business"), ("sports", "tech"), ("politics", "sports"),
         ("business", "sports"), ("politics", "tech")]
ML_RULES = (
    "Give each news text every label that applies; several may apply, or none of them.\n"
    "- business: companies, markets, the economy, trade, jobs, company results.\n"
    "- politics: governments, elections, parties, ministers, laws.\n"
    "- sports: matches, players, teams, tournaments, transfers.\n"
    "- tech: computers, phones, the internet, games, software, gadgets.\n"
    "Film, music and TV news gets none of them unless it is also about one of the above."
)
NEAR = 0.04  # how close to its threshold an "uncertain" student probability is put


@dataclass
class MultiProject:
    """A filled multi-label project file and what the fixture knows to be true about it."""

    store: Store
    path: Path
    truth: dict[int, list[str]] = field(default_factory=dict)
    llm: dict[int, list[str] | None] = field(default_factory=dict)  # None: the LLM reply was unreadable
    student: dict[int, list[str]] = field(default_factory=dict)
    student_probs: dict[int, dict[str, float]] = field(default_factory=dict)
    flipped: dict[int, str] = field(default_factory=dict)  # chunk id -> the label the LLM got wrong
    unlabeled: set[int] = field(default_factory=set)
    uncertain: dict[int, str] = field(default_factory=dict)  # chunk id -> the label near its threshold
    xss_id: int = -1


def _article(path: Path, paragraphs: int) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        text = raw.decode("latin-1").strip()
    kept = [p.strip() for p in text.split("\n") if p.strip()]
    return "\n".join(kept[:paragraphs])


def _texts(per_class: int) -> list[tuple[str, str, list[str]]]:
    """(text, source, true label set): singles, joined pairs, and texts with none of the classes."""
    root = bbc_dir()
    files = {c: sorted((root / c).glob("*.txt")) for c in [*ML_CLASSES, "entertainment"]}
    items = []
    for c in ML_CLASSES:
        for f in files[c][:per_class]:
            items.append((_article(f, 3), f"bbc/{c}/{f.name}", [c]))
    for k, (a, b) in enumerate(PAIRS):
        fa, fb = files[a][per_class + k], files[b][per_class + k + 1]
        items.append((_article(fa, 2) + "\n\n" + _article(fb, 2), f"bbc/{a}+{b}/{fa.name}+{fb.name}",
                      in_order([a, b])))
    for f in files["entertainment"][:3]:
        items.append((_article(f, 2), f"bbc/entertainment/{f.name}", []))
    items.append((XSS_TEXT, "inbox/<img src=x onerror=alert(3)>.txt", ["business"]))
    return items


def _llm_probs(rng: random.Random, chosen: list[str], wrong: str | None) -> dict[str, float]:
    """The LLM's probability that each class applies: sure of its set, unsure of a mistaken label."""
    probs = {}
    for c in ML_CLASSES:
        if c == wrong:
            probs[c] = round(rng.uniform(0.55, 0.66) if c in chosen else rng.uniform(0.34, 0.45), 3)
        else:
            probs[c] = round(rng.uniform(0.82, 0.98) if c in chosen else rng.uniform(0.02, 0.15), 3)
    return probs


def _student_probs(rng: random.Random, truth: list[str], near: str | None,
                   thresholds: dict[str, float]) -> dict[str, float]:
    """The student's probability per class, on the truth's side of each threshold (one near it if `near`)."""
    probs = {}
    for c in ML_CLASSES:
        t, sign = thresholds[c], 1 if c in truth else -1
        gap = NEAR if c == near else rng.uniform(0.15, 0.3)
        probs[c] = round(min(0.99, max(0.01, t + sign * gap)), 3)
    return probs


def _least_sure(probs: dict[str, float]) -> float:
    """A row's confidence as the loop stores it: its least sure decision."""
    return round(min(max(p, 1 - p) for p in probs.values()), 3)


def in_order(labels) -> list[str]:
    """A label set as the store holds it: in class order."""
    return [c for c in ML_CLASSES if c in set(labels)]


def _flip(rng: random.Random, truth: list[str]) -> tuple[list[str], str]:
    wrong = rng.choice(ML_CLASSES)
    return in_order(set(truth) ^ {wrong}), wrong


def make_multilabel_project(tmp_path: Path, per_class: int = 4, seed: int = 11,
                            thresholds: dict[str, float] | None = THRESHOLDS) -> MultiProject:
    """Fill a Store as a multi-label run does: splits, LLM label sets, student rows, thresholds, rules.

    With thresholds=None the round records none (the app then shows no threshold).
    """
    rng = random.Random(seed)
    path = tmp_path / "out" / "labelloop.db"
    store = Store(path)
    items = _texts(per_class)
    rng.shuffle(items)
    for text, source, _labels in items:
        store.add_document(source, hashlib.sha256(text.encode()).hexdigest(), len(text),
                           [NewChunk(text=text, source=source, position=0)])
    by_text = {c.text: c.id for c in store.chunks()}
    project = MultiProject(store, path, truth={by_text[t]: labels for t, _s, labels in items})
    project.xss_id = by_text[XSS_TEXT]
    ids = sorted(project.truth)
    test_ids = set(ids[::4])
    store.assign_split(sorted(test_ids), "test")
    store.assign_split([i for i in ids if i not in test_ids], "train")
    _choose_cases(project, rng, [i for i in ids if i != project.xss_id])
    store.set_meta("classes", ML_CLASSES)
    store.set_meta("multi_label", True)
    contract = StudentInput(encoder=None, max_length=50, truncation="head", chunk_size=256,
                            classes=tuple(ML_CLASSES), multi_label=True)
    store.set_meta(CONTRACT_META, contract.to_dict())
    store.add_rules(ML_RULES, author="llm", model="large-test-model")
    store.set_labels([_llm_row(project, rng, cid, "llm-large" if cid in test_ids else "llm-small") for cid in ids])
    student_thresholds = thresholds or THRESHOLDS
    store.set_labels([_student_row(project, rng, cid, student_thresholds) for cid in ids])
    _record_round(project, ids, test_ids, thresholds)
    return project


def _choose_cases(project: MultiProject, rng: random.Random, candidates: list[int]) -> None:
    """Pick the chunks the LLM gets wrong, leaves unlabeled, and where the student is unsure."""
    picked = rng.sample(candidates, 9)
    for cid in picked[:4]:
        project.flipped[cid] = ""
    project.unlabeled = set(picked[4:6])
    for cid in picked[6:]:
        project.uncertain[cid] = rng.choice(ML_CLASSES)


def _llm_row(project: MultiProject, rng: random.Random, cid: int, source: str) -> dict:
    truth = project.truth[cid]
    if cid in project.unlabeled:
        project.llm[cid] = None
        return dict(chunk_id=cid, source=source, label=None, status="unlabeled", confidence=None,
                    raw="Maybe money, maybe football?", reason="reply matched no label set", rules_version=1)
    wrong = None
    chosen = truth
    if cid in project.flipped:
        chosen, wrong = _flip(rng, truth)
        project.flipped[cid] = wrong
    project.llm[cid] = chosen
    probs = _llm_probs(rng, chosen, wrong)
    return dict(chunk_id=cid, source=source, label=encode_set(chosen, ML_CLASSES), probs=probs,
                confidence=_least_sure(probs), rules_version=1, raw=", ".join(chosen) or "none",
                iteration=0)


def _student_row(project: MultiProject, rng: random.Random, cid: int, thresholds: dict[str, float]) -> dict:
    truth = project.truth[cid]
    probs = _student_probs(rng, truth, project.uncertain.get(cid), thresholds)
    chosen = [c for c in ML_CLASSES if probs[c] >= thresholds[c]]
    project.student[cid], project.student_probs[cid] = chosen, probs
    return dict(chunk_id=cid, source="student", label=encode_set(chosen, ML_CLASSES), probs=probs,
                confidence=_least_sure(probs), iteration=1)


def _record_round(project: MultiProject, ids: list[int], test_ids: set[int],
                  thresholds: dict[str, float] | None) -> None:
    """Iteration 1 as the loop records it: the thresholds and the label-error ranking (the flipped chunks)."""
    flipped = sorted(project.flipped)
    flags = Flags(flagged=[c for c in flipped if c not in test_ids], scores=[0.1] * len(flipped),
                  checked=len(ids), test_flagged=[c for c in flipped if c in test_ids],
                  test_scores=[0.2] * len(flipped))
    flags.scores = flags.scores[:len(flags.flagged)]
    flags.test_scores = flags.test_scores[:len(flags.test_flagged)]
    metrics = {METRICS_KEY: flags.to_dict()}
    if thresholds is not None:
        metrics["multi_label"] = {"thresholds": dict(thresholds)}
    project.store.start_iteration(1, train_size=len(ids) - len(test_ids), test_size=len(test_ids))
    project.store.finish_iteration(1, metrics=metrics)
