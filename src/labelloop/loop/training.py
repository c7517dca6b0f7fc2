"""One round: train a fresh student on the current labels, score it, save it, record it."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labelloop import files
from labelloop import labels as policy
from labelloop.classify.student_input import StudentInput
from labelloop.config import Config
from labelloop.loop import outputs, scoring
from labelloop.loop.label_errors import (
    METRICS_KEY,
    Flags,
    decisions_to_ignore,
    rank_round,
    rank_test,
    rows_to_prune,
)
from labelloop.store import Chunk, Store


@dataclass
class RoundData:
    """The chunks and labels one round trains and tests on."""

    train: list[Chunk]
    train_labels: list  # class names; multi-label: label sets (lists of classes)
    train_sources: list[str]
    train_conf: list[float | None]
    test: list[Chunk]  # test chunks with a truth (labelloop.labels.teacher_truth): a discarded one is left out
    test_labels: list  # the teacher's truth: a person's label, else the large LLM's
    test_sources: list[str]
    gold: list[Chunk]
    gold_labels: list  # human labels on test chunks


def round_data(store: Store, n: int, multi_label: bool = False) -> RoundData:
    """Training data of round n: train chunks assigned up to n, with the labels that count (labelloop.labels)."""
    def value(lab):
        return policy.label_value(lab, multi_label)

    train = [c for c in store.chunks("train") if (c.split_iteration or 0) <= n]
    final = store.final_labels([c.id for c in train]) if train else {}
    train = [c for c in train if c.id in final]
    test = store.chunks("test")
    held = store.labels_of_chunks([c.id for c in test]) if test else {}
    truth = {c.id: policy.teacher_truth(held.get(c.id, {})) for c in test}
    gold = {c.id: policy.gold(held.get(c.id, {})) for c in test}
    test_ref = [c for c in test if truth[c.id] is not None]
    gold_ref = [c for c in test if gold[c.id] is not None]
    return RoundData(
        train=train,
        train_labels=[value(final[c.id]) for c in train],
        train_sources=[final[c.id].source for c in train],
        train_conf=[final[c.id].confidence for c in train],
        test=test_ref,
        test_labels=[value(truth[c.id]) for c in test_ref],
        test_sources=[truth[c.id].source for c in test_ref],
        gold=gold_ref,
        gold_labels=[value(gold[c.id]) for c in gold_ref],
    )


@dataclass
class Fitted:
    """A round's student, and what its cross-validation found about the labels it learned from."""

    student: object
    contract: StudentInput  # what this student sees (auto may pick another encoder than the config's)
    oos: np.ndarray  # out-of-sample probabilities of every training row (rows of RoundData.train)
    flags: Flags  # likely LLM label errors, most likely first
    pruned: set[int]  # training rows left out of the fit (multi-label: rows with a decision left out)
    auto: dict | None = None  # student.type auto: every candidate's score and time, the choice and why
    ignored: np.ndarray | None = None  # multi-label: rows x classes, the decisions each label learned without


def train_round(config: Config, store: Store, n: int, contract: StudentInput) -> dict:
    """Train, evaluate and save round n; return the recorded iteration values."""
    t0 = time.perf_counter()
    data = round_data(store, n, config.multi_label)
    classes = config.classes
    store.start_iteration(n, train_size=len(data.train), test_size=len(data.test))
    fitted = fit_student(config, store, data, contract)
    student, contract = fitted.student, fitted.contract
    fit_s = time.perf_counter() - t0

    test_probs = student.predict_proba(contract.prepare([c.text for c in data.test])) if data.test \
        else np.zeros((0, len(classes)))
    metrics = scoring.score(config, data.test_labels, scoring.predictions(config, student, test_probs))
    rank_test(fitted.flags, ([c.id for c in data.train], data.train_labels, fitted.oos),
              ([c.id for c in data.test], data.test_labels, test_probs), classes, data.test_sources)
    gold_metrics = None
    if len(data.gold) >= config.review.gold_min:
        gold_probs = student.predict_proba(contract.prepare([c.text for c in data.gold]))
        gold_metrics = scoring.score(config, data.gold_labels, scoring.predictions(config, student, gold_probs))
    top = scoring.headline(config, metrics)

    model_dir = outputs.classifier_dir(config.output_dir, n)
    files.save_folder_atomically(model_dir, lambda tmp: _save(student, tmp, contract))
    files.write_jsonl(outputs.dataset_path(config.output_dir, n), _dataset_rows(config, data, fitted))
    _record_student_labels(store, n, data, fitted.oos, test_probs, classes, student)
    rules = store.rules()
    seconds = time.perf_counter() - t0
    values = dict(
        accuracy=top.value,
        accuracy_low=top.low,
        accuracy_high=top.high,
        macro_f1=top.macro_f1,
        gold_accuracy=scoring.headline(config, gold_metrics).value if gold_metrics else None,
        gold_size=len(data.gold),
        metrics={
            "test": metrics.to_dict(),
            "gold": gold_metrics.to_dict() if gold_metrics else None,
            "fit_seconds": fit_s,
            "train_label_sources": {s: data.train_sources.count(s) for s in set(data.train_sources)},
            "pruned_label_errors": len(fitted.pruned),
            **({"ignored_decisions": int(fitted.ignored.sum())} if fitted.ignored is not None else {}),
            METRICS_KEY: fitted.flags.to_dict(),
            "student": {"type": getattr(student, "kind", config.student.type), "encoder": contract.encoder,
                        "soft_labels": config.student.soft_labels, **_head_settings(student)},
            **({"auto": fitted.auto} if fitted.auto else {}),
            **({"multi_label": {"metric": scoring.metric_name(config),
                                "thresholds": {c: float(t) for c, t in zip(classes, student.thresholds_)}}}
               if config.multi_label else {}),
            "review_mark": max((r.id for r in store.reviews()), default=0),
            "rules_version": rules.version if rules else None,
        },
        seconds=seconds,
        llm_calls=store.call_stats()["calls"],
        model_path=str(model_dir),
    )
    store.finish_iteration(n, **values)
    return values


def _head_settings(student) -> dict:
    """The head's C and balancing, where cross-validation chose them (labelloop.classify.head.choose_head)."""
    settings = student.__dict__.get("head_settings_")
    return {"head": settings.to_dict()} if settings is not None else {}


def _dataset_rows(config: Config, data: RoundData, fitted: Fitted):
    """dataset_N.jsonl: each training chunk, its label (multi-label: labels), where it came from, and whether
    the student learned without it (multi-label: `ignored`, the labels whose decision it learned without)."""
    key = outputs.label_key(config)
    for i, (c, lab, src, conf) in enumerate(zip(data.train, data.train_labels, data.train_sources, data.train_conf)):
        row = {"text": c.text, key: lab, "source": src, "confidence": conf, "chunk_id": c.id,
               "pruned": i in fitted.pruned}
        if fitted.ignored is not None:
            row["ignored"] = [k for k, off in zip(config.classes, fitted.ignored[i]) if off]
        yield row


def new_student(config: Config, contract: StudentInput, cache=None, kind: str | None = None):
    """A fresh student of this config's type (or `kind`), on the contract's base model and length."""
    from labelloop.classify import make_student

    return make_student(
        kind or config.student.type, config.classes, settings=config.student, model_path=contract.encoder,
        cache=cache, balancing=config.balancing.mode, max_seq_length=contract.max_length,
        multi_label=config.multi_label,
    )


def _save(student, folder: Path, contract: StudentInput) -> None:
    student.save(folder)
    contract.save(folder)


def soft_targets(store: Store, data: RoundData, classes: list[str], multi_label: bool = False) -> np.ndarray:
    """The teacher's class probabilities of each training row, where it gave them; one-hot otherwise.

    Multi-label: each class's own probability of applying (rows need not sum to 1); the set as 0/1 otherwise.
    """
    labels = store.labels(chunk_ids=[c.id for c in data.train])
    probs = {(lab.chunk_id, lab.source): lab.probs for lab in labels}
    out = np.zeros((len(data.train), len(classes)))
    for i, (c, lab, src) in enumerate(zip(data.train, data.train_labels, data.train_sources)):
        p = probs.get((c.id, src)) if src in policy.LLM_SOURCES else None
        if multi_label:
            out[i] = [float(p.get(k, 0.0)) for k in classes] if p else [float(k in lab) for k in classes]
            continue
        if p and sum(p.get(k, 0.0) for k in classes) > 0:
            out[i] = [float(p.get(k, 0.0)) for k in classes]
            out[i] /= out[i].sum()
        else:
            out[i, classes.index(lab)] = 1.0
    return out


def fit_student(config: Config, store: Store, data: RoundData, contract: StudentInput) -> Fitted:
    """Fit a new student on a round's training chunks, leaving out the LLM labels it calls likely wrong.

    The student is first cross-validated on its own training chunks; confident learning ranks
    the labels from those out-of-sample probabilities once (labelloop.loop.label_errors), and
    with student.prune_label_errors on, the flagged LLM labels are left out of the final fit.
    With student.type auto, the cross-validation also chooses the student (labelloop.classify.selection).
    """
    auto, oos = None, None
    if config.student.type == "auto" and data.train:
        contract, student, oos, auto = _auto(config, store, data, contract)
    else:
        student = new_student(config, contract, store)
    texts = contract.prepare([c.text for c in data.train])
    soft = soft_targets(store, data, config.classes, config.multi_label) if config.student.soft_labels else None
    fit = fit_labeled(student, texts, data.train_labels, data.train_sources, [c.id for c in data.train],
                      config.classes, prune=config.student.prune_label_errors, oos=oos,
                      folds=config.student.cv_folds, soft=soft, multi_label=config.multi_label)
    return Fitted(student, contract, fit.oos, fit.flags, fit.pruned, auto, fit.ignored)


@dataclass
class LabeledFit:
    """What fit_labeled found and left out."""

    oos: np.ndarray  # out-of-sample probabilities of every row
    flags: Flags
    pruned: set[int]  # rows left out (multi-label: rows with at least one decision left out)
    ignored: np.ndarray | None = None  # multi-label: rows x classes, the decisions left out


def fit_labeled(student, texts: list[str], labels: list, sources: list[str], chunk_ids: list[int], classes: list[str],
                *, prune: bool, oos: np.ndarray | None = None, folds: int = 5, soft: np.ndarray | None = None,
                multi_label: bool = False) -> LabeledFit:
    """The loop's way to fit a student on LLM labels: cross-validate, rank likely label errors, prune, fit.

    The out-of-sample probabilities come from `student.label_check_proba` (a fine-tuned student's are
    its frozen base encoder's). `oos` given: the cross-validation was already done (student.type auto). Single-label: the flagged
    rows are left out. Multi-label: each label leaves out its own flagged decisions (labelloop.classify.
    label_quality.find_cell_issues) and its threshold is tuned on the out-of-fold probabilities of
    the decisions kept.
    """
    if oos is None:
        oos = student.label_check_proba(texts, labels, folds=folds).copy() if texts else np.zeros((0, len(classes)))
    rows, flags = rank_round(chunk_ids, labels, sources, oos, classes)
    if multi_label and texts:
        ignore = _fit_sets(student, texts, labels, sources, classes, oos, prune=prune, soft=soft)
        return LabeledFit(oos, flags, {int(i) for i in np.flatnonzero(ignore.any(axis=1))}, ignore)
    pruned = set(rows_to_prune(rows, labels)) if prune else set()
    keep = [i for i in range(len(texts)) if i not in pruned]
    student.fit([texts[i] for i in keep], [labels[i] for i in keep],
                soft=soft[keep] if soft is not None and keep else None)
    return LabeledFit(oos, flags, pruned)


def _fit_sets(student, texts, labels, sources, classes, oos, *, prune: bool, soft) -> np.ndarray:
    """Multi-label fit; returns the decisions left out (rows x classes)."""
    from labelloop.classify.label_quality import find_cell_issues
    from labelloop.classify.thresholds import tune_thresholds
    from labelloop.evaluate import label_matrix

    Y = label_matrix(labels, classes)
    ignore = decisions_to_ignore(find_cell_issues(Y, oos), Y, sources) if prune else np.zeros(Y.shape, bool)
    student.fit(texts, labels, soft=soft, thresholds=tune_thresholds(oos, Y, ignore), ignore=ignore)
    return ignore


def _auto(config: Config, store: Store, data: RoundData, contract: StudentInput):
    """student.type auto: score the candidates, then a fresh student of the chosen kind."""
    from labelloop.classify.selection import candidates, choose

    contracts: dict[str | None, StudentInput] = {}

    def contract_for(encoder: str | None) -> StudentInput:
        if encoder not in contracts:
            contracts[encoder] = contract if encoder == contract.encoder else contract.with_encoder(encoder, config)
        return contracts[encoder]

    prepared: dict[str | None, list[str]] = {}

    def texts_for(encoder: str | None) -> list[str]:
        if encoder not in prepared:
            prepared[encoder] = contract_for(encoder).prepare([c.text for c in data.train])
        return prepared[encoder]

    pool = [dataclasses.replace(c, encoder=c.encoder or contract.encoder) for c in candidates(config.student_model)]
    previous = [it for it in store.iterations() if it.status == "done" and (it.metrics or {}).get("auto")]
    previous_best = max((t["cv_accuracy"] or 0.0 for t in previous[-1].metrics["auto"]["trials"]
                         if t.get("cv_accuracy") is not None), default=None) if previous else None
    choice = choose(lambda kind, enc: new_student(config, contract_for(enc), store, kind=kind), [],
                    data.train_labels, target=config.system.required_accuracy, budget_s=config.student.budget_s,
                    previous_best=previous_best, folds=config.student.cv_folds, candidates_=pool,
                    texts_for=texts_for)
    # The candidate as cross-validated: what its cross-validation chose (a head's settings) carries into its fit.
    return contract_for(choice.encoder), choice.student, choice.oos, choice.to_dict()


def _record_student_labels(store, n, data: RoundData, oos: np.ndarray, test_probs, classes, student) -> None:
    """Student opinions for the review app: out-of-sample on train chunks, plain on test chunks."""
    rows = _rows(data.train, oos, classes, n, student) + _rows(data.test, test_probs, classes, n, student)
    if rows:
        store.set_labels(rows)


def _rows(chunks, probs, classes, n, student) -> list[dict]:
    """Student opinions by the decision rule (a multi-label set stored encoded), with confidence and probabilities."""
    from labelloop.classify.decision import confidence, decide

    if not len(chunks):
        return []
    thresholds = student.thresholds_ if getattr(student, "multi_label", False) else None
    answers = decide(probs, classes, thresholds)
    sure = confidence(probs, thresholds)
    return [dict(chunk_id=c.id, source=policy.STUDENT, iteration=n, confidence=float(s),
                 label=policy.encode_set(a, classes) if thresholds is not None else a,
                 probs={k: float(v) for k, v in zip(classes, p)})
            for c, p, a, s in zip(chunks, probs, answers, sure)]
