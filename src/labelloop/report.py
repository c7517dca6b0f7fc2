"""report.html: one self-contained page per run (plots embedded as PNG data URIs)."""

from __future__ import annotations

import base64
import io
from datetime import datetime, timezone
from pathlib import Path

import jinja2

from labelloop.config import Config
from labelloop.files import atomic_file
from labelloop.evaluate import headline_metric
from labelloop.store import Store

_TEMPLATE = jinja2.Environment(autoescape=True).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>labelloop report</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1d2430}
h1{margin-bottom:.1em} .sub{color:#667}
table{border-collapse:collapse;margin:1em 0} td,th{border:1px solid #d5dae1;padding:.3em .7em;text-align:right}
th{background:#f3f5f8} td:first-child,th:first-child{text-align:left}
.cards{display:flex;gap:1em;flex-wrap:wrap} .card{border:1px solid #d5dae1;border-radius:8px;padding:.7em 1.2em}
.card b{display:block;font-size:1.6em} img{max-width:100%} .warn{color:#a15c00}
</style></head><body>
<h1>labelloop report</h1>
<div class="sub">{{ generated }} · classes: {{ classes|join(", ") }} · student: {{ student }}</div>
<div class="cards">
 <div class="card">final {{ metric }} vs large LLM<b>{{ final.acc }}</b>95% CI {{ final.ci }}</div>
 <div class="card">macro-F1<b>{{ final.f1 }}</b>on {{ final.test }} test chunks</div>
 <div class="card">{{ metric }} vs human gold<b>{{ final.gold }}</b>{{ final.gold_note }}</div>
 <div class="card">LLM calls<b>{{ llm.calls }}</b>{{ llm.tokens }} tokens · ${{ "%.4f"|format(llm.cost) }}</div>
</div>
<p><b>Stopped:</b> {{ stop_reason or "(run not finished)" }}</p>
<h2>Learning curve</h2>
{% if curve %}<img alt="learning curve" src="data:image/png;base64,{{ curve }}">{% else %}<p>No finished iteration yet.</p>{% endif %}
<h2>Iterations</h2>
{% if multi %}<p>Multi-label: a chunk may hold several labels or none. The headline is {{ metric }}
(<code>classification.multi_label_metric</code>), the number <code>system.required_accuracy</code> is compared with.</p>{% endif %}
<table><tr><th>iter</th><th>train</th><th>test</th><th>{{ metric }}</th><th>95% CI</th><th>macro-F1</th><th>gold {{ metric }}</th><th>LLM calls</th><th>seconds</th></tr>
{% for it in iterations %}<tr><td>{{ it.n }}</td><td>{{ it.train_size }}</td><td>{{ it.test_size }}</td>
<td>{{ "%.3f"|format(it.accuracy or 0) }}</td><td>{{ "%.3f"|format(it.accuracy_low or 0) }}–{{ "%.3f"|format(it.accuracy_high or 0) }}</td>
<td>{{ "%.3f"|format(it.macro_f1 or 0) }}</td><td>{% if it.gold_accuracy is not none %}{{ "%.3f"|format(it.gold_accuracy) }} (n={{ it.gold_size }}){% else %}–{% endif %}</td>
<td>{{ it.llm_calls }}</td><td>{{ "%.1f"|format(it.seconds or 0) }}</td></tr>{% endfor %}
</table>
{% if auto %}<h2>Students tried (student.type auto, last round)</h2>
<p>{{ auto.reason }}</p>
<table><tr><th>candidate</th><th>cross-validated agreement with the teacher</th><th>seconds</th><th>note</th></tr>
{% for t in auto.trials %}<tr><td>{{ t.candidate }}</td><td>{% if t.cv_accuracy is not none %}{{ "%.3f"|format(t.cv_accuracy) }}{% else %}–{% endif %}</td>
<td>{{ "%.1f"|format(t.seconds) }}</td><td>{{ t.note or "" }}</td></tr>{% endfor %}
</table>{% endif %}
{% if multi %}<h2>Label-set metrics (final student vs large LLM test labels)</h2>
<table><tr><th>metric</th><th>value</th><th>95% CI (bootstrap over chunks)</th></tr>
{% for name, v, ci in multi.metrics %}<tr><td>{{ name }}</td><td>{{ "%.3f"|format(v) }}</td><td>{{ "%.3f"|format(ci[0]) }}–{{ "%.3f"|format(ci[1]) }}</td></tr>{% endfor %}
</table>
<h2>Label co-occurrence (large LLM test labels)</h2>
<p>How many test chunks hold both labels; the diagonal is each label's count.</p>
<table><tr><th></th>{% for c in multi.classes %}<th>{{ c }}</th>{% endfor %}</tr>
{% for c, row in multi.cooccurrence %}<tr><td>{{ c }}</td>{% for v in row %}<td>{{ v }}</td>{% endfor %}</tr>{% endfor %}
</table>
{% else %}<h2>Confusion matrix (final student vs large LLM test labels)</h2>
{% if confusion %}<img alt="confusion matrix" src="data:image/png;base64,{{ confusion }}">{% endif %}{% endif %}
<h2>Per-{{ "label" if multi else "class" }} metrics</h2>
<table><tr><th>{{ "label" if multi else "class" }}</th><th>precision</th><th>recall</th><th>F1</th><th>support</th>{% if multi %}<th>threshold</th>{% endif %}</tr>
{% for c, m in per_class.items() %}<tr><td>{{ c }}</td><td>{{ "%.3f"|format(m.precision) }}</td><td>{{ "%.3f"|format(m.recall) }}</td><td>{{ "%.3f"|format(m.f1) }}</td><td>{{ m.support }}</td>{% if multi %}<td>{{ "%.3f"|format(multi.thresholds.get(c, 0.5)) }}</td>{% endif %}</tr>{% endfor %}
</table>
<h2>Label sources</h2>
<table><tr><th>source</th><th>class</th><th>count</th></tr>
{% for source, per in labels.items() %}{% for label, n in per.items() %}<tr><td>{{ source }}</td><td>{{ label }}</td><td>{{ n }}</td></tr>{% endfor %}{% endfor %}
</table>
<h2>LLM calls, tokens, cost</h2>
<table>
<tr><td>calls logged (ok / failed)</td><td>{{ llm.calls }} ({{ llm.ok }} / {{ llm.errors }})</td></tr>
<tr><td>HTTP attempts incl. retries</td><td>{{ llm.attempts }}</td></tr>
<tr><td>cache hits (calls not repeated)</td><td>{{ llm.cache_hits }}</td></tr>
<tr><td>prompt / completion tokens</td><td>{{ llm.prompt_tokens }} / {{ llm.completion_tokens }}</td></tr>
<tr><td>cost</td><td>${{ "%.4f"|format(llm.cost) }}</td></tr>
<tr><td>LLM time (sum of call latencies)</td><td>{{ "%.1f"|format(llm.latency_s) }} s</td></tr>
<tr><td>faults survived</td><td>{% for k, v in llm.faults.items() %}{{ k }}={{ v }} {% else %}none{% endfor %}</td></tr>
</table>
{% if problems %}<h2>Ingest problems</h2><table><tr><th>file</th><th>severity</th><th>message</th></tr>
{% for p in problems %}<tr><td>{{ p.path }}</td><td class="warn">{{ p.severity }}</td><td>{{ p.message }}</td></tr>{% endfor %}</table>{% endif %}
</body></html>
""")


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def learning_curve_figure(iterations):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    x_sets = ([it.train_size for it in iterations], [it.llm_calls or 0 for it in iterations])
    for ax, xs, xlabel in zip(axes, x_sets, ("LLM-labeled training chunks", "LLM calls so far")):
        acc = [it.accuracy for it in iterations]
        low = [it.accuracy_low for it in iterations]
        high = [it.accuracy_high for it in iterations]
        ax.plot(xs, acc, "o-", label="accuracy vs large LLM")
        ax.fill_between(xs, low, high, alpha=0.2, label="95% CI")
        ax.plot(xs, [it.macro_f1 for it in iterations], "s--", label="macro-F1")
        gold = [(x, it.gold_accuracy) for x, it in zip(xs, iterations) if it.gold_accuracy is not None]
        if gold:
            ax.plot(*zip(*gold), "^-", label="accuracy vs human gold")
        ax.set_xlabel(xlabel)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("score")
    axes[0].legend(loc="lower right", fontsize=8)
    return fig


def confusion_figure(matrix, classes):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = 1.2 + 0.7 * len(classes)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("student prediction")
    ax.set_ylabel("large LLM label")
    top = max((max(r) for r in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > top / 2 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    return fig


def _student_line(last, config: Config) -> str:
    """What the final student is: its type and base model (auto names what it chose)."""
    info = ((last.metrics or {}).get("student") or {}) if last else {}
    kind = info.get("type") or config.student.type
    encoder = info.get("encoder") or "all-MiniLM-L6-v2"
    chosen = " (chosen by auto)" if config.student.type == "auto" else ""
    return f"{kind} on {encoder}{chosen}"


def _multi_section(test: dict | None, last) -> dict | None:
    """The label-set tables of a multi-label run's last round (None for single-label)."""
    if not test or "cooccurrence" not in test:
        return None
    names = ("micro_f1", "macro_f1", "subset_accuracy", "hamming_loss")
    info = (last.metrics or {}).get("multi_label") or {}
    return {
        "metrics": [(n.replace("_", "-"), test[n], test["intervals"][n]) for n in names],
        "classes": test["classes"],
        "cooccurrence": list(zip(test["classes"], test["cooccurrence"])),
        "thresholds": info.get("thresholds") or {},
    }


def write_report(store: Store, config: Config, path: Path) -> Path:
    iterations = [it for it in store.iterations() if it.status == "done"]
    last = iterations[-1] if iterations else None
    test = (last.metrics or {}).get("test") if last else None
    counts = store.counts()
    llm = counts["llm"]
    final = {
        "acc": f"{last.accuracy:.3f}" if last and last.accuracy is not None else "–",
        "ci": f"{last.accuracy_low:.3f}–{last.accuracy_high:.3f}" if last and last.accuracy_low is not None else "–",
        "f1": f"{last.macro_f1:.3f}" if last and last.macro_f1 is not None else "–",
        "test": last.test_size if last else 0,
        "gold": f"{last.gold_accuracy:.3f}" if last and last.gold_accuracy is not None else "–",
        "gold_note": (
            f"on {last.gold_size} human-reviewed test chunks" if last and last.gold_accuracy is not None
            else f"needs ≥{config.review.gold_min} reviewed test chunks ({last.gold_size if last else 0} so far)"
        ),
    }
    html = _TEMPLATE.render(
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        classes=config.classes,
        student=_student_line(last, config),
        auto=(last.metrics or {}).get("auto") if last else None,
        final=final,
        llm={**llm, "tokens": f"{llm['prompt_tokens'] + llm['completion_tokens']:,}"},
        stop_reason=last.stop_reason if last else None,
        iterations=iterations,
        curve=_png(learning_curve_figure(iterations)) if iterations else None,
        confusion=_png(confusion_figure(test["confusion"], test["classes"])) if test and "confusion" in test else None,
        multi=_multi_section(test, last),
        metric=headline_metric(config).replace("_", "-"),
        per_class=(test or {}).get("per_class", {}),
        labels=counts["labels"],
        problems=store.ingest_problems(),
    )
    with atomic_file(path) as fh:
        fh.write(html)
    return path
