"""The command line: parses arguments, calls into the package, turns errors into messages."""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from labelloop import __version__
from labelloop.errors import LabelloopError
from labelloop.serving import PART_FORMATS, RUNTIMES

app = typer.Typer(
    help="Bootstrap a small, fast text classifier from raw documents and an LLM.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
rules_app = typer.Typer(help="Show or edit the labeling rules.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")

# Piped output (CI logs, files) gets a wide console so tables are not squeezed into 80 columns.
console = Console(width=None if sys.stdout.isatty() else 130)
err_console = Console(stderr=True)
_state = {"debug": False}

ConfigArg = Annotated[Path, typer.Argument(help="Path to config.yaml.", show_default=False)]
OutputArg = Annotated[Path, typer.Argument(help="A run's output_dir (holds labelloop.db).", show_default=False)]


class LabelFormat(str, Enum):
    jsonl = "jsonl"
    csv = "csv"


class Engine(str, Enum):
    local = "local"
    ray = "ray"


Runtime = Enum("Runtime", {name: name for name in RUNTIMES}, type=str)
PredictFormat = Enum("PredictFormat", {name: name for name in PART_FORMATS}, type=str)


def _version(value: bool) -> None:
    if value:
        console.print(f"labelloop {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = None,
) -> None:
    _state["debug"] = debug


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create the starter project in.")] = Path("."),
    force: Annotated[bool, typer.Option(help="Overwrite an existing config.yaml.")] = False,
) -> None:
    """Write a commented starter config.yaml (and an empty input folder)."""
    from labelloop.project.starter import write_starter

    path = write_starter(directory, force=force)
    console.print(f"Wrote {path}. Put documents in {directory / 'input'}, then run `labelloop run {path}`.")


@app.command()
def ingest(
    config: ConfigArg,
    text_column: Annotated[
        Optional[str], typer.Option(help="Column/key holding the text in CSV and JSONL (default: text).")
    ] = None,
) -> None:
    """Read the input folder, chunk it, and store the chunks in the project file."""
    from labelloop.config import load_config

    cfg = load_config(config)
    from labelloop.ingest.pipeline import ingest as run_ingest
    from labelloop.store import Store

    store = Store(cfg.db_path)
    report = run_ingest(cfg, store, text_column=text_column)
    console.print(report.render())


@app.command()
def status(output_dir: OutputArg) -> None:
    """Counts of chunks, labels by source and class, LLM calls, tokens, cost."""
    from labelloop.project.status import render_status
    from labelloop.store import Store

    store = Store(_db(output_dir), create=False)
    console.print(render_status(store))


@app.command()
def plan(config: ConfigArg) -> None:
    """Estimate the most LLM calls, tokens and cost this config can spend."""
    from labelloop.config import load_config
    from labelloop.ingest.pipeline import count_chunks
    from labelloop.loop.plan import estimate

    cfg = load_config(config)
    n_chunks, avg_chars = count_chunks(cfg)  # what ingest would make; nothing is written
    console.print(estimate(cfg, n_chunks, avg_chars=avg_chars).render())


@app.command()
def run(config: ConfigArg) -> None:
    """Ingest, write rules, label, and train students until good enough; then export."""
    from labelloop.config import load_config

    cfg = load_config(config)
    from labelloop.loop.runner import run as run_loop

    run_loop(cfg, console=console)


@rules_app.command("show")
def rules_show(
    output_dir: OutputArg,
    version: Annotated[Optional[int], typer.Option(help="Rules version (default: latest).")] = None,
) -> None:
    """Print the labeling rules."""
    from labelloop.store import Store

    store = Store(_db(output_dir), create=False)
    rules = store.rules(version)
    if rules is None:
        raise LabelloopError(
            f"no rules{'' if version is None else f' version {version}'} in {output_dir}; "
            "`labelloop run CONFIG` writes them (see `labelloop rules show --help`)"
        )
    console.print(f"[bold]Rules v{rules.version}[/bold] by {rules.author} ({rules.created_at})\n")
    console.print(rules.text, markup=False, highlight=False)


@rules_app.command("edit")
def rules_edit(
    output_dir: OutputArg,
    from_file: Annotated[
        Optional[Path], typer.Option("--from-file", help="Take the new rules from this file instead of $EDITOR.")
    ] = None,
) -> None:
    """Edit the rules (opens $EDITOR); saves a new version. The next run re-labels only what it must."""
    from labelloop.llm.rules import edit_rules, stale_llm_labels
    from labelloop.store import Store

    store = Store(_db(output_dir), create=False)
    current = store.rules()
    old_text = current.text if current else ""
    if from_file is not None:
        new_text = from_file.read_text(encoding="utf-8")
    else:
        new_text = typer.edit(old_text, extension=".md")
        if new_text is None:
            console.print("No change (editor closed without saving).")
            return
    if new_text.strip() == old_text.strip():
        console.print("Rules unchanged; no new version.")
        return
    rules = edit_rules(store, new_text, author="human")
    console.print(
        f"Saved rules v{rules.version}. {len(stale_llm_labels(store))} LLM label(s) will be re-labeled "
        "by the next `labelloop run`."
    )


@app.command()
def predict(
    model_dir: Annotated[Path, typer.Argument(help="A classifiers/classifier_<N> folder.")],
    input: Annotated[Path, typer.Argument(help="A .jsonl with `text`, a folder, or ingestible files.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write one row per chunk: a .jsonl file; "
                                         "with --engine ray, a new folder of part files.")],
    documents: Annotated[Optional[Path], typer.Option(
        help="Where to write one row per input (a .jsonl row, a file): \"kind\": \"document\", its chunk count, "
             "and the answer on its chunks' mean probabilities (multi-label: each label's max). Default: "
             "beside --output, as "
             "NAME.documents.jsonl (with --engine ray, a folder NAME.documents).")] = None,
    batch_size: Annotated[int, typer.Option(help="Texts per batch.")] = 64,
    text_column: Annotated[str, typer.Option(help="Column/key holding the text.")] = "text",
    engine: Annotated[Engine, typer.Option(help="local: this process; ray: Ray Data over local CPUs or a cluster.")]
    = Engine.local,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address (e.g. ray://head:10001 or auto); "
                                                   "without it --engine ray starts a local instance.")] = None,
    workers: Annotated[int, typer.Option(help="--engine ray: student actors (one CPU each).")] = 2,
    runtime: Annotated[Runtime, typer.Option(help="auto: onnxruntime when model.onnx is there, else torch.")]
    = Runtime["auto"],
    format: Annotated[PredictFormat, typer.Option("--format", help="--engine ray: part-file format.")]
    = PredictFormat["jsonl"],
) -> None:
    """Predict with a trained student; never loads an LLM. Streams: memory stays flat in the input's size."""
    from labelloop.serving.predict import documents_path, predict_path

    if engine is Engine.ray:
        from labelloop.serving.ray_predict import predict_ray

        n = predict_ray(model_dir, input, output, address=address, workers=workers, batch_size=batch_size,
                        text_column=text_column, runtime=runtime.value, fmt=format.value, documents=documents)
        console.print(f"Wrote {n} predictions to {output}/ ({format.value} part files); "
                      f"document answers to {documents or documents_path(output)}/")
        return
    if address is not None:
        raise LabelloopError(f"--address {address!r} is for --engine ray; add --engine ray or drop --address")
    n = predict_path(model_dir, input, output, batch_size=batch_size, text_column=text_column, runtime=runtime.value,
                     documents=documents)
    console.print(f"Wrote {n} predictions to {output}; document answers to {documents or documents_path(output)}")


@app.command()
def export(
    model_dir: Annotated[Path, typer.Argument(help="A classifiers/classifier_<N> folder (embedding-head student).")],
    onnx: Annotated[bool, typer.Option("--onnx", help="Write model.onnx: body, pooling, normalization and head.")]
    = False,
    int8: Annotated[bool, typer.Option("--int8", help="Quantize the ONNX weights to int8 (smaller, faster, "
                                       "slightly less accurate).")] = False,
) -> None:
    """Export a student for faster inference; predict then uses onnxruntime."""
    if not onnx:
        raise LabelloopError("nothing to export: pass --onnx (the only export format so far)")
    from labelloop.serving.onnx_export import export_onnx
    from labelloop.serving.predict import check_model_dir

    path = export_onnx(check_model_dir(model_dir), int8=int8)
    console.print(f"Wrote {path}{' (int8)' if int8 else ''}; `labelloop predict {model_dir} ...` now uses onnxruntime")


@app.command()
def serve(
    model_dir: Annotated[Path, typer.Argument(help="A classifiers/classifier_<N> folder.")],
    host: Annotated[str, typer.Option(help="Interface to bind; non-loopback needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8421,
    token: Annotated[
        Optional[str], typer.Option(help="Access token (or env LABELLOOP_SERVE_TOKEN).", envvar="LABELLOOP_SERVE_TOKEN")
    ] = None,
    runtime: Annotated[Runtime, typer.Option(help="auto: onnxruntime when model.onnx is there, else torch.")]
    = Runtime["auto"],
) -> None:
    """Serve a student over HTTP: POST /predict {"texts": [...]}.

    Each text is cut into chunks as predict cuts an input; the reply holds `predictions` (one document
    answer per text, on its chunks' pooled probabilities) and `chunks` (one row per chunk).
    """
    from labelloop.serving.http import serve as serve_model

    serve_model(model_dir, host=host, port=port, token=token, runtime=runtime.value)


@app.command()
def review(
    output_dir: OutputArg,
    host: Annotated[str, typer.Option(help="Interface to bind; non-loopback needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8420,
    token: Annotated[
        Optional[str], typer.Option(help="Access token (or env LABELLOOP_REVIEW_TOKEN).", envvar="LABELLOOP_REVIEW_TOKEN")
    ] = None,
) -> None:
    """Open the review web app over a run's project file."""
    from labelloop.review.app import serve as serve_review

    _db(output_dir)
    serve_review(output_dir, host=host, port=port, token=token)


@app.command("export-labels")
def export_labels_cmd(
    output_dir: OutputArg,
    format: Annotated[LabelFormat, typer.Option("--format", help="Output format.")] = LabelFormat.jsonl,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="File to write.")] = None,
) -> None:
    """Write every chunk with its final label and where it came from."""
    from labelloop.project.export_labels import export_labels
    from labelloop.store import Store

    store = Store(_db(output_dir), create=False)
    out = output or (output_dir / f"labels.{format.value}")
    n = export_labels(store, out, format.value)
    console.print(f"Wrote {n} rows to {out}")


def _db(output_dir: Path) -> Path:
    db = output_dir / "labelloop.db"
    if not db.exists():
        raise LabelloopError(
            f"{str(output_dir)!r} has no labelloop.db; pass the output_dir of a run "
            "(path.output_dir in its config), or start one with `labelloop run CONFIG`"
        )
    return db


def _quiet_libraries() -> None:
    """No progress bars from model loading in our output. Hub access is the user's choice: never set here."""
    for key, value in (("HF_HUB_DISABLE_PROGRESS_BARS", "1"), ("TRANSFORMERS_VERBOSITY", "error"),
                       ("TOKENIZERS_PARALLELISM", "false")):
        os.environ.setdefault(key, value)


def main() -> None:
    """Console entry point: errors become one readable message; tracebacks only with --debug."""
    _quiet_libraries()
    try:
        app(standalone_mode=False)
    except LabelloopError as exc:
        if _state["debug"]:
            raise
        err_console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("Aborted.")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("Interrupted. Everything paid for is saved; run the same command again to resume.")
        sys.exit(130)
    except Exception as exc:  # usage errors (typer's click exceptions) and the unexpected
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        if _state["debug"]:
            raise
        err_console.print(
            f"[bold red]unexpected error:[/bold red] {type(exc).__name__}: {escape(str(exc))}\n"
            "Run again with --debug for the traceback, and please report it."
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
