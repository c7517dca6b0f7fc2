"""Predict throughput: single process vs Ray (2 workers), torch vs ONNX vs int8, and where the time goes.

On held-out BBC News articles (true topics known) with an embedding-head student trained on
others. Every engine/runtime must give the same rows; agreement and accuracy are reported.

    .venv/bin/python bench/bench_scale.py [--articles-per-class 30] [--train-per-class 20] [--workers 2]

Prints tables and writes bench/results/<date>-scale.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))
from bench_data import bbc  # noqa: E402
from common import environment, write_results  # noqa: E402

from labelloop.classify.embedding_head import EmbeddingHeadStudent  # noqa: E402
from labelloop.classify.head import head_proba  # noqa: E402
from labelloop.serving.onnx_export import export_onnx  # noqa: E402
from labelloop.serving.predict import load_predictor, predict_path, read_inputs, student_input_for  # noqa: E402


def rows_of(path: Path) -> list[dict]:
    """Prediction rows of a file or a folder of part files, by (input, position)."""
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    rows = [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]
    return sorted(rows, key=lambda r: (r["input"], r["position"]))


def compare(rows: list[dict], ref: list[dict]) -> dict:
    """Label agreement with the reference rows, largest probability gap, accuracy vs the article's topic."""
    assert [(r["input"], r["position"]) for r in rows] == [(r["input"], r["position"]) for r in ref], "rows differ"
    agree = np.mean([a["label"] == b["label"] for a, b in zip(rows, ref)])
    gap = max(abs(a["probs"][c] - b["probs"][c]) for a, b in zip(rows, ref) for c in b["probs"])
    truth = [r["input"].split("__")[0] for r in rows]
    acc = np.mean([r["label"] == t for r, t in zip(rows, truth)])
    return {"agreement": float(agree), "max_prob_gap": float(gap), "accuracy_vs_topic": float(acc)}


def make_models(tmp: Path, train: list, int8: bool) -> dict[str, Path]:
    """The student saved three ways: torch only, + model.onnx, + int8 model.onnx."""
    torch_dir = tmp / "torch"
    EmbeddingHeadStudent(sorted({c for _, c in train})).fit([t for t, _ in train], [c for _, c in train]).save(torch_dir)
    models = {"torch": torch_dir}
    for name, quant in (("onnx", False), ("int8", True)) if int8 else (("onnx", False),):
        shutil.copytree(torch_dir, tmp / name)
        start = time.perf_counter()
        export_onnx(tmp / name, int8=quant)
        print(f"export {name}: {time.perf_counter() - start:.1f} s, {(tmp / name / 'model.onnx').stat().st_size / 1e6:.0f} MB")
        models[name] = tmp / name
    return models


def write_corpus(folder: Path, test: list) -> Path:
    folder.mkdir(parents=True)
    for i, (text, topic) in enumerate(test):
        (folder / f"{topic}__{i:04d}.txt").write_text(text, encoding="utf-8")
    return folder


def breakdown(model_dir: Path, corpus: Path, runtime: str) -> dict:
    """Seconds per stage of the single engine, for all chunks of the corpus."""
    t: dict[str, float] = {}
    start = time.perf_counter()
    student = load_predictor(model_dir, runtime)
    prepare = student_input_for(model_dir)
    t["load"] = time.perf_counter() - start
    start = time.perf_counter()
    rows = read_inputs(corpus, prepare)
    t["read+chunk"] = time.perf_counter() - start
    texts = [r["text"] for r in rows]
    start = time.perf_counter()
    ready = prepare(texts)
    t["truncate"] = time.perf_counter() - start
    if runtime == "onnx":
        tokenize, embed = student.tokenize, student.encode_tokens
        coef, intercept, bs = student.coef_, student.intercept_, student.batch_size
    else:
        body = student.encoder_.model
        body.max_seq_length = student.encoder_.max_seq_length
        tokenize = getattr(body, "preprocess", None) or body.tokenize  # sentence-transformers 6 renamed it
        coef, intercept, bs = student.coef_, student.intercept_, student.encoder_.batch_size

        def embed(features):
            import torch

            with torch.inference_mode():
                out = body(features)["sentence_embedding"]
            return torch.nn.functional.normalize(out, dim=1).numpy()

    order = np.argsort([-len(x) for x in ready], kind="stable")  # both runtimes batch by length
    embs = np.zeros((len(ready), coef.shape[1]), dtype=np.float32)
    t["tokenize"] = t["encode"] = 0.0
    for s in range(0, len(ready), bs):
        idx = order[s:s + bs]
        a = time.perf_counter()
        feats = tokenize([ready[i] for i in idx])
        b = time.perf_counter()
        embs[idx] = embed(feats)
        t["tokenize"] += b - a
        t["encode"] += time.perf_counter() - b
    start = time.perf_counter()
    probs = head_proba(embs, coef, intercept)
    t["head"] = time.perf_counter() - start
    start = time.perf_counter()
    with open(os.devnull, "w") as fh:
        for r, p in zip(rows, probs):
            fh.write(json.dumps({**r, "probs": dict(zip(student.classes_, map(float, p)))}) + "\n")
    t["write"] = time.perf_counter() - start
    return {"chunks": len(rows), "seconds": t}


def timed_single(model_dir: Path, corpus: Path, out: Path, runtime: str) -> dict:
    start = time.perf_counter()
    n = predict_path(model_dir, corpus, out, progress=False, runtime=runtime)
    wall = time.perf_counter() - start
    return {"chunks": n, "seconds": wall, "chunks_per_s": n / wall}


def timed_ray(model_dir: Path, corpus: Path, out: Path, runtime: str, workers: int) -> dict:
    from labelloop.serving.ray_predict import predict_ray

    start = time.perf_counter()
    n = predict_ray(model_dir, corpus, out, workers=workers, runtime=runtime)
    wall = time.perf_counter() - start
    return {"chunks": n, "seconds": wall, "chunks_per_s": n / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles-per-class", type=int, default=30, help="held-out BBC articles per topic to predict")
    parser.add_argument("--train-per-class", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--no-int8", action="store_true")
    args = parser.parse_args()
    pool, test = bbc(test_per_class=args.articles_per_class, seed=7)
    train = [item for c in sorted({c for _, c in pool}) for item in [x for x in pool if x[1] == c][:args.train_per_class]]
    results: dict = {"env": environment(), "args": vars(args), "cpus": len(os.sched_getaffinity(0)),
                     "load_avg_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        models = make_models(tmp, train, int8=not args.no_int8)
        corpus = write_corpus(tmp / "corpus", test)
        single = {}
        for name, model in models.items():
            runtime = "torch" if name == "torch" else "onnx"
            single[name] = timed_single(model, corpus, tmp / f"{name}.jsonl", runtime)
            print(f"single {name}: {single[name]['chunks']} chunks, {single[name]['chunks_per_s']:.1f} chunks/s")
        ref = rows_of(tmp / "torch.jsonl")
        quality = {name: compare(rows_of(tmp / f"{name}.jsonl"), ref) for name in models}
        results.update(single=single, quality=quality)
        results["breakdown"] = {rt: breakdown(models[rt], corpus, rt) for rt in ("torch", "onnx")}
        if not args.no_ray:
            results["ray"] = ray_runs(models, corpus, tmp, ref, args.workers)
    results["load_avg_end"] = os.getloadavg()
    print_tables(results)
    write_results("scale", results)


def ray_runs(models: dict[str, Path], corpus: Path, tmp: Path, ref: list[dict], workers: int) -> dict:
    """Ray started once (its start-up timed apart), then each runtime's pipeline (actors load the model)."""
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    out = {"ray_init_s": time.perf_counter() - start}
    try:
        for name in ("torch", "onnx"):
            res = timed_ray(models[name], corpus, tmp / f"ray_{name}", "torch" if name == "torch" else "onnx", workers)
            res.update(compare(rows_of(tmp / f"ray_{name}"), ref))
            out[name] = res
            print(f"ray {name}: {res['chunks_per_s']:.1f} chunks/s, agreement with single torch {res['agreement']:.4f}")
    finally:
        ray.shutdown()
    return out


def print_tables(r: dict) -> None:
    print(f"\nPredict throughput on {r['single']['torch']['chunks']} chunks of held-out BBC articles, "
          f"{r['cpus']} CPUs, load average {r['load_avg_start'][0]:.1f} -> {r['load_avg_end'][0]:.1f} "
          "(times include loading the model)")
    print(f"{'engine':<22} {'chunks/s':>9} {'seconds':>8} {'agree':>8} {'max |dp|':>9} {'acc vs topic':>12}")
    for name, s in r["single"].items():
        q = r["quality"][name]
        print(f"{'single ' + name:<22} {s['chunks_per_s']:>9.1f} {s['seconds']:>8.1f} {q['agreement']:>8.2%} "
              f"{q['max_prob_gap']:>9.1e} {q['accuracy_vs_topic']:>12.3f}")
    for name, s in {k: v for k, v in r.get("ray", {}).items() if isinstance(v, dict)}.items():
        print(f"{'ray ' + str(r['args']['workers']) + 'w ' + name:<22} {s['chunks_per_s']:>9.1f} {s['seconds']:>8.1f} "
              f"{s['agreement']:>8.2%} {s['max_prob_gap']:>9.1e} {s['accuracy_vs_topic']:>12.3f}")
    if "ray" in r:
        print(f"(Ray start-up, not included above: {r['ray']['ray_init_s']:.1f} s)")
    print("\nWhere the time goes (single engine, seconds for all chunks)")
    stages = list(next(iter(r["breakdown"].values()))["seconds"])
    print(f"{'runtime':<8} " + " ".join(f"{s:>11}" for s in stages))
    for rt, b in r["breakdown"].items():
        print(f"{rt:<8} " + " ".join(f"{b['seconds'][s]:>11.2f}" for s in stages))


if __name__ == "__main__":
    main()
