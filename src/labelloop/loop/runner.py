"""`labelloop run`: ingest, rules, label, then train / evaluate / grow until good enough.

Every step reads what the store already holds first, so re-running the same command after
a crash or a kill continues where it stopped: no LLM call is repeated (the call log is the
cache) and no finished iteration is retrained.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from rich.console import Console

from labelloop import labels as policy
from labelloop.classify.student_input import CONTRACT_META, StudentInput
from labelloop.config import Config
from labelloop.errors import IngestError, LabelloopError
from labelloop.loop import outputs
from labelloop.loop.labeling import Teachers, missing_labels
from labelloop.loop.sampling import make_sampler, pick
from labelloop.loop.sizes import RULES_SAMPLES, round_size, test_size
from labelloop.loop.stopping import first_stop, make_stops
from labelloop.loop.scoring import metric_name
from labelloop.loop.summary import iteration_table
from labelloop.store import Iteration, Store


@dataclass
class RunResult:
    iterations: list[Iteration]
    stop_reason: str
    final_model: str | None


def run(config: Config, *, console: Console | None = None, progress: bool = True) -> RunResult:
    console = console or Console()
    from labelloop.models import resolve_model

    # Before anything is written or paid for: the student's base model must be here (or on a reachable hub).
    base = resolve_model(config.student_model, config.student_model_setting)
    config.output_dir.mkdir(parents=True, exist_ok=True)
    outputs.clean_stale_temps(config.output_dir)
    store = Store(config.db_path)
    contract = StudentInput.from_config(config, base)
    _pin_project(store, config, contract)
    run_id = store.start_run("run")
    try:
        result = _run(config, store, contract, console, progress)
    except BaseException as exc:
        store.finish_run(run_id, "failed", f"{type(exc).__name__}: {exc}"[:500])
        raise
    store.finish_run(run_id, "done", result.stop_reason)
    return result


def _run(config: Config, store: Store, contract: StudentInput, console: Console, progress: bool) -> RunResult:
    out = config.output_dir
    from labelloop.loop.labeling import prompt_notes

    for note in prompt_notes(config):
        console.print(f"[yellow]warning:[/yellow] {note}", highlight=False)
    teachers = Teachers(config, embed=_embedder(config, store, contract), store=store,
                        say=lambda line: console.print(f"LLM: {line}", highlight=False, markup=False))

    console.rule("[bold]1. Ingest")
    from labelloop.ingest.pipeline import ingest

    report = ingest(config, store, progress=progress)
    console.print(report.render())
    chunks = store.chunks()
    if not chunks:
        raise IngestError(f"no chunks in {config.path.input_dir}; add documents there and run again")

    console.rule("[bold]2. Rules (large model)")
    samples = random.Random(config.sampling.seed).sample([c.text for c in chunks], min(RULES_SAMPLES, len(chunks)))
    rules = teachers.rules(store, samples)
    from labelloop.llm.rules import write_rules_yaml

    write_rules_yaml(store, out / "rules_creation_generation.yaml")
    console.print(f"Rules v{rules.version} by {rules.author}: `labelloop rules show {out}`")

    console.rule("[bold]3. Test set (large model: the teacher's truth)")
    test = _ensure_test_split(config, store, console)
    teachers.label(store, missing_labels(store, test, policy.LARGE, rules), "large", rules, iteration=0,
                   progress=progress)

    sampler = make_sampler(config.sampling.strategy, config.sampling.seed)
    stops = make_stops(config)
    from labelloop.loop.round_checks import record_round_checks
    from labelloop.loop.training import train_round

    console.rule("[bold]4. Bootstrap loop")
    console.print(f"Student: {describe_student(config, contract)}", highlight=False)
    console.print(f"Sampling: {sampler}; stopping: {'; '.join(str(s) for s in stops)}")
    if config.multi_label:
        console.print(f"Multi-label: a chunk may get several labels or none; system.required_accuracy is compared "
                      f"with {metric_name(config)} (classification.multi_label_metric)", highlight=False)
    n, reason = 1, ""
    while True:
        _ensure_train_batch(config, store, sampler, n, contract)
        train = [c for c in store.chunks("train") if (c.split_iteration or 0) <= n]
        teachers.label(store, missing_labels(store, train, policy.SMALL, rules), "small", rules, iteration=n,
                       progress=progress)
        done = {it.n: it for it in store.iterations() if it.status == "done"}
        if n not in done:
            _confirm_rare(config, store, n, rules, teachers, console, progress)
            t0 = time.perf_counter()
            values = train_round(config, store, n, contract)
            console.print(f"iteration {n} trained in {time.perf_counter() - t0:.1f}s")
            auto = values["metrics"].get("auto")
            if auto:
                console.print(f"Student (auto): {auto['reason']}", highlight=False)
        record_round_checks(config, store, n, contract)
        history = [it for it in store.iterations() if it.status == "done" and it.n <= n]
        console.print(iteration_table(history, metric_name(config)))
        reason = first_stop(stops, history) or ""
        _handle_label_errors(config, store, n, rules, teachers, console, progress, another_round=not reason)
        if reason:
            break
        if not store.chunks(None) and not _assigned(store, n + 1):
            reason = "every chunk is labeled: no more data to add"
            break
        n += 1
    n = _refresh_after_reviews(config, store, n, contract, console, rules)
    store.set_stop_reason(n, reason)
    console.print(f"[bold]Stopped:[/bold] {reason}")

    console.rule("[bold]5. Outputs")
    from labelloop.loop.finish import write_final_outputs

    final_model = write_final_outputs(config, store, n, contract, console, progress=progress)
    return RunResult(store.iterations(), reason, final_model)


_STUDENT_KINDS = {
    "embedding-head": "frozen sentence embeddings + logistic-regression head",
    "setfit": "SetFit: contrastive fine-tuning of the embedding model, then a logistic-regression head",
    "transformer": "the base model fine-tuned end to end as a sequence classifier",
    "static": "static token embeddings distilled from the base model (model2vec) + logistic-regression head",
    "auto": "picks, by cross-validated agreement with the teacher, within student.budget_s",
}


def describe_student(config: Config, contract: StudentInput) -> str:
    """One line: which student type trains, on which base model, and where that came from."""
    kind = config.student.type
    if config.student_model:
        base = f"{config.student_model} ({config.student_model_setting})"
    else:
        base = "all-MiniLM-L6-v2 (packaged default)"
    line = (f"{kind} ({_STUDENT_KINDS.get(kind, kind)}) on {base}; it sees {contract.budget} tokens per chunk "
            f"({contract.truncation})")
    if config.training.model_path and kind != "transformer" and not config.student.encoder:
        line += ("; Augmentoolkit fine-tunes training.model_path, labelloop embeds with it: set student.type: "
                 "transformer for Augmentoolkit's behaviour")
    return line


def _pin_project(store: Store, config: Config, contract: StudentInput) -> None:
    """The classes a project was labeled with stay fixed; the run's student-input contract is recorded."""
    stored = store.get_meta("classes")
    if stored is not None and stored != config.classes:
        raise LabelloopError(
            f"classification.classes is {config.classes} but this project was labeled with {stored}; "
            f"use a new path.output_dir for new classes, or restore the old list"
        )
    stored_multi = store.get_meta("multi_label")
    if stored_multi is not None and bool(stored_multi) != config.multi_label:
        raise LabelloopError(
            f"classification.multi_label is {config.multi_label} but this project was labeled with "
            f"multi_label {bool(stored_multi)}; use a new path.output_dir, or set it back to {bool(stored_multi)}"
        )
    store.set_meta("classes", config.classes)
    store.set_meta("multi_label", config.multi_label)
    store.set_meta(CONTRACT_META, contract.to_dict())


def _ensure_test_split(config: Config, store: Store, console: Console) -> list:
    test = store.chunks("test")
    if test:
        return test
    pool = [c.id for c in store.chunks(None)]
    size = test_size(config, len(pool))
    if size != config.training.test_set_size:
        console.print(
            f"[yellow]training.test_set_size {config.training.test_set_size} leaves too little to train on "
            f"with {len(pool)} chunks; using {size}. Add documents or lower test_set_size.[/yellow]"
        )
    # The test set is always a seeded random sample: an unbiased estimate whatever the sampler.
    ids = random.Random(f"test-{config.sampling.seed}").sample(pool, size)
    store.assign_split(sorted(ids), "test", iteration=0)
    return store.chunks("test")


def _assigned(store: Store, n: int) -> list:
    return [c for c in store.chunks("train") if c.split_iteration == n]


def _ensure_train_batch(config: Config, store: Store, sampler, n: int, contract: StudentInput) -> None:
    """Assign round n's new training chunks once; a resumed run finds them already assigned."""
    if _assigned(store, n):
        return
    from labelloop.loop.pool_state import candidates, sampler_state

    size = round_size(config, n)
    pool = [c.id for c in store.chunks(None)]
    if not pool:
        return
    state: dict = {}
    if sampler.needs_probs or sampler.needs_embeddings:
        pool = candidates(pool, config.sampling.pool_limit, config.sampling.seed, n)
        state = sampler_state(config, store, sampler, store.chunks(ids=pool), n, contract)
    store.assign_split(pick(sampler, pool, size, round_=n, **state), "train", iteration=n)


def _confirm_rare(config, store, n, rules, teachers, console, progress) -> None:
    """review.confirm_rare: the large model checks the small model's labels of rare classes before round n trains."""
    from labelloop.loop.label_errors import RARE_SHARE_OF_EVEN, confirm_rare

    check = confirm_rare(config, store, n, rules, teachers, progress=progress)
    if not check.rare:
        return
    below = f"below {100 * RARE_SHARE_OF_EVEN / len(config.classes):.0f}% of the training labels"
    if check.note:
        console.print(f"Rare classes: {', '.join(check.rare)} ({below}); not confirmed: {check.note}.")
    elif check.asked:
        console.print(f"Rare classes: {', '.join(check.rare)} ({below}); the large model labeled the "
                      f"{len(check.asked)} chunks the small model gave them (review.confirm_rare).")


def _handle_label_errors(config, store, n, rules, teachers, console, progress, *, another_round: bool) -> None:
    """Report round n's flagged labels; re-label them with the large model when asked and a round follows."""
    from labelloop.loop.label_errors import Flags, relabel
    from labelloop.loop.round_checks import iteration, save_relabeled

    flags = Flags.from_metrics(iteration(store, n).metrics)
    if flags.note:
        console.print(f"Label errors: not checked ({flags.note}).")
    if not flags.flagged:
        return
    if config.review.relabel_suspects and another_round:
        done = relabel(config, store, n, flags.flagged, rules, teachers, progress=progress)
        if flags.relabeled != done:
            save_relabeled(store, n, done)
        console.print(f"Label errors: {len(flags.flagged)} of {flags.checked} training labels look wrong "
                      f"(cleanlab); {len(done)} re-labeled by the large model for iteration {n + 1}.")
    else:
        console.print(f"Label errors: {len(flags.flagged)} of {flags.checked} training labels look wrong "
                      f"(cleanlab): review them in the 'Likely label errors' queue (`labelloop review "
                      f"{config.output_dir}`).")


def _refresh_after_reviews(config, store, n, contract, console, rules) -> int:
    """Retrain once more when people reviewed or rules changed since the last finished round."""
    last = [it for it in store.iterations() if it.status == "done"][-1]
    mark = (last.metrics or {}).get("review_mark", 0)
    latest_review = max((r.id for r in store.reviews()), default=0)
    rules_changed = (last.metrics or {}).get("rules_version") not in (None, rules.version)
    if latest_review <= mark and not rules_changed:
        return max(n, last.n)
    from labelloop.loop.training import train_round

    why = "rules changed" if rules_changed else f"{latest_review - mark} new review action(s)"
    console.print(f"{why} since iteration {last.n}: training iteration {last.n + 1} on the current labels.")
    train_round(config, store, last.n + 1, contract)
    console.print(iteration_table([it for it in store.iterations() if it.status == "done"], metric_name(config)))
    return last.n + 1


def _embedder(config: Config, store: Store, contract: StudentInput):
    """Embedding function for choosing few-shot examples: texts as the student sees them (contract.prepare)."""
    cache: dict = {}

    def embed(texts: list[str]):
        if "enc" not in cache:
            from labelloop.classify.encoder import Encoder

            cache["enc"] = Encoder(config.student_model, cache=store, max_seq_length=contract.max_length)
        return cache["enc"].encode(contract.prepare(texts))

    return embed
