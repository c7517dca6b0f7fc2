"""Tables (markdown, mean ± sd over seeds) and plots (matplotlib, Agg) of the benchmark results."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

PLOTS = Path(__file__).parent / "plots"

# The targets, in points (accuracy x 100) and as a throughput ratio.
TARGET_VS_GOLD = -1.0  # student - same-size gold-label student, with a 90%-right teacher
TARGET_VS_TEACHER = 2.0  # student - its teacher, on gold
TARGET_SPEEDUP = 100.0  # student chunks/s over the embedded teacher's items/s


def ms(values: list[float], scale: float = 1.0, fmt: str = ".1f", signed: bool = False) -> str:
    """'mean ± sd' (sd only with two or more values)."""
    vals = [v * scale for v in values if v is not None]
    if not vals:
        return "–"
    sign = "+" if signed else ""
    mean = f"{statistics.fmean(vals):{sign}{fmt}}"
    return f"{mean} ± {statistics.stdev(vals):{fmt}}" if len(vals) > 1 else mean


def times(values: list[float]) -> str:
    """'12x' style ratio, mean ± sd; '–' when there is none."""
    text = ms(values, fmt=".0f")
    return text if text == "–" else f"{text}x"


def groups(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        out[(r["dataset"], r["teacher"])].append(r)
    return out


def loop_tables(rows: list[dict]) -> str:
    """The side-by-side table, the review table and the throughput table, in markdown."""
    g = groups(rows)
    out = ["### Teacher vs bootstrapped student vs gold-label student (accuracy %, gold test split)", "",
           "| data | teacher | seeds | train chunks | teacher acc | teacher F1 | student acc | student F1 | "
           "gold-label student acc | student − gold | student − teacher | LLM calls | tokens | s/iteration |",
           "|" + "---|" * 14]
    for (ds, t), rs in g.items():
        out.append(
            f"| {ds} | {t} | {len(rs)} | {ms([r['train_size'] for r in rs], fmt='.0f')} | "
            f"{ms([r['teacher_acc'] for r in rs], 100)} | {ms([r['teacher_f1'] for r in rs], 100)} | "
            f"{ms([r['student_acc'] for r in rs], 100)} | {ms([r['student_f1'] for r in rs], 100)} | "
            f"{ms([r['gold_student_acc'] for r in rs], 100)} | "
            f"{ms([r['student_vs_gold_points'] for r in rs], signed=True)} | "
            f"{ms([r['student_vs_teacher_points'] for r in rs], signed=True)} | "
            f"{ms([r['llm_calls'] for r in rs], fmt='.0f')} | "
            f"{ms([r['prompt_tokens'] + r['completion_tokens'] for r in rs], fmt='.0f')} | "
            f"{ms([r['seconds_per_iteration'] for r in rs])} |"
        )
    if any(r.get("review") for r in rows):
        out += ["", "### Simulated review: student accuracy % on gold after k reviews per queue "
                "(fixed = reviewed labels that were wrong; seeds with a review simulation only)", "",
                "| data | teacher | seeds | no review | queue | k=25 acc | k=25 fixed | k=100 acc | k=100 fixed |",
                "|" + "---|" * 9]
        for (ds, t), all_rs in g.items():
            rs = [r for r in all_rs if r.get("review")]
            queues = list(dict.fromkeys(v["queue"] for r in rs for v in r.get("review", [])))
            for q in queues:
                cells = []
                for k in (25, 100):
                    vals = [v for r in rs for v in r["review"] if v["queue"] == q and v["k"] == k]
                    cells.append(ms([v["student_acc"] for v in vals], 100))
                    cells.append(ms([v["fixed"] for v in vals], fmt=".1f") + " / " +
                                 ms([v["reviewed"] for v in vals], fmt=".0f"))
                out.append(f"| {ds} | {t} | {','.join(str(r['seed']) for r in rs)} | "
                           f"{ms([r['student_acc'] for r in rs], 100)} | {q} | " + " | ".join(cells) + " |")
    out += ["", "### Predict throughput (same gold test texts, this machine)", "",
            "| data | teacher | student chunks/s | this teacher items/s | embedded default teacher items/s | "
            "student / embedded teacher | int8 ONNX student chunks/s | int8 / embedded teacher | "
            "int8 labels = student's | int8 acc |", "|---|---|---|---|---|---|---|---|---|---|"]
    for (ds, t), rs in g.items():
        out.append(f"| {ds} | {t} | {ms([r['student_chunks_per_s'] for r in rs])} | "
                   f"{ms([r['teacher_items_per_s'] for r in rs])} | "
                   f"{ms([r.get('embedded_teacher_items_per_s') for r in rs], fmt='.2f')} | "
                   f"{times([speedup(r) for r in rs])} | "
                   f"{ms([r.get('student_int8_chunks_per_s') for r in rs])} | "
                   f"{times([r.get('speedup_int8_vs_embedded') for r in rs])} | "
                   f"{ms([r.get('int8_same_labels') for r in rs], 100)}% | "
                   f"{ms([r.get('student_int8_acc') for r in rs], 100)} |")
    out += ["", targets(rows)]
    return "\n".join(out)


def targets(rows: list[dict]) -> str:
    """Each target, met or missed, with the number."""
    lines = ["### Targets"]
    for (ds, t), rs in groups(rows).items():
        vs_gold = statistics.fmean(r["student_vs_gold_points"] for r in rs)
        vs_teacher = statistics.fmean(r["student_vs_teacher_points"] for r in rs)
        if t == "fake90":
            ok = "met" if vs_gold >= TARGET_VS_GOLD else "MISSED"
            lines.append(f"- {ds} / {t}: student − gold-label student = {vs_gold:+.1f} points "
                         f"(target ≥ {TARGET_VS_GOLD:+.0f}): {ok}")
        ok = "met" if vs_teacher >= TARGET_VS_TEACHER else "MISSED"
        lines.append(f"- {ds} / {t}: student − teacher = {vs_teacher:+.1f} points "
                     f"(target ≥ {TARGET_VS_TEACHER:+.0f}): {ok}")
        speeds = [s for s in map(speedup, rs) if s is not None]
        if speeds:
            speed = statistics.fmean(speeds)
            ok = "met" if speed >= TARGET_SPEEDUP else "MISSED"
            lines.append(f"- {ds} / {t}: student throughput = {speed:.0f}x the embedded default teacher's "
                         f"(target ≥ {TARGET_SPEEDUP:.0f}x): {ok}")
        int8 = [r["speedup_int8_vs_embedded"] for r in rs if r.get("speedup_int8_vs_embedded")]
        if int8:
            speed = statistics.fmean(int8)
            ok = "met" if speed >= TARGET_SPEEDUP else "MISSED"
            lines.append(f"- {ds} / {t}: int8 ONNX student throughput = {speed:.0f}x the embedded default "
                         f"teacher's (target ≥ {TARGET_SPEEDUP:.0f}x): {ok}")
    return "\n".join(lines)


def speedup(row: dict) -> float | None:
    """Student chunks/s over the embedded teacher's items/s (older result files: gemma rows only)."""
    if row.get("speedup_vs_embedded") is not None:
        return row["speedup_vs_embedded"]
    return row["speedup"] if row["teacher"] == "gemma" else None


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(rows: list[dict], prefix: str = "") -> list[Path]:
    """bench/plots/<prefix>curve_<dataset>.png: student gold accuracy vs LLM-labeled chunks, per teacher."""
    if not rows:
        return []
    plt = _plt()
    PLOTS.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in dict.fromkeys(r["dataset"] for r in rows):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        gold_pts: dict[int, list[float]] = defaultdict(list)
        for i, ((d, t), rs) in enumerate(groups([r for r in rows if r["dataset"] == ds]).items()):
            color = f"C{i}"
            pts: dict[int, list[float]] = defaultdict(list)
            for r in rs:
                for p in r["curve"]:
                    pts[p["n"]].append((p["train"], p["student_acc"]))
                    gold_pts[p["train"]].append(p["gold_student_acc"])
            xs = [statistics.fmean(v[0] for v in pts[n]) for n in sorted(pts)]
            ys = [100 * statistics.fmean(v[1] for v in pts[n]) for n in sorted(pts)]
            ax.plot(xs, ys, "o-", color=color, label=f"student on {t} labels")
            ax.axhline(100 * statistics.fmean(r["teacher_acc"] for r in rs), color=color, ls=":",
                       label=f"{t} teacher")
        gx = sorted(gold_pts)
        ax.plot(gx, [100 * statistics.fmean(gold_pts[x]) for x in gx], "k^--", label="student on gold labels")
        ax.set_xlabel("training chunks (LLM-labeled)")
        ax.set_ylabel("accuracy on gold test split (%)")
        ax.set_title(f"{ds}: learning curve")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
        path = PLOTS / f"{prefix}curve_{ds}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_fewshot(result: dict, path: Path) -> Path:
    """Accuracy vs examples per class: the LLM few-shot and each student, mean ± sd over seeds."""
    plt = _plt()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for i, (who, series) in enumerate(result["curves"].items()):
        ks = sorted(int(k) for k in series)
        means = [100 * statistics.fmean(series[str(k)]) for k in ks]
        sds = [100 * (statistics.stdev(series[str(k)]) if len(series[str(k)]) > 1 else 0.0) for k in ks]
        ax.errorbar(ks, means, yerr=sds, marker="o", capsize=3, color=f"C{i}", label=who)
    ax.axhline(100 * result["majority"], color="grey", ls=":", label="majority class")
    ax.set_xlabel("gold examples per class")
    ax.set_ylabel(f"accuracy on {result['n_items']} held-out items (%)")
    ax.set_title(f"{result['dataset']}: few-shot LLM vs students")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


NOTES = """\
How to read this:
- Every accuracy is on a gold test split the loop never sees (BBC: 40 articles per topic held
  out; drug reviews: the package's own test file). The loop's own "test set" is a sample of the
  pool labeled by the large LLM, as in `labelloop run`; the gold split is only used here.
- "gold-label student" is the same student class (labelloop's defaults: MiniLM embeddings +
  logistic regression) trained on the same chunks with their human labels.
- Nothing was tuned: every model runs with labelloop's default settings, so no number here was
  chosen by looking at a test split.
- The fake teacher is right with a fixed probability per text and gives a confidence of
  0.70-0.99 when right and 0.35-0.65 when wrong, so the "low-confidence" review queue is an
  oracle with it; with Gemma the confidence is honest.
- The simulated reviewer reviews training chunks only, in each queue's order, and writes
  through the review app's own action code; the student is then retrained once.
- Timings and throughputs depend on what else ran on the machine: each result file records
  the load average when it was written (listed above); above 2 on 2 cores, they understate both sides.
"""


def active_section(active: dict) -> list[str]:
    """RESULTS.md lines for a bench_active.py result file (its tables are written by that script)."""
    a, z = active.get("args", {}), active.get("sizes", {})
    return ["## Spend less on the LLM: sampling, stopping, label errors (bench/bench_active.py)", "",
            f"Strategies {a.get('strategies')}; seeds {a.get('seeds')}; small model right "
            f"{a.get('small_acc')}, large model right {a.get('large_acc')} (fake teacher); pool {z.get('pool')} "
            f"chunks in {a.get('order')} order, first batch {z.get('first')}, {z.get('rounds')} rounds of "
            f"{z.get('step')}; gold test split {z.get('test')}. Target accuracy = sequential's final gold "
            f"accuracy − {a.get('slack')}. Plots: bench/plots/active_<dataset>.png. Run time "
            f"{active.get('seconds', 0) / 60:.0f} min.", "", active["table"], ""]


def teacher_section(teacher: dict) -> list[str]:
    """RESULTS.md lines for a bench_teacher.py result file: the embedded teacher, model by model."""
    a = teacher.get("args", {})
    rows = teacher.get("rows", [])
    lines = ["## The embedded teacher (bench/bench_teacher.py)", "",
             f"Each packaged model writes its own rules (the large role's code path), then labels {a.get('n')} items "
             f"of each gold test split; the prompt order and calibration are chosen on {a.get('dev')} dev items "
             "drawn from the pool, never from the test split (ties go to labelloop's default: text-then-task, "
             f"calibrated). Seed {a.get('seed')}. Accuracy and macro-F1 in %, seconds per label on 2 cores.", "",
             teacher["table"], "", "### Targets (embedded default, its own rules)"]
    targets = {"bbc": 0.85, "drugs2": 0.75}
    default = "qwen2.5-coder-1.5b"
    for r in rows:
        if r["model"] == default and r["data"] in targets:
            ok = "met" if r["accuracy"] >= targets[r["data"]] else "MISSED"
            lines.append(f"- {r['data']}: {100 * r['accuracy']:.1f}% (target ≥ {100 * targets[r['data']]:.0f}%): {ok}; "
                         f"Gemma 3 270M (the old default): {next((100 * g['accuracy'] for g in rows if g['model'] == 'gemma-3-270m' and g['data'] == r['data']), float('nan')):.1f}%")
    lines.append("")
    return lines


def students_section(files: list[dict]) -> list[str]:
    """RESULTS.md lines for bench_student_choice.py result files: students under a 90% teacher, speed, rare class."""
    lines = ["## Which student (bench/bench_student_choice.py)", "",
             "The same training texts with two label sets: gold, and a teacher right 90% of the time whose errors "
             "are spread evenly (seeded). Each student is fitted as the loop fits it (the teacher's labels that "
             "confident learning flags are left out) and scored on the gold test split (drugs: the package's "
             "whole test split; BBC: 40 per topic). Accuracy in %, fit seconds on 2 cores.", ""]
    # A later file's run of the same data set, student and labels replaces an earlier one's in the targets.
    rows = list({(r["data"], r["student"], r["labels"]): r for f in files for r in f.get("students", [])}.values())
    for f in files:
        a = f.get("args", {})
        table = f["table"].split("\n")
        if not f.get("students"):  # a run of the other sections only: no empty students table
            table = table[3:]
        lines += [f"`{' '.join(_cli(a))}` (commit {f.get('commit')}, {f.get('seconds', 0) / 60:.0f} min):", "",
                  "\n".join(table), ""]
    lines.append("### Targets (issue: the right student for the task)")

    def best(data: str, labels: str = "teacher90"):
        rs = [r for r in rows if r["data"] == data and r["labels"] == labels]
        return max(rs, key=lambda r: r["accuracy"]) if rs else None

    for data, target in (("drugs2", 0.80), ("drugs3", 0.68)):
        b = best(data)
        if b:
            ok = "met" if b["accuracy"] >= target else "MISSED"
            lines.append(f"- {data}, teacher right 90%: best student {b['student']} {100 * b['accuracy']:.1f}% "
                         f"(target ≥ {100 * target:.0f}%): {ok}; student − teacher {100 * (b['accuracy'] - 0.9):+.1f} "
                         f"points{' (target ≥ −10)' if data == 'drugs2' else ''}")
    by = {(r["data"], r["student"], r["labels"]): r for r in rows}
    t, g = by.get(("bbc", "head-minilm", "teacher90")), by.get(("bbc", "head-minilm", "gold"))
    if t and g:
        d = 100 * (t["accuracy"] - g["accuracy"])
        lines.append(f"- bbc: default student − gold-label student = {d:+.1f} points (target ≥ −1): "
                     f"{'met' if d >= -1.0 - 1e-9 else 'MISSED'}")
    latest = {key: next(f for f in reversed(files) if f.get(key)) for key in ("rare", "throughput", "iteration")
              if any(f.get(key) for f in files)}  # a later file's rerun supersedes an earlier one's
    for key, f in latest.items():
        if key == "rare":
            ref = f["rare"][0]["macro_f1"]
            top = max((r for r in f["rare"][1:] if "not in labelloop" not in r["lever"]), key=lambda r: r["macro_f1"])
            d = 100 * (top["macro_f1"] - ref)
            lines.append(f"- rare class: best lever ({top['lever']}) {d:+.1f} macro-F1 points from the gold-label "
                         f"student (target within 3): {'met' if d >= -3 else 'MISSED'}")
            default = next((r for r in f["rare"] if "the default)" in r["lever"]), None)
            if default is not None:
                d = 100 * (default["macro_f1"] - ref)
                lines.append(f"- rare class, labelloop's defaults ({default['lever']}): {d:+.1f} macro-F1 points "
                             f"(target within 3): {'met' if d >= -3 else 'MISSED'}")
        if key == "throughput":
            tp = f["throughput"]
            vs_head = tp["static"]["chunks_per_s"] / tp["head-minilm"]["chunks_per_s"]
            vs_teacher = tp["static"]["chunks_per_s"] / tp["teacher"]["items_per_s"]
            lines.append(f"- static throughput: {vs_teacher:.0f}x the embedded teacher (target ≥ 100x), "
                         f"{vs_head:.0f}x the MiniLM head (target ≥ 10x): "
                         f"{'met' if vs_teacher >= 100 and vs_head >= 10 else 'MISSED'}")
        if key == "iteration":
            it = f["iteration"]
            lines.append(f"- one embedding-head round on {it['chunks']} chunks: {it['embedding_head_cold_s']:.0f} s "
                         f"with new embeddings (target < 60 s): {'met' if it['embedding_head_cold_s'] < 60 else 'MISSED'}; "
                         f"auto {it['auto_s']:.0f} s with a {it['auto_budget_s']:g} s budget")
    lines.append("")
    return lines


def _cli(a: dict) -> list[str]:
    """The command line of a bench_student_choice.py run, with the options that shaped it."""
    out = ["bench_student_choice.py"]
    datasets = [d for d in str(a.get("datasets", "")).split(",") if d and d != "none"]
    out += ["--datasets", ",".join(datasets) or "none"]
    if datasets:
        out += ["--students", ",".join(a["students"]) if isinstance(a.get("students"), list) else str(a.get("students"))]
    if (datasets and "auto" in a.get("students", [])) or a.get("iter_n"):
        out += ["--budget", f"{a.get('budget'):g}"]
    for key in ("epochs", "max_len", "setfit_iterations"):
        if a.get(key):
            out += [f"--{key.replace('_', '-')}", str(a[key])]
    for key, off in (("no_rare", "--no-rare"), ("no_throughput", "--no-throughput")):
        if a.get(key):
            out.append(off)
    for key in ("soft_n", "iter_n"):
        if a.get(key) == 0:
            out += [f"--{key.replace('_', '-')}", "0"]
    return out


def multilabel_section(result: dict) -> list[str]:
    """RESULTS.md lines for a bench_multilabel.py result file: label sets, teacher vs student vs gold."""
    from bench_multilabel import table

    d = result["data"]
    lines = ["## Multi-label (bench/bench_multilabel.py)", "",
             f"BBC News as label sets (bench/notes/multilabel-data.md): single articles and pairs of two articles "
             f"of different topics joined into one document (labels: both topics), each article cut to keep a "
             f"document one chunk. Training pool {d['pool']}, gold dev split {d['dev']} (the only split any "
             f"choice was made on), gold test split {d['test']} ({d['test_joined']} joined). The default student "
             "(embedding-head, MiniLM, one logistic regression per label) is fitted as the loop fits it on the "
             "teacher's sets, and on the gold sets of the same documents. Scores in % on the gold test split; "
             "95% intervals by bootstrap over documents.", "", table(result), ""]
    for teacher, info in result["teachers"].items():
        extra = f", {info['per_chunk_s']} s per document" if "per_chunk_s" in info else ""
        lines.append(f"- {teacher}: {info['seconds']} s to label{extra}; unreadable answers: {info['unreadable']}.")
    gaps = [f"{r['teacher']} N={r['n']}: {100 * r['gap_micro_f1']:+.1f}" for r in result["rows"]]
    lines += ["", "Student on the teacher's sets minus the same student on gold sets, micro-F1 points: "
              + "; ".join(gaps) + ".", ""]
    return lines


def results_md(loop: dict | None, fewshot: dict | None, extra: str = "", active: dict | None = None,
               teacher: dict | None = None, students: list[dict] | None = None,
               multilabel: dict | None = None) -> str:
    """bench/RESULTS.md from the loop, few-shot, active-learning and teacher result files."""
    env = (loop or fewshot or active or teacher or {}).get("env", {})
    envs = dict((loop or {}).get("envs", {}))
    envs.update({name: part["env"] for name, part in (("few-shot", fewshot), ("active", active)) if part})
    if teacher:
        envs["teacher"] = {k: teacher.get(k) for k in ("commit", "date", "load_average")}
    for i, part in enumerate(students or []):
        envs[f"student-choice {i + 1}"] = {k: part.get(k) for k in ("commit", "date", "load_average")}
    if multilabel:
        envs["multilabel"] = {k: multilabel["environment"].get(k) for k in ("commit", "date", "load_average")}
    out = ["# Benchmark results", "",
           f"Machine: {env.get('machine', '?')}; Python {env.get('python', '?')}. Each result file, with the "
           "commit that produced it and the load average (1, 5, 15 min) when it was written:", "",
           *[f"- {name}: commit {e.get('commit', '?')}, {e.get('date', '?')}, load {e.get('load_average', '?')}"
             for name, e in envs.items()],
           ""]
    if loop:
        a = loop.get("args", {})
        out += ["## Bootstrap loop (bench/bench_loop.py)", "",
                f"Data sets {a.get('datasets')}; teachers {a.get('teachers')}; seeds {a.get('seeds')}; "
                f"quick={a.get('quick')}. Run time {loop.get('seconds', 0) / 60:.0f} min. "
                "Learning curves: bench/plots/curve_<dataset>.png.", "",
                loop_tables(loop["rows"]), ""]
        for f in loop.get("failures", []):
            out.append(f"- FAILED: {f}")
    if fewshot:
        a = fewshot.get("args", {})
        out += ["## Few-shot LLM vs students (bench/bench_fewshot.py)", "",
                "Plots: bench/plots/fewshot_<dataset>.png. The LLM is Gemma 3 270M (embedded, "
                "calibrated class log-probs, n_ctx 4096, examples cut to fit); students are labelloop's "
                f"embedding-head and SetFit (setfit_iterations {a.get('setfit_iterations') or 20}).", ""]
        from bench_fewshot import table

        out += [table(fewshot["results"]), ""]
    if active:
        out += active_section(active)
    if teacher:
        out += teacher_section(teacher)
    if students:
        out += students_section(students)
    if multilabel:
        out += multilabel_section(multilabel)
    out += [extra, NOTES]
    return "\n".join(out)


def result_files(pattern: str) -> list[tuple[Path, dict]]:
    """(path, parsed JSON) of every result file matching the glob, oldest name first."""
    import json

    return [(f, json.loads(f.read_text())) for f in sorted((Path(__file__).parent / "results").glob(pattern))]


def newest(pattern: str) -> dict | None:
    """The newest result file matching the glob, or None."""
    found = result_files(pattern)
    return found[-1][1] if found else None


def fewshot_merged(pattern: str) -> dict | None:
    """Every few-shot result file matching the glob as one (their per-data-set results joined)."""
    parts = [p for _, p in result_files(pattern)]
    if not parts:
        return None
    out = dict(parts[-1])
    out["results"] = [r for p in parts for r in p.get("results", [])]
    return out


def merged(pattern: str) -> dict | None:
    """Every loop result file matching the globs (comma-separated) as one: rows and failures joined in
    file order, and a later file's row replacing an earlier one's for the same data set, teacher and seed."""
    found = [hit for glob in pattern.split(",") if glob.strip() for hit in result_files(glob.strip())]
    if not found:
        return None
    files, parts = [f for f, _ in found], [p for _, p in found]
    out = dict(parts[-1])
    rows: dict = {}
    for p in parts:
        for r in p.get("rows", []):
            rows[(r["dataset"], r["teacher"], r["seed"])] = r  # a rerun keeps the first run's place
    out["rows"] = list(rows.values())
    out["failures"] = [f for p in parts for f in p.get("failures", [])]
    out["seconds"] = sum(p.get("seconds", 0) for p in parts)
    out["args"] = {k: sorted({str(p.get("args", {}).get(k)) for p in parts}) for k in ("datasets", "teachers", "seeds", "quick")}
    out["files"] = [f.name for f in files]
    out["envs"] = {f.stem: p.get("env", {}) for f, p in zip(files, parts)}
    return out


if __name__ == "__main__":
    import argparse
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    ap = argparse.ArgumentParser(description="Write bench/RESULTS.md from result files.")
    ap.add_argument("--loop", default="*-loop.json",
                    help="globs under bench/results/, comma-separated; every match is merged, a later file's run "
                         "of the same data set, teacher and seed replacing an earlier one's")
    ap.add_argument("--fewshot", default="*-fewshot.json", help="glob; every match is merged")
    ap.add_argument("--active", default="*-active.json")
    ap.add_argument("--out", default=str(Path(__file__).parent / "RESULTS.md"))
    ap.add_argument("--teacher", default="*-teacher.json")
    ap.add_argument("--multilabel", default="*-multilabel.json", help="glob; the newest match")
    ap.add_argument("--students", action="append", default=[],
                    help="bench_student_choice result files (globs), in this order; a later run's rare-class, "
                         "throughput and round sections supersede an earlier one's")
    ap.add_argument("--note", default="", help="a paragraph on what was run (added before the notes)")
    ap.add_argument("--note-file", action="append", default=[], help="files of such paragraphs, in order")
    args = ap.parse_args()
    notes = [Path(f).read_text().rstrip() for f in args.note_file] + ([args.note] if args.note else [])
    loop = merged(args.loop)
    if loop and loop["rows"]:  # one plot per data set over every merged file's rows
        plot_curves(loop["rows"])
    md = results_md(loop, fewshot_merged(args.fewshot), extra="\n\n".join(notes), active=newest(args.active),
                    teacher=newest(args.teacher),
                    students=[p for g in args.students for f, p in result_files(g) if "quick" not in f.name] or None,
                    multilabel=newest(args.multilabel))
    Path(args.out).write_text(md)
    print(md)
