"""`labelloop serve`: a small HTTP API over a saved student. POST /predict {"texts": [...]}."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from labelloop.errors import LabelloopError

MAX_TEXTS = 1024


def create_app(model_dir: Path) -> Starlette:
    from labelloop.classify import load_student
    from labelloop.predict import iter_predictions, student_input_for

    student = load_student(model_dir)
    prepare = student_input_for(model_dir)

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
        preds = list(iter_predictions(student, texts, prepare, progress=False))
        for p in preds:
            p.pop("text")
        return JSONResponse({"predictions": preds})

    async def info(request: Request) -> JSONResponse:
        return JSONResponse({"model": str(model_dir), "classes": list(student.classes_)})

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/", info)])


def serve(model_dir: Path, host: str = "127.0.0.1", port: int = 8421) -> None:
    import uvicorn

    if not (Path(model_dir) / "labelloop.json").exists():
        raise LabelloopError(f"{str(model_dir)!r} is not a classifier folder; pass <output_dir>/classifiers/classifier_<N>")
    uvicorn.run(create_app(Path(model_dir)), host=host, port=port, log_level="info")
