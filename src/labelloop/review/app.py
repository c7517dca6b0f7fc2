"""The review web app: Starlette routes over the project's Store, and `serve` to run it."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from labelloop import labels as policy
from labelloop.errors import LabelloopError
from labelloop.review import actions, multi, queues
from labelloop.review.highlight import Highlighter
from labelloop.review.records import Record, Snapshot, classes_of, load
from labelloop.web.guard import CSRF_FIELD, Guard, is_loopback, new_csrf_token
from labelloop.store import Store

HERE = Path(__file__).parent
TOKEN_ENV = "LABELLOOP_REVIEW_TOKEN"
MAX_RULES_CHARS = 200_000
MAX_BULK = 500
SNAPSHOT_TTL_S = 2.0  # how stale the queues may be after another process (the loop) writes


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"], default_for_string=True, default=True),
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["pct"] = lambda v: "–" if v is None else f"{100 * v:.0f}%"
    env.filters["conf"] = lambda v: "–" if v is None else f"{v:.2f}"
    return env


class ReviewApp:
    """Route handlers bound to one Store; a Starlette app is built from them by `create_app`."""

    def __init__(self, store: Store, csrf_token: str):
        self.store = store
        self.csrf = csrf_token
        self.env = _env()
        self._snap: Snapshot | None = None
        self._snap_at = 0.0
        self._snap_lock = threading.Lock()

    def snapshot(self) -> Snapshot:
        """All records, re-read after this app writes or after SNAPSHOT_TTL_S (reading 10k chunks takes ~1 s)."""
        with self._snap_lock:
            if self._snap is None or time.monotonic() - self._snap_at > SNAPSHOT_TTL_S:
                self._snap, self._snap_at = load(self.store), time.monotonic()
            return self._snap

    def invalidate(self) -> None:
        with self._snap_lock:
            self._snap = None

    # ------------------------------------------------------------------ helpers

    def render(self, name: str, http_status: int = 200, **context) -> HTMLResponse:
        html = self.env.get_template(name).render(csrf_token=self.csrf, csrf_field=CSRF_FIELD, **context)
        return HTMLResponse(html, http_status)

    def common(self, snap: Snapshot) -> dict:
        listed = queues.queue_list(snap.multi_label)
        out = {
            "queues": [(q, n) for q, n in zip(listed, queues.counts(snap).values(), strict=True)],
            "class_counts": queues.class_counts(snap),
            "classes": snap.classes,
            "progress": queues.progress(snap),
            "rules": self.store.rules(),
            "multi_label": snap.multi_label,
        }
        if snap.multi_label:
            out["label_disagreements"] = queues.label_disagreements(snap)
        return out

    def error_page(self, status: int, message: str) -> HTMLResponse:
        snap = self.snapshot()
        return self.render("error.html", status, status=status, message=message, active=None, cls=None,
                           **self.common(snap))

    # ------------------------------------------------------------------ pages

    def home(self, request: Request) -> Response:
        return RedirectResponse("/queue/pending", 303)

    def queue_page(self, request: Request) -> Response:
        name = request.path_params["name"]
        snap = self.snapshot()
        try:
            queue = queues.queue_by_name(name, snap.multi_label)
        except LabelloopError as exc:
            return self.error_page(404, str(exc))
        cls = request.query_params.get("cls") or None
        items, note = queues.records(snap, name, cls)
        page_items, page, pages = queues.page_of(items, _int(request.query_params.get("page"), 1))
        highlighter = Highlighter.from_store(self.store)
        shown = [(r, highlighter.segments(r.chunk.text), self._label_rows(snap, r)) for r in page_items]
        return self.render(
            "queue.html", queue=queue, active=name, cls=cls, records=shown, page=page, pages=pages,
            total=len(items), note=note, highlight_problem=highlighter.problem, **self.common(snap))

    @staticmethod
    def _label_rows(snap: Snapshot, record: Record) -> list[multi.LabelRow] | None:
        """Multi-label: what each label of the record shows; None in a single-label project."""
        return multi.rows(record, snap.classes, snap.thresholds) if snap.multi_label else None

    def record_dict(self, snap: Snapshot, record: Record) -> dict:
        """A record as the API gives it; multi-label adds its label sets and one entry per label."""
        out = record.to_dict()
        if snap.multi_label:
            out.update(multi_label=True, suggestion_labels=record.suggestion_set,
                       per_label=[row.to_dict() for row in self._label_rows(snap, record)])
            for side, labels in (("llm", record.llm_set), (policy.STUDENT, record.student_set),
                                 (policy.HUMAN, record.human_set)):
                if out[side] is not None:
                    out[side]["labels"] = labels
        return out

    def rules_page(self, request: Request) -> Response:
        snap = self.snapshot()
        saved = request.query_params.get("saved")
        return self.render("rules.html", active="rules", cls=None, history=self.store.all_rules()[::-1],
                           saved=saved, **self.common(snap))

    async def rules_post(self, request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            return Response("415: send the rules as a form (application/x-www-form-urlencoded)", 415)
        from urllib.parse import parse_qs

        fields = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
        text = (fields.get("text") or [""])[0].replace("\r\n", "\n")
        try:
            version = await run_in_threadpool(self._save_rules, text)
        except actions.ActionError as exc:
            return await run_in_threadpool(self.error_page, exc.status, str(exc))
        return RedirectResponse(f"/rules?saved={version}", 303)

    def _save_rules(self, text: str) -> int:
        if not text.strip():
            raise actions.ActionError("the rules text is empty; write the labeling rules, or leave the page "
                                      "to keep the current version")
        if len(text) > MAX_RULES_CHARS:
            raise actions.ActionError(f"the rules text has {len(text)} characters; the limit is {MAX_RULES_CHARS}")
        current = self.store.rules()
        if current is not None and current.text == text:
            return current.version
        return self.store.add_rules(text, author=policy.HUMAN).version

    def progress_page(self, request: Request) -> Response:
        snap = self.snapshot()
        return self.render("progress.html", active="progress", cls=None, **self.common(snap))

    # ------------------------------------------------------------------ JSON API

    def api_session(self, request: Request) -> Response:
        snap = self.snapshot()
        out = {"csrf_token": self.csrf, "classes": snap.classes}
        if snap.multi_label:
            out.update(multi_label=True, thresholds=snap.thresholds)
        return JSONResponse(out)

    def api_counts(self, request: Request) -> Response:
        snap = self.snapshot()
        out = {"queues": queues.counts(snap), "classes": queues.class_counts(snap),
               "progress": queues.progress(snap)}
        if snap.multi_label:
            out["disagreements_by_label"] = queues.label_disagreements(snap)
        return JSONResponse(out)

    def api_queue(self, request: Request) -> Response:
        name = request.path_params["name"]
        snap = self.snapshot()
        try:
            queues.queue_by_name(name, snap.multi_label)
        except LabelloopError as exc:
            return JSONResponse({"error": str(exc)}, 404)
        items, note = queues.records(snap, name, request.query_params.get("cls") or None)
        page_items, page, pages = queues.page_of(items, _int(request.query_params.get("page"), 1))
        return JSONResponse({"queue": name, "count": len(items), "page": page, "pages": pages, "note": note,
                             "records": [self.record_dict(snap, r) for r in page_items]})

    def api_record(self, request: Request) -> Response:
        cid = _int(request.path_params["chunk_id"], -1)
        snap = load(self.store, [cid])
        if cid not in snap.by_id:
            return JSONResponse({"error": f"no reviewable chunk with id {cid}"}, 404)
        return JSONResponse(self.record_dict(snap, snap.by_id[cid]))

    def api_rules(self, request: Request) -> Response:
        rules = self.store.rules()
        if rules is None:
            return JSONResponse({"version": None, "text": "", "author": None})
        return JSONResponse({"version": rules.version, "text": rules.text, "author": rules.author,
                             "created_at": rules.created_at})

    async def api_label(self, request: Request) -> Response:
        body = await _json(request)
        if isinstance(body, Response):
            return body
        cid = _int(body.get("chunk_id"), None)
        if cid is None:
            return _error(400, f"chunk_id must be an integer, got {body.get('chunk_id')!r}")
        classes = await run_in_threadpool(classes_of, self.store)
        return await self._run(lambda: actions.apply(
            self.store, cid, str(body.get("action", "")), body.get("label"), _reviewer(body), classes,
            labels=body.get("labels")).to_dict())

    async def api_bulk(self, request: Request) -> Response:
        body = await _json(request)
        if isinstance(body, Response):
            return body
        ids = body.get("chunk_ids")
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids) or len(ids) > MAX_BULK:
            return _error(400, f"chunk_ids must be a list of at most {MAX_BULK} integers")

        def work() -> dict:
            outcomes = actions.bulk_accept(self.store, ids, _reviewer(body))
            return {"accepted": sum(o.action == "accept" for o in outcomes),
                    "outcomes": [o.to_dict() for o in outcomes]}

        return await self._run(work)

    async def api_undo(self, request: Request) -> Response:
        body = await _json(request)
        if isinstance(body, Response):
            return body
        count = _int(body.get("count", 1), 0)
        return await self._run(lambda: {"outcomes": [
            o.to_dict() for o in actions.undo(self.store, _reviewer(body), count)]})

    async def api_rules_post(self, request: Request) -> Response:
        body = await _json(request)
        if isinstance(body, Response):
            return body
        text = body.get("text")
        if not isinstance(text, str):
            return _error(400, "text must be a string holding the new rules")
        return await self._run(lambda: {"version": self._save_rules(text)})

    async def _run(self, work) -> Response:
        try:
            return JSONResponse(await run_in_threadpool(work))
        except actions.ActionError as exc:
            return _error(exc.status, str(exc))
        finally:
            self.invalidate()


def _int(value, default):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _reviewer(body: dict) -> str:
    name = body.get("reviewer")
    return name.strip()[:80] if isinstance(name, str) and name.strip() else "anonymous"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status)


async def _json(request: Request) -> dict | Response:
    try:
        body = json.loads(await request.body() or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(400, f"the request body is not valid JSON ({exc}); send a JSON object")
    if not isinstance(body, dict):
        return _error(400, f"expected a JSON object, got {type(body).__name__}")
    return body


def create_app(store: Store, token: str | None = None, *, allowed_hosts: list[str] | None = None) -> Starlette:
    """The review app over `store`; with `token`, every request must carry it (see security.Guard)."""
    csrf = new_csrf_token()
    handlers = ReviewApp(store, csrf)
    routes = [
        Route("/", handlers.home),
        Route("/queue/{name}", handlers.queue_page),
        Route("/rules", handlers.rules_page, methods=["GET"]),
        Route("/rules", handlers.rules_post, methods=["POST"]),
        Route("/progress", handlers.progress_page),
        Route("/api/session", handlers.api_session),
        Route("/api/counts", handlers.api_counts),
        Route("/api/queue/{name}", handlers.api_queue),
        Route("/api/records/{chunk_id}", handlers.api_record),
        Route("/api/rules", handlers.api_rules, methods=["GET"]),
        Route("/api/rules", handlers.api_rules_post, methods=["POST"]),
        Route("/api/label", handlers.api_label, methods=["POST"]),
        Route("/api/bulk-accept", handlers.api_bulk, methods=["POST"]),
        Route("/api/undo", handlers.api_undo, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(Guard, token=token, csrf_token=csrf, allowed_hosts=allowed_hosts)
    app.state.store = store
    app.state.csrf_token = csrf
    return app


def serve(output_dir: Path, host: str = "127.0.0.1", port: int = 8420, token: str | None = None) -> None:
    """Serve the review app for the project in `output_dir` until interrupted."""
    import uvicorn

    token = token or os.environ.get(TOKEN_ENV) or None
    if not is_loopback(host) and token is None:
        raise LabelloopError(
            f"refusing to serve the review app on {host!r} without a token: anyone who can reach it could "
            f"read and change labels. Pass --token SECRET (or set {TOKEN_ENV}), or bind to --host 127.0.0.1")
    store = Store(Path(output_dir) / "labelloop.db", create=False)
    app = create_app(store, token)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    suffix = f"/?token={token}" if token else "/"
    print(f"labelloop review: http://{shown}:{port}{suffix}  (Ctrl+C stops it)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
