"""`labelloop serve`: a small HTTP API over a saved student. POST /predict {"texts": [...]}.

Each text is a document, cut into chunks by the saved contract as `labelloop predict` cuts an input.
The answer: `predictions`, one per text in order (its document row: the decision on its chunks'
pooled probabilities, with `chunks`, how many), and `chunks`, one row per chunk (`input`: the
text's index, `position`, `text`: the chunk). Both are the rows `labelloop predict` writes.

It runs behind the same guard as the review app (labelloop.web.guard): loopback Host names
only unless a token is set, a Bearer token when one is, JSON bodies only. Prediction is CPU
work, so it runs in a thread pool, never in the event loop; the folder's model.onnx is used
when it has one (as `labelloop predict` does).
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from labelloop.errors import LabelloopError
from labelloop.web.guard import Guard, is_loopback

MAX_TEXTS = 1024
TOKEN_ENV = "LABELLOOP_SERVE_TOKEN"


def create_app(model_dir: Path, *, token: str | None = None, runtime: str = "auto"):
    """The ASGI app: the student (or its ONNX export) behind the guard."""
    from labelloop.serving.predict import CHUNK, check_model_dir, load_predictor, make_chunker, pick_runtime
    from labelloop.serving.predict import predict_rows, student_input_for

    model_dir = check_model_dir(Path(model_dir))
    used = pick_runtime(model_dir, runtime)
    student = load_predictor(model_dir, used)
    prepare = student_input_for(model_dir)
    chunker = make_chunker(prepare)

    def run(texts: list[str]) -> dict:
        rows = [{"input": i, "position": j, "text": chunk}
                for i, (text, cut) in enumerate(zip(texts, chunker.chunk_many(texts)))
                for j, chunk in enumerate([c for c, _n in cut] or [text])]  # a blank text is its own one chunk
        out = list(predict_rows(student, rows, prepare))
        return {"predictions": [r for r in out if r["kind"] != CHUNK], "chunks": [r for r in out if r["kind"] == CHUNK]}

    async def predict(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "body must be JSON like {\"texts\": [\"...\"]}"}, status_code=400)
        texts = body.get("texts") if isinstance(body, dict) else None
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return JSONResponse({"error": "`texts` must be a list of strings"}, status_code=400)
        if len(texts) > MAX_TEXTS:
            return JSONResponse({"error": f"at most {MAX_TEXTS} texts per request; got {len(texts)}"}, status_code=413)
        return JSONResponse(await run_in_threadpool(run, texts))

    async def info(request: Request) -> JSONResponse:
        multi = bool(getattr(student, "multi_label", False))
        extra = {"multi_label": True, "thresholds": dict(zip(student.classes_, map(float, student.thresholds_)))} \
            if multi else {}
        return JSONResponse({"model": str(model_dir), "classes": list(student.classes_), "runtime": used, **extra})

    app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/", info)])
    return Guard(app, token=token, csrf_token=None, name="prediction server", command="labelloop serve")


def serve(model_dir: Path, host: str = "127.0.0.1", port: int = 8421, token: str | None = None,
          runtime: str = "auto") -> None:
    """Serve a student until interrupted; a non-loopback address needs a token."""
    import uvicorn

    token = token or os.environ.get(TOKEN_ENV) or None
    if not is_loopback(host) and token is None:
        raise LabelloopError(
            f"refusing to serve on {host!r} without a token: anyone who can reach it could use the model. "
            f"Pass --token SECRET (or set {TOKEN_ENV}), or bind to --host 127.0.0.1")
    app = create_app(Path(model_dir), token=token, runtime=runtime)
    print(f"labelloop serve: POST http://{host}:{port}/predict  (Ctrl+C stops it)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
