"""The console summary of iterations."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from labelloop.store import Iteration


def iteration_table(history: Sequence[Iteration], metric: str = "accuracy") -> Table:
    """One row per finished round; `metric` names the headline (multi-label: e.g. micro_f1)."""
    table = Table(title="iterations (student vs the large model's test labels)")
    shown = metric.replace("_", "-")
    gold = "gold acc" if metric == "accuracy" else f"gold {shown}"
    for col in ("iter", "train", "test", f"{shown} [95% CI]", "macro-F1", gold, "LLM calls", "seconds"):
        table.add_column(col, justify="right")
    for it in history:
        acc = "-" if it.accuracy is None else f"{it.accuracy:.3f} [{it.accuracy_low:.3f}, {it.accuracy_high:.3f}]"
        gold = "-" if it.gold_accuracy is None else f"{it.gold_accuracy:.3f} (n={it.gold_size})"
        table.add_row(
            str(it.n), str(it.train_size), str(it.test_size), acc,
            "-" if it.macro_f1 is None else f"{it.macro_f1:.3f}",
            gold, str(it.llm_calls or 0), "-" if it.seconds is None else f"{it.seconds:.1f}",
        )
    return table
