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

from labelloop.config import Config
from labelloop.errors import IngestError, LabelloopError
from labelloop.loop import outputs
from labelloop.loop.labeling import ensure_rules, label, missing_labels
from labelloop.loop.sampling import make_sampler, pick
from labelloop.loop.stopping import first_stop, make_stops
from labelloop.loop.summary import iteration_table
from labelloop.store import Iteration, Store


@dataclass
class RunResult:
    iterations: list[Iteration]
    stop_reason: str
    final_model: str | None


def run(config: Config, *, console: Console | None = None, progress: bool = True) -> RunResult:
    console = console or Console()
    config.output_dir.mkdir(parents=True, exist_ok=True)
    outputs.clean_stale_temps(config.output_dir)
    store = Store(config.db_path)
    _pin_classes(store, config)
    run_id = store.start_run("run")
    try:
        result = _run(config, store, console, progress)
    except BaseException as exc:
        store.finish_run(run_id, "failed", f"{type(exc).__name__}: {exc}"[:500])
        raise
    store.finish_run(run_id, "done", result.stop_reason)
    return result


def _run(config: Config, store: Store, console: Console, progress: bool) -> RunResult:
    out = config.output_dir
    from labelloop.loop.labeling import prompt_notes

    for note in prompt_notes(config):
        console.print(f"[yellow]warning:[/yellow] {note}", highlight=False)
    # Before anything is paid for: the student's base model must be here (or on a reachable hub).
    base = _student_base(config)

    console.rule("[bold]1. Ingest")
    from labelloop.ingest.pipeline import ingest

    report = ingest(config, store, progress=progress)
    console.print(report.render())
    chunks = store.chunks()
    if not chunks:
        raise IngestError(f"no chunks in {config.path.input_dir}; add documents there and run again")

    console.rule("[bold]2. Rules (large model)")
    samples = random.Random(config.sampling.seed).sample([c.text for c in chunks], min(5, len(chunks)))
    rules = ensure_rules(config, store, samples)
    from labelloop.llm.rules import write_rules_yaml

    write_rules_yaml(store, out / "rules_creation_generation.yaml")
    console.print(f"Rules v{rules.version} by {rules.author}: `labelloop rules show {out}`")

    embed = _embedder(config, store)
    console.rule("[bold]3. Test set (large model: the teacher's truth)")
    test = _ensure_test_split(config, store, console)
    label(config, store, missing_labels(store, test, "llm-large", rules), "large", rules, iteration=0, embed=embed,
          progress=progress)

    sampler = make_sampler(config.sampling.strategy, config.sampling.seed)
    student_input = _student_input(config)
    stops = make_stops(config)
    from labelloop.loop.round_checks import record_round_checks
    from labelloop.loop.training import train_round

    console.rule("[bold]4. Bootstrap loop")
    console.print(f"Student: {describe_student(config, base)}", highlight=False)
    console.print(f"Sampling: {sampler}; stopping: {'; '.join(str(s) for s in stops)}")
    n, reason = 1, ""
    while True:
        _ensure_train_batch(config, store, sampler, n, student_input)
        train = [c for c in store.chunks("train") if (c.split_iteration or 0) <= n]
        label(config, store, missing_labels(store, train, "llm-small", rules), "small", rules, iteration=n, embed=embed,
              progress=progress)
        done = {it.n: it for it in store.iterations() if it.status == "done"}
        if n not in done:
            t0 = time.perf_counter()
            train_round(config, store, n, student_input)
            console.print(f"iteration {n} trained in {time.perf_counter() - t0:.1f}s")
        record_round_checks(config, store, n, student_input)
        history = [it for it in store.iterations() if it.status == "done" and it.n <= n]
        console.print(iteration_table(history))
        reason = first_stop(stops, history) or ""
        _handle_label_errors(config, store, n, rules, embed, console, progress, another_round=not reason)
        if reason:
            break
        if not store.chunks(None) and not _assigned(store, n + 1):
            reason = "every chunk is labeled: no more data to add"
            break
        n += 1
    n = _refresh_after_reviews(config, store, n, student_input, console, rules)
    store.set_stop_reason(n, reason)
    console.print(f"[bold]Stopped:[/bold] {reason}")

    console.rule("[bold]5. Outputs")
    from labelloop.loop.finish import write_final_outputs

    final_model = write_final_outputs(config, store, n, student_input, console, progress=progress)
    return RunResult(store.iterations(), reason, final_model)


_STUDENT_KINDS = {
    "embedding-head": "frozen sentence embeddings + logistic-regression head",
    "setfit": "SetFit: contrastive fine-tuning of the embedding model, then a logistic-regression head",
    "transformer": "the base model fine-tuned end to end as a sequence classifier",
}


def _student_base(config: Config) -> str:
    """The local folder of the student's base model; a model that is not here stops the run (exit 2)."""
    from labelloop.models import resolve_model

    return resolve_model(config.student_model, config.student_model_setting)


def describe_student(config: Config, folder: str) -> str:
    """One line: which student type trains, on which base model, and where that came from."""
    kind = config.student.type
    if config.student_model:
        base = f"{config.student_model} ({config.student_model_setting})"
    else:
        base = "all-MiniLM-L6-v2 (packaged default)"
    line = f"{kind} ({_STUDENT_KINDS.get(kind, kind)}) on {base}"
    if config.training.model_path and kind != "transformer" and not config.student.encoder:
        line += ("; Augmentoolkit fine-tunes training.model_path, labelloop embeds with it: set student.type: "
                 "transformer for Augmentoolkit's behaviour")
    return line


def _pin_classes(store: Store, config: Config) -> None:
    stored = store.get_meta("classes")
    if stored is not None and stored != config.classes:
        raise LabelloopError(
            f"classification.classes is {config.classes} but this project was labeled with {stored}; "
            f"use a new path.output_dir for new classes, or restore the old list"
        )
    store.set_meta("classes", config.classes)
    store.set_meta("truncation_type", config.training.truncation_type)
    store.set_meta("student_max_tokens", (config.student.max_seq_length or 256) - 2)
    store.set_meta("student_encoder", config.student_model)


def _ensure_test_split(config: Config, store: Store, console: Console) -> list:
    test = store.chunks("test")
    if test:
        return test
    pool = [c.id for c in store.chunks(None)]
    size = config.training.test_set_size
    if size > len(pool) // 2:
        size = max(1, len(pool) // 2)
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


def _ensure_train_batch(config: Config, store: Store, sampler, n: int, student_input) -> None:
    """Assign round n's new training chunks once; a resumed run finds them already assigned."""
    if _assigned(store, n):
        return
    from labelloop.loop.pool_state import candidates, sampler_state

    size = config.training.train_set_size if n == 1 else config.training.train_set_increment
    pool = [c.id for c in store.chunks(None)]
    if not pool:
        return
    state: dict = {}
    if sampler.needs_probs or sampler.needs_embeddings:
        pool = candidates(pool, config.sampling.pool_limit, config.sampling.seed, n)
        state = sampler_state(config, store, sampler, store.chunks(ids=pool), n, student_input)
    store.assign_split(pick(sampler, pool, size, round_=n, **state), "train", iteration=n)


def _handle_label_errors(config, store, n, rules, embed, console, progress, *, another_round: bool) -> None:
    """Report round n's flagged labels; re-label them with the large model when asked and a round follows."""
    from labelloop.loop.label_errors import METRICS_KEY, relabel
    from labelloop.loop.round_checks import iteration, save_relabeled

    flags = (iteration(store, n).metrics or {}).get(METRICS_KEY) or {}
    flagged = flags.get("flagged") or []
    if flags.get("note"):
        console.print(f"Label errors: not checked ({flags['note']}).")
    if not flagged:
        return
    if config.review.relabel_suspects and another_round:
        done = relabel(config, store, n, flagged, rules, embed=embed, progress=progress)
        if flags.get("relabeled") != done:
            save_relabeled(store, n, done)
        console.print(f"Label errors: {len(flagged)} of {flags.get('checked')} training labels look wrong "
                      f"(cleanlab); {len(done)} re-labeled by the large model for iteration {n + 1}.")
    else:
        console.print(f"Label errors: {len(flagged)} of {flags.get('checked')} training labels look wrong "
                      f"(cleanlab): review them in the 'Likely label errors' queue (`labelloop review "
                      f"{config.output_dir}`).")


def _refresh_after_reviews(config, store, n, student_input, console, rules) -> int:
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
    train_round(config, store, last.n + 1, student_input)
    console.print(iteration_table([it for it in store.iterations() if it.status == "done"]))
    return last.n + 1


def _embedder(config: Config, store: Store):
    """Embedding function for choosing few-shot examples; loads the encoder only when needed."""
    cache: dict = {}

    def embed(texts: list[str]):
        if "enc" not in cache:
            from labelloop.classify.encoder import Encoder

            cache["enc"] = Encoder(config.student_model, cache=store, max_seq_length=config.student.max_seq_length)
        return cache["enc"].encode(texts)

    return embed


def _student_input(config: Config):
    from labelloop.loop.student_input import make_student_input

    return make_student_input(config.student_model, config.student.max_seq_length, config.training.truncation_type)
