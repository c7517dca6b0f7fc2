"""`labelloop plan`: the most LLM calls, tokens and money a config can spend, before spending any.

Every figure is an upper bound for the run the config makes: the sizes come from
labelloop.loop.sizes (as the run's do), every round of training.max_iters is counted, the
large model's re-labels of suspected errors are counted when review.relabel_suspects is on,
and "at most" counts every parse retry and agreement sample an API model may be asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labelloop.config import Config, resolve_llm
from labelloop.llm.base import Example, LabelTask
from labelloop.llm.openai_backend import PARSE_RETRIES
from labelloop.llm.prompts import PromptSet, build_label_messages, build_rules_messages
from labelloop.loop.label_errors import rare_share_cut
from labelloop.loop.sizes import RULES_SAMPLES, max_train, test_size

CHARS_PER_TOKEN = 4.0
TYPICAL_RULES_CHARS = 1500


@dataclass
class RolePlan:
    """One line of the plan: who is called, for what, how often, at what size."""

    role: str
    model: str
    calls: int  # one request per item
    max_calls: int  # with every retry and sample it may take
    prompt_tokens: int  # for max_calls
    completion_tokens: int
    cost: float | None


@dataclass
class Plan:
    n_chunks: int
    avg_chars: float
    rows: list[RolePlan] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return sum(r.calls for r in self.rows)

    @property
    def max_calls(self) -> int:
        return sum(r.max_calls for r in self.rows)

    @property
    def tokens(self) -> int:
        return sum(r.prompt_tokens + r.completion_tokens for r in self.rows)

    @property
    def cost(self) -> float | None:
        costs = [r.cost for r in self.rows if r.cost is not None]
        return sum(costs) if costs else None

    def render(self) -> str:
        """A plain-text table (safe to print anywhere)."""
        head = ("role", "model", "calls", "at most", "prompt tokens", "completion tokens", "cost at most")
        lines = [head] + [
            (r.role, r.model, f"{r.calls:,}", f"{r.max_calls:,}", f"{r.prompt_tokens:,}", f"{r.completion_tokens:,}",
             "-" if r.cost is None else f"${r.cost:,.4f}")
            for r in self.rows
        ]
        lines.append(("total", "", f"{self.calls:,}", f"{self.max_calls:,}", f"{sum(r.prompt_tokens for r in self.rows):,}",
                      f"{sum(r.completion_tokens for r in self.rows):,}",
                      "-" if self.cost is None else f"${self.cost:,.4f}"))
        widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
        out = [f"Plan for {self.n_chunks:,} chunks (average {self.avg_chars:,.0f} characters):"]
        for i, row in enumerate(lines):
            out.append("  ".join(cell.ljust(w) if j < 2 else cell.rjust(w) for j, (cell, w) in
                                 enumerate(zip(row, widths, strict=True))).rstrip())
            if i == 0 or i == len(lines) - 2:
                out.append("  ".join("-" * w for w in widths))
        out.extend(f"* {note}" for note in self.notes)
        return "\n".join(out)


def _tokens(messages: list[dict]) -> int:
    return int(sum(len(m["content"]) for m in messages) / CHARS_PER_TOKEN) + 4 * len(messages)


def _cost(settings, prompt_tokens: int, completion_tokens: int) -> float | None:
    if settings.price_per_1k_input is None and settings.price_per_1k_output is None:
        return None
    return (prompt_tokens / 1000 * (settings.price_per_1k_input or 0.0)
            + completion_tokens / 1000 * (settings.price_per_1k_output or 0.0))


def _name(settings) -> str:
    return f"{settings.mode}:{settings.model or 'default'}"


def _attempts(settings) -> int:
    """Requests one item may take: API replies that cannot be read are asked again; embedded ones never fail so."""
    return (1 + PARSE_RETRIES) * settings.samples if settings.mode == "api" else 1


def estimate(config: Config, n_chunks: int, avg_chars: float | None = None) -> Plan:
    """Upper bounds per role: rules and test set by the large LLM, training labels by the small one."""
    classes = config.classification.classes
    desc = config.classification.desc
    avg = float(avg_chars) if avg_chars else config.system.chunk_size * CHARS_PER_TOKEN
    sample = ("lorem " * int(avg / 6 + 1))[: int(avg)]
    prompts = PromptSet.from_config(config)
    rules_text = "x" * TYPICAL_RULES_CHARS
    large, small = resolve_llm(config, "large"), resolve_llm(config, "small")
    t = config.training
    n_test = test_size(config, n_chunks) if n_chunks else 0
    n_train = max_train(config, n_chunks - n_test)
    shots = tuple(Example(sample, c) for c in classes for _ in range(config.review.few_shot_per_class))
    answer = max(len(c) for c in classes) / CHARS_PER_TOKEN + 8
    plan = Plan(n_chunks=n_chunks, avg_chars=avg)

    rules_msgs = build_rules_messages(desc, classes, [sample] * min(RULES_SAMPLES, n_chunks), prompts,
                                      multi_label=config.multi_label)
    rules_calls = 2  # one draft, at most one rewrite when a class is missing
    plan.rows.append(RolePlan("rules", _name(large), 1, rules_calls, rules_calls * _tokens(rules_msgs),
                              rules_calls * large.rules_max_tokens, None))
    roles = [("test labels", large, n_test, ()), ("train labels", small, n_train, shots)]
    if config.review.relabel_suspects:
        roles.append(("re-labels", large, n_train, shots))  # at most every training label, once per rules version
    if config.review.confirm_rare and not config.multi_label and large != small:
        most_rare = min(n_train, (len(classes) - 1) * rare_share_cut(n_train, len(classes)))
        roles.append(("rare-class checks", large, most_rare, shots))
    for role, settings, n, examples in roles:
        task = LabelTask(sample, tuple(classes), rules_text, desc, examples, multi_label=config.multi_label)
        msgs = build_label_messages(task, "text", prompts)
        most = n * _attempts(settings)
        plan.rows.append(RolePlan(role, _name(settings), n, most, most * _tokens(msgs), int(most * answer), None))
    for row in plan.rows:
        settings = small if row.role == "train labels" else large
        row.cost = _cost(settings, row.prompt_tokens, row.completion_tokens)
    plan.notes.append(
        f"test labels: training.test_set_size {t.test_set_size}, at most half of the {n_chunks:,} chunks")
    plan.notes.append(
        f"train labels: train_set_size {t.train_set_size} + (max_iters {t.max_iters} - 1) x train_set_increment "
        f"{t.train_set_increment}, capped by the {max(0, n_chunks - n_test):,} chunks left after the test set")
    if config.review.confirm_rare and not config.multi_label and large != small:
        plan.notes.append("rare-class checks: review.confirm_rare asks the large model about the small model's "
                          "labels of rare classes; at most this many, and none where no class is rare")
    if config.review.relabel_suspects:
        plan.notes.append("re-labels: review.relabel_suspects sends suspected errors to the large model; at most "
                          "every training label once")
    plan.notes.append(f"at most: an API reply that cannot be read is asked again up to {PARSE_RETRIES} more times, "
                      "times `samples` for agreement confidence; reruns answer from the call log")
    if any(s.mode == "api" and s.price_per_1k_input is None for s in (large, small)):
        plan.notes.append("set price_per_1k_input / price_per_1k_output in small_model / large_model to see cost")
    return plan
