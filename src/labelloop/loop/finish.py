"""After the loop: the test-set debug file, predictions on the rest, meta dataset, report."""

from __future__ import annotations

from rich.console import Console

from labelloop.config import Config
from labelloop import files
from labelloop import labels as policy
from labelloop.loop import outputs
from labelloop.store import Store


def write_final_outputs(config: Config, store: Store, n: int, contract, console: Console, *, progress: bool) -> str | None:
    out = config.output_dir
    _write_truth(config, store, out)
    final = next((it for it in reversed(store.iterations()) if it.status == "done" and it.model_path), None)
    model_path = final.model_path if final else None
    if config.classification.predict_on_whole_set_at_the_end and model_path:
        n_pred = predict_rest(store, model_path, out, progress=progress)
        console.print(f"Predicted {n_pred} chunks the LLM did not label: {outputs.predictions_path(out)}")
    if config.meta_datagen.do_meta_datagen:
        from labelloop.llm.meta_datagen import write_meta_dataset

        path = out / "meta_datagen" / "meta_dataset.jsonl"
        write_meta_dataset(store, config, path)
        console.print(f"Meta dataset: {path}")
    from labelloop.report import write_report

    report = write_report(store, config, out / "report.html")
    console.print(f"Report: {report}")
    if model_path:
        console.print(f"Final classifier: {model_path}  (`labelloop predict {model_path} INPUT -o OUT.jsonl`)")
    return model_path


def _write_truth(config: Config, store: Store, out) -> None:
    multi = config.multi_label
    key = outputs.label_key(config)
    large = store.labels_by_chunk(policy.LARGE)
    human = store.labels_by_chunk(policy.HUMAN)
    rows = []
    for c in store.chunks("test"):
        lab = large.get(c.id)
        rows.append({
            "chunk_id": c.id,
            "source": c.source,
            "text": c.text,
            key: (policy.label_value(lab, multi) if multi else lab.label) if lab else None,
            "status": lab.status if lab else "missing",
            "confidence": lab.confidence if lab else None,
            "raw": lab.raw if lab else None,
            "reason": lab.reason if lab else None,
            f"human_{key}": (policy.label_value(human[c.id], multi) if multi else human[c.id].label)
            if c.id in human else None,
        })
    files.write_yaml(outputs.truth_path(out), rows)


def predict_rest(store: Store, model_path: str, out, *, progress: bool, batch_size: int = 64) -> int:
    """Predict every chunk no LLM labeled; write final_classifier_output/predictions.jsonl."""
    from labelloop.classify import load_student
    from labelloop.serving.predict import iter_predictions, student_input_for

    llm_labeled = {lab.chunk_id for lab in store.labels() if lab.source in policy.PRECEDENCE}
    rest = [c for c in store.chunks() if c.id not in llm_labeled]
    student = load_student(model_path)
    rows = (
        {"chunk_id": c.id, "source_file": c.source, "position": c.position, **row}
        for c, row in zip(
            rest, iter_predictions(student, [c.text for c in rest], student_input_for(model_path), batch_size,
                                   progress=progress)
        )
    )
    return files.write_jsonl(outputs.predictions_path(out), rows)
