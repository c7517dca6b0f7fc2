"""One round: train a fresh student on the current labels, score it, save it, record it."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labelloop.config import Config
from labelloop.evaluate import Metrics, evaluate
from labelloop.loop import outputs
from labelloop.loop.crossval import out_of_sample_probs
from labelloop.store import Chunk, Store


@dataclass
class RoundData:
    """The chunks and labels one round trains and tests on."""

    train: list[Chunk]
    train_labels: list[str]
    train_sources: list[str]
    train_conf: list[float | None]
    test: list[Chunk]
    test_labels: list[str]  # the large LLM's labels: the teacher's truth
    gold: list[Chunk]
    gold_labels: list[str]  # human labels on test chunks


def round_data(store: Store, n: int) -> RoundData:
    """Training data of round n: train chunks assigned up to n, final labels (humans override)."""
    train = [c for c in store.chunks("train") if (c.split_iteration or 0) <= n]
    final = store.final_labels([c.id for c in train]) if train else {}
    train = [c for c in train if c.id in final]
    test = store.chunks("test")
    large = store.labels_by_chunk("llm-large")
    human = store.labels_by_chunk("human")
    test_ref = [c for c in test if c.id in large and large[c.id].status == "ok" and large[c.id].label]
    gold = [c for c in test if c.id in human and human[c.id].status == "ok" and human[c.id].label]
    return RoundData(
        train=train,
        train_labels=[final[c.id].label for c in train],
        train_sources=[final[c.id].source for c in train],
        train_conf=[final[c.id].confidence for c in train],
        test=test_ref,
        test_labels=[large[c.id].label for c in test_ref],
        gold=gold,
        gold_labels=[human[c.id].label for c in gold],
    )


def train_round(config: Config, store: Store, n: int, student_input) -> dict:
    """Train, evaluate and save round n; return the recorded iteration values."""
    t0 = time.perf_counter()
    data = round_data(store, n)
    classes = config.classes
    store.start_iteration(n, train_size=len(data.train), test_size=len(data.test))
    student, oos, pruned = fit_student(config, store, data, student_input([c.text for c in data.train]))
    fit_s = time.perf_counter() - t0

    test_texts = student_input([c.text for c in data.test])
    test_probs = student.predict_proba(test_texts) if data.test else np.zeros((0, len(classes)))
    test_pred = [student.classes_[i] for i in np.argmax(test_probs, axis=1)] if data.test else []
    metrics = evaluate(data.test_labels, test_pred, classes)
    gold_metrics: Metrics | None = None
    if len(data.gold) >= config.review.gold_min:
        gold_probs = student.predict_proba(student_input([c.text for c in data.gold]))
        gold_pred = [student.classes_[i] for i in np.argmax(gold_probs, axis=1)]
        gold_metrics = evaluate(data.gold_labels, gold_pred, classes)

    model_dir = outputs.classifier_dir(config.output_dir, n)
    outputs.save_folder_atomically(model_dir, lambda tmp: _save(student, tmp, config))
    outputs.write_jsonl(
        outputs.dataset_path(config.output_dir, n),
        (
            {"text": c.text, "label": lab, "source": src, "confidence": conf, "chunk_id": c.id, "pruned": i in pruned}
            for i, (c, lab, src, conf) in enumerate(zip(data.train, data.train_labels, data.train_sources,
                                                        data.train_conf))
        ),
    )
    _record_student_labels(store, n, data, oos, test_probs, classes)
    rules = store.rules()
    seconds = time.perf_counter() - t0
    values = dict(
        accuracy=metrics.accuracy,
        accuracy_low=metrics.accuracy_low,
        accuracy_high=metrics.accuracy_high,
        macro_f1=metrics.macro_f1,
        gold_accuracy=gold_metrics.accuracy if gold_metrics else None,
        gold_size=len(data.gold),
        metrics={
            "test": metrics.to_dict(),
            "gold": gold_metrics.to_dict() if gold_metrics else None,
            "fit_seconds": fit_s,
            "train_label_sources": {s: data.train_sources.count(s) for s in set(data.train_sources)},
            "pruned_label_errors": len(pruned),
            "review_mark": max((r.id for r in store.reviews()), default=0),
            "rules_version": rules.version if rules else None,
        },
        seconds=seconds,
        llm_calls=store.call_stats()["calls"],
        model_path=str(model_dir),
    )
    store.finish_iteration(n, **values)
    return values


def new_student(config: Config, cache=None):
    """A fresh student for this config, on its base model (student.encoder, else training.model_path)."""
    from labelloop.classify import make_student

    return make_student(
        config.student.type, config.classes, settings=config.student,
        model_path=config.student_model, cache=cache, balancing=config.balancing.mode,
    )


def _save(student, folder: Path, config: Config) -> None:
    student.save(folder)
    run_info = {
        "classes": config.classes,
        "truncation_type": config.training.truncation_type,
        "chunk_size": config.system.chunk_size,
    }
    (folder / "labelloop_run.json").write_text(json.dumps(run_info, indent=2))


def fit_student(config: Config, store: Store, data: RoundData, texts: list[str]):
    """Fit a new student on a round's training chunks, leaving out likely LLM label errors.

    Returns the student, the out-of-sample probabilities of every training chunk (rows of
    `data.train`) and the set of rows left out (empty with student.prune_label_errors off).
    """
    oos = _out_of_sample(config, store, texts, data.train_labels)
    pruned = set(suspect_rows(data, oos, config.classes)) if config.student.prune_label_errors else set()
    keep = [i for i in range(len(texts)) if i not in pruned]
    student = new_student(config, store)
    student.fit([texts[i] for i in keep], [data.train_labels[i] for i in keep])
    return student, oos, pruned


def _out_of_sample(config: Config, store: Store, texts: list[str], labels: list[str]) -> np.ndarray:
    """Cross-validated class probabilities of the training chunks (no chunk scored by a model that saw it)."""
    if not texts:
        return np.zeros((0, len(config.classes)))
    return out_of_sample_probs(
        texts, labels, config.classes, encoder_path=config.student_model, cache=store,
        max_seq_length=config.student.max_seq_length, seed=config.student.seed,
    )


def suspect_rows(data: RoundData, oos: np.ndarray, classes: list[str]) -> list[int]:
    """Rows of LLM training labels that confident learning flags as likely wrong; never a person's label.

    Nothing is flagged when the probabilities could not be cross-validated (too few per class),
    and no class is ever left without training examples.
    """
    from labelloop.loop.label_errors import LLM_SOURCES, rank_label_issues

    if len(oos) < 2 * len(classes) or np.ptp(oos) == 0:
        return []
    given = np.array([classes.index(lab) for lab in data.train_labels])
    try:
        ranked = rank_label_issues(given, oos)
    except ValueError:
        return []
    rows = [i for i in ranked if data.train_sources[i] in LLM_SOURCES]
    left = Counter(given.tolist())
    out = []
    for i in rows:
        if left[given[i]] > 1:
            left[given[i]] -= 1
            out.append(i)
    return out


def _record_student_labels(store, n, data: RoundData, oos: np.ndarray, test_probs, classes) -> None:
    """Student opinions for the review app: out-of-sample on train chunks, plain on test chunks."""
    rows = _rows(data.train, oos, classes, n) + _rows(data.test, test_probs, classes, n)
    if rows:
        store.set_labels(rows)


def _rows(chunks, probs, classes, n) -> list[dict]:
    out = []
    for c, p in zip(chunks, probs):
        i = int(np.argmax(p))
        out.append(dict(
            chunk_id=c.id, source="student", label=classes[i], confidence=float(p[i]),
            iteration=n, probs={k: float(v) for k, v in zip(classes, p)},
        ))
    return out
