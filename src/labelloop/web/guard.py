"""The HTTP apps' guard: Host check, token, cross-site request checks and security headers.

An ASGI middleware, so every request (pages, API, static files) passes through it. The
review app and `labelloop serve` both run behind it.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from urllib.parse import parse_qs, urlencode

from starlette.datastructures import URL, Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOKEN_COOKIE = "labelloop_token"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
MAX_FORM_BYTES = 2_000_000

SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
     b"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: addresses only this machine can reach."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())


class Guard:
    """Rejects requests without the token, from foreign Hosts, or cross-site writes; adds headers.

    token: when set, every request must carry it (Authorization: Bearer, the HttpOnly cookie set by
    a `?token=` visit, or `?token=` itself). allowed_hosts: Host names accepted; None means the
    loopback names when there is no token (against DNS rebinding) and any host with a token.
    Writes (POST etc.) must come from this origin (Origin / Sec-Fetch-Site) and carry the CSRF token
    in the X-CSRF-Token header or a `csrf_token` form field, unless sent with a Bearer token.
    """

    def __init__(self, app: ASGIApp, *, token: str | None, csrf_token: str | None,
                 allowed_hosts: list[str] | None = None, name: str = "review app", command: str = "labelloop review"):
        self.app = app
        self.token = token or None
        self.csrf_token = csrf_token  # None: an API that takes JSON only (cross-site JSON needs a preflight)
        self.name = name
        self.command = command
        if allowed_hosts is None and self.token is None:
            allowed_hosts = list(LOOPBACK_NAMES)
        self.allowed_hosts = None if allowed_hosts is None else {h.lower().strip("[]") for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        request = Request(scope)
        headers = Headers(scope=scope)
        problem = self._check_host(headers)
        if problem is not None:
            await problem(scope, receive, send)
            return
        bearer = False
        if self.token is not None:
            verdict = self._check_token(request)
            if isinstance(verdict, Response):
                await verdict(scope, receive, send)
                return
            bearer = verdict == "bearer"
        if request.method not in SAFE_METHODS:
            problem = self._check_origin(request, headers)
            if problem is None and not bearer and self.csrf_token is not None:
                receive, problem = await self._check_csrf(headers, receive)
            if problem is None and self.csrf_token is None and not _is_json(headers):
                problem = JSONResponse({"error": "415: send the body as JSON (Content-Type: application/json)"}, 415)
            if problem is not None:
                await problem(scope, receive, send)
                return
        await self.app(scope, receive, send)

    # -------------------------------------------------------------- checks

    def _check_host(self, headers: Headers) -> Response | None:
        if self.allowed_hosts is None:
            return None
        host = headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        name = name.strip("[]").lower()
        if name in self.allowed_hosts:
            return None
        return PlainTextResponse(
            f"400: Host {host!r} is not allowed; open the {self.name} as http://127.0.0.1:<port>/ "
            "(without a token it only answers to loopback names, to stop DNS rebinding)", 400)

    def _check_token(self, request: Request) -> str | Response:
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and _same(auth[7:].strip(), self.token):
            return "bearer"
        query_token = request.query_params.get("token")
        if _same(query_token, self.token):
            if request.method in SAFE_METHODS:
                # Trade the URL token for a cookie and drop it from the address bar and history.
                rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
                url = URL(path=request.url.path, query=urlencode(rest))
                response = RedirectResponse(str(url), status_code=303)
                response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict", path="/")
                return response
            return "query"
        if _same(request.cookies.get(TOKEN_COOKIE), self.token):
            return "cookie"
        return PlainTextResponse(
            f"401: this {self.name} needs its token. Open the URL that `{self.command}` printed "
            "(it ends in ?token=...), or send the header 'Authorization: Bearer <token>'.",
            401, headers={"WWW-Authenticate": f'Bearer realm="{self.command}"'})

    def _check_origin(self, request: Request, headers: Headers) -> Response | None:
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return _forbidden(f"cross-site write refused (Sec-Fetch-Site: {site}); use the {self.name}'s own pages")
        origin = headers.get("origin")
        if origin is not None:
            expected = f"{request.url.scheme}://{headers.get('host', '')}".lower()
            if origin.lower() != expected:
                return _forbidden(f"cross-origin write refused (Origin {origin!r}, expected {expected!r}); "
                                  f"use the {self.name}'s own pages")
        return None

    async def _check_csrf(self, headers: Headers, receive: Receive) -> tuple[Receive, Response | None]:
        if _same(headers.get(CSRF_HEADER), self.csrf_token):
            return receive, None
        if headers.get("content-type", "").split(";")[0].strip() == "application/x-www-form-urlencoded":
            body, receive = await _buffer(receive)
            if body is None:
                return receive, PlainTextResponse("413: form too large", 413)
            fields = parse_qs(body.decode("utf-8", "replace"))
            if _same((fields.get(CSRF_FIELD) or [None])[0], self.csrf_token):
                return receive, None
        return receive, _forbidden("missing or stale CSRF token; reload the page and try again "
                                   "(scripts: send the X-CSRF-Token header from GET /api/session)")


def _is_json(headers: Headers) -> bool:
    return headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"


def _forbidden(message: str) -> Response:
    return JSONResponse({"error": f"403: {message}"}, 403)


async def _buffer(receive: Receive) -> tuple[bytes | None, Receive]:
    """Read the whole request body and return it with a receive that replays it."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > MAX_FORM_BYTES:
            return None, receive
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
            message = {**message, "headers": list(message.get("headers", [])) + extra}
        await send(message)

    return wrapped
