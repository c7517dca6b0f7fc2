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
        console.print(f"Predicted {n_pred} chunks without a label (none from an LLM or a person): "
                      f"{outputs.predictions_path(out)}")
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
    """The test-set debug file: each test chunk's truth (labelloop.labels.teacher_truth), LLM reply and human label."""
    multi = config.multi_label
    key = outputs.label_key(config)
    test = store.chunks("test")
    held = store.labels_of_chunks([c.id for c in test]) if test else {}
    rows = []
    for c in test:
        labels = policy.on_test_set(held.get(c.id, {}))
        truth, large = policy.teacher_truth(labels), labels.get(policy.LARGE)
        rows.append({
            "chunk_id": c.id,
            "source": c.source,
            "text": c.text,
            key: policy.label_value(truth, multi),
            "label_source": truth.source if truth else None,
            "status": policy.status_of(labels),
            f"llm_{key}": policy.label_value(large, multi),
            "confidence": large.confidence if large else None,
            "raw": large.raw if large else None,
            "reason": large.reason if large else None,
            f"human_{key}": policy.label_value(labels.get(policy.HUMAN), multi),
        })
    files.write_yaml(outputs.truth_path(out), rows)


def chunks_to_predict(store: Store) -> list:
    """The chunks the end-of-run predictions cover (labelloop.labels.needs_prediction), in chunk order."""
    held = store.labels_of_chunks()
    return [c for c in store.chunks() if policy.needs_prediction(held.get(c.id, {}))]


def predict_rest(store: Store, model_path: str, out, *, progress: bool, batch_size: int = 64) -> int:
    """Predict every chunk without a label (labelloop.labels.needs_prediction); write predictions.jsonl."""
    from labelloop.classify import load_student
    from labelloop.serving.predict import iter_predictions, student_input_for

    rest = chunks_to_predict(store)
    student = load_student(model_path)
    rows = (
        {"chunk_id": c.id, "source_file": c.source, "position": c.position, **row}
        for c, row in zip(
            rest, iter_predictions(student, [c.text for c in rest], student_input_for(model_path), batch_size,
                                   progress=progress)
        )
    )
    return files.write_jsonl(outputs.predictions_path(out), rows)
