"""Typed errors: one class per error code of the API (docs/api.md#errors).

Every error cairnd answers is ``{"error": {"code", "message", "details"?}}``; the SDK raises
the class of its code (``NotFound``, ``LimitExceeded``…), all subclasses of ``CairnError``,
with ``code``, ``message``, ``status`` and ``details``. A code this SDK does not know yet
raises ``CairnError`` itself.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Optional, Type


class CairnError(Exception):
    """An error cairnd answered (or the SDK met talking to it)."""

    code: str = "failed"

    def __init__(
        self,
        message: str,
        *,
        code: Optional[str] = None,
        status: Optional[int] = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.status = status
        self.details = details

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class InvalidArgument(CairnError):
    """400: the request is malformed (a bad name, size, path, value above a cap…)."""

    code = "invalid_argument"


class Unauthenticated(CairnError):
    """401: no, unknown, revoked or expired token."""

    code = "unauthenticated"


class Forbidden(CairnError):
    """403: only the operator may do this."""

    code = "forbidden"


class NotFound(CairnError):
    """404: no such sandbox, snapshot, image or path for this account."""

    code = "not_found"


class MethodNotAllowed(CairnError):
    """405: a known path with another method."""

    code = "method_not_allowed"


class RequestTimeout(CairnError):
    """408: the request body stopped arriving."""

    code = "request_timeout"


class Conflict(CairnError):
    """409: a name is taken, or the object is in the wrong state."""

    code = "conflict"


class LimitExceeded(Conflict):
    """409: a limit (snapshots per sandbox, storage, disk…) would be exceeded."""

    code = "limit_exceeded"


class RuntimeIdentityMismatch(Conflict):
    """409: a stateful snapshot's processes cannot resume on this host; ``fresh=True`` works."""

    code = "runtime_identity_mismatch"


class Busy(Conflict):
    """409: the sandbox cannot be checkpointed at this moment: retry."""

    code = "busy"


class CheckpointFailed(Conflict):
    """409: the processes hold something a checkpoint cannot save."""

    code = "checkpoint_failed"


class TooLarge(CairnError):
    """413: a body over a cap."""

    code = "too_large"


class UnsupportedMediaType(CairnError):
    """415: a JSON endpoint got another Content-Type."""

    code = "unsupported_media_type"


class Internal(CairnError):
    """500: cairnd's own failure; the message has a reference into its log."""

    code = "internal"


class Unavailable(CairnError):
    """503: a host prerequisite or service (a runtime, CRIU, the remote store) is missing."""

    code = "unavailable"


class TooManyConnections(Unavailable):
    """503: a connection over cairnd's caps."""

    code = "too_many_connections"


class PoolFull(CairnError):
    """507: the storage pool has no room."""

    code = "pool_full"


class ConnectionFailed(CairnError):
    """cairnd cannot be reached (not running, a wrong address, a socket without permission);
    the SDK's own code, as the CLI's ``connection_failed``."""

    code = "connection_failed"


#: Every class, by the code cairnd sends.
ERRORS: Dict[str, Type[CairnError]] = {
    c.code: c
    for c in (
        InvalidArgument,
        Unauthenticated,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        RequestTimeout,
        Conflict,
        LimitExceeded,
        RuntimeIdentityMismatch,
        Busy,
        CheckpointFailed,
        TooLarge,
        UnsupportedMediaType,
        Internal,
        Unavailable,
        TooManyConnections,
        PoolFull,
    )
}


#: The HTTP status of every code.
STATUS: Dict[str, int] = {
    "invalid_argument": 400,
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "request_timeout": 408,
    "conflict": 409,
    "limit_exceeded": 409,
    "runtime_identity_mismatch": 409,
    "busy": 409,
    "checkpoint_failed": 409,
    "too_large": 413,
    "unsupported_media_type": 415,
    "internal": 500,
    "unavailable": 503,
    "too_many_connections": 503,
    "pool_full": 507,
}


def error_from(status: int, body: Any) -> CairnError:
    """The typed error for an answer with ``status`` and ``body`` (bytes, text or parsed JSON)."""
    detail: Dict[str, Any] = {}
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body or b"{}")
        except ValueError:
            body = {}
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        detail = body["error"]
    code = str(detail.get("code") or "failed")
    message = str(detail.get("message") or f"cairnd answered HTTP {status} without an error body")
    cls = ERRORS.get(code, CairnError)
    return cls(message, code=code, status=status, details=detail.get("details"))
