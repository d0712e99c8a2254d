"""Opt-in access control for ``waveglow serve``: an API key checked in constant time.

With a key, every request but ``GET /healthz`` must carry it, as ``Authorization: Bearer KEY``,
``X-API-Key: KEY``, or as the password of HTTP Basic authentication (any user name: what a browser
asks for when it opens the demo page); anything else is answered 401. The key comes from
``--api-key``, a key file (``--api-key-file``: its first line) or the ``WAVEGLOW_API_KEY``
environment variable. A key is no substitute for TLS: put a reverse proxy with TLS in front of a
service that is reachable from other machines.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

ENV_VAR = "WAVEGLOW_API_KEY"
OPEN_PATHS = frozenset({"/healthz"})
REALM = 'Basic realm="waveglow serve", charset="UTF-8"'
MIN_KEY_LENGTH = 16


class ApiKeyError(ValueError):
    """An unusable key or key file; the message says which and how to fix it."""


def resolve_api_key(
    key: str | None = None,
    key_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """The service's key: ``key``, else the first line of ``key_file``, else ``$WAVEGLOW_API_KEY``
    (``environ``, default ``os.environ``); None (no access control) when none is given."""
    environ = os.environ if environ is None else environ
    if key is not None:
        return check_key(key, "--api-key")
    if key_file is not None:
        return check_key(_read_key_file(Path(key_file)), str(key_file))
    if environ.get(ENV_VAR):
        return check_key(environ[ENV_VAR], ENV_VAR)
    return None


def _read_key_file(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ApiKeyError(f"{path}: cannot read the API key file ({error})") from None
    lines = text.splitlines()
    return lines[0].strip() if lines else ""


def check_key(key: str, source: str) -> str:
    """``key`` when it is usable: at least :data:`MIN_KEY_LENGTH` printable ASCII characters."""
    if len(key) < MIN_KEY_LENGTH or not key.isascii() or not key.isprintable() or " " in key:
        raise ApiKeyError(
            f"{source}: an API key must be at least {MIN_KEY_LENGTH} printable ASCII characters "
            "without spaces (make one with: python -c 'import secrets; print(secrets.token_urlsafe())')"
        )
    return key


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def presented_keys(headers: Mapping[bytes, bytes]) -> list[bytes]:
    """The keys a request presents (raw header bytes; lower-case names)."""
    keys = []
    if b"x-api-key" in headers:
        keys.append(headers[b"x-api-key"].strip())
    scheme, _, value = headers.get(b"authorization", b"").strip().partition(b" ")
    if scheme.lower() == b"bearer":
        keys.append(value.strip())
    elif scheme.lower() == b"basic":
        with contextlib.suppress(binascii.Error, ValueError):
            keys.append(base64.b64decode(value.strip(), validate=True).partition(b":")[2])
    return keys


def key_matches(headers: Mapping[bytes, bytes], key: str) -> bool:
    """Whether any presented key is ``key``, compared in constant time (SHA-256 digests)."""
    wanted = _digest(key.encode("ascii"))
    matched = False
    for presented in presented_keys(headers):
        matched |= hmac.compare_digest(_digest(presented), wanted)
    return matched


Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class ApiKeyMiddleware:
    """ASGI middleware: 401 for a request without the key (but :data:`OPEN_PATHS` and CORS
    preflights, which browsers send without credentials)."""

    def __init__(self, app: Callable, key: str) -> None:
        self.app = app
        self.key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":  # refused before the handshake: HTTP 403
            await send({"type": "websocket.close", "code": 1008})
            return
        body = b"a valid API key is needed: send Authorization: Bearer KEY or X-API-Key: KEY\n"
        await send({
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", REALM.encode()),
            ],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    def _allowed(self, scope: Scope) -> bool:
        if scope["path"] in OPEN_PATHS:
            return True
        headers = dict(scope["headers"])
        if scope.get("method") == "OPTIONS" and b"access-control-request-method" in headers:
            return True
        return key_matches(headers, self.key)
