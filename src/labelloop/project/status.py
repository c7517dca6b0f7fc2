"""`labelloop status`: what a project file holds, as rich tables."""

from __future__ import annotations

from collections import Counter

from rich.console import Group
from rich.table import Table

from labelloop import labels as policy
from labelloop.store import Store


def render_status(store: Store) -> Group:
    c = store.counts()
    overview = Table(title=f"labelloop project: {store.path}", show_header=False)
    overview.add_column(style="bold")
    overview.add_column(justify="right")
    rows = [
        ("documents", c["documents"]),
        ("ingest problems", c["ingest_problems"]),
        ("chunks (unique)", c["chunks"]),
        ("duplicate chunks folded", c["duplicate_chunks"]),
        ("test chunks (large LLM)", c["test_chunks"]),
        ("train chunks (small LLM)", c["train_chunks"]),
        ("unlabeled (unparseable replies)", c["unlabeled"]),
        ("human reviews", c["reviews"]),
        ("rules versions", c["rules_versions"]),
        ("finished iterations", c["iterations"]),
    ]
    for name, value in rows:
        overview.add_row(name, str(value))

    labels = Table(title="labels by source and class")
    labels.add_column("source")
    labels.add_column("class")
    labels.add_column("count", justify="right")
    for source, per_class in c["labels"].items():
        for label, n in per_class.items():
            labels.add_row(source, label, str(n))

    counted = Table(title="labels that count (human > large > small)", show_header=False)
    counted.add_column(style="bold")
    counted.add_column(justify="right")
    for name, value in counting_summary(store).items():
        counted.add_row(name, str(value))

    llm = c["llm"]
    calls = Table(title="LLM calls", show_header=False)
    calls.add_column(style="bold")
    calls.add_column(justify="right")
    calls.add_row("calls logged", str(llm["calls"]))
    calls.add_row("ok / failed", f"{llm['ok']} / {llm['errors']}")
    calls.add_row("HTTP attempts (incl. retries)", str(llm["attempts"]))
    calls.add_row("cache hits (calls not repeated)", str(llm["cache_hits"]))
    calls.add_row("prompt / completion tokens", f"{llm['prompt_tokens']:,} / {llm['completion_tokens']:,}")
    calls.add_row("cost", f"${llm['cost']:.4f}")
    calls.add_row("faults survived", ", ".join(f"{k}={v}" for k, v in sorted(llm["faults"].items())) or "none")
    return Group(overview, labels, counted, calls)


def counting_summary(store: Store) -> dict[str, int]:
    """How many chunks' labels count, by where they came from (labelloop.labels), and how many test chunks score."""
    test = {c.id for c in store.chunks("test")}
    counted: Counter[str] = Counter()
    missing: Counter[str] = Counter()
    from_student = scored = 0
    for cid, labels in store.labels_of_chunks().items():
        chosen = policy.final(labels)
        if chosen is not None:
            counted[chosen.source] += 1
            from_student += policy.began_as_student(chosen)
        else:
            missing[policy.status_of(labels)] += 1
        scored += cid in test and policy.teacher_truth(labels) is not None
    out = {f"label from {source}": counted[source] for source in policy.PRECEDENCE}
    out.update({f"no label ({status})": n for status, n in sorted(missing.items())})
    out["human labels accepted from the student"] = from_student
    out["test chunks scored"] = scored
    return out
