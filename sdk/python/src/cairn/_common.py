"""What the sync and the asyncio layers share: where cairnd is, how to reach it, the shapes
of requests and answers, and the exec stream's events."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import httpx

from ._api.types import UNSET, Response
from .errors import STATUS, CairnError, ConnectionFailed, error_from

#: The operator's socket of a default install.
DEFAULT_SOCKET = "/var/lib/cairn/cairnd.sock"

#: Commands: a list of arguments, or one string run by ``/bin/sh -c``.
Command = Union[str, Sequence[str]]


def endpoint(host: Optional[str], token: Optional[str]) -> Tuple[str, Optional[str], Optional[str]]:
    """``(base_url, unix socket path or None, token)`` for ``host``, as the CLI reads them.

    ``host`` is a URL (``http://10.0.0.5:7421``, the TCP listener: a token is needed), a unix
    socket (``unix:///var/lib/cairn/cairnd.sock`` or a path: the operator's, no token), or
    None: ``$CAIRN_HOST``, else ``$CAIRN_HOME/cairnd.sock`` (``CAIRN_HOME=/var/lib/cairn``).
    ``token`` defaults to ``$CAIRN_TOKEN``.
    """
    if token is None:
        token = os.environ.get("CAIRN_TOKEN") or None
    if host is None:
        host = os.environ.get("CAIRN_HOST")
        if not host:
            home = os.environ.get("CAIRN_HOME")
            host = os.path.join(home, "cairnd.sock") if home else DEFAULT_SOCKET
    if host.startswith("unix://"):
        host = host[len("unix://") :]
    if host.startswith("/") or host.startswith("."):
        return "http://cairnd", host, token
    if "://" not in host:
        host = "http://" + host
    return host.rstrip("/"), None, token


def client_args(base_url: str, socket: Optional[str], asynchronous: bool) -> Dict[str, Any]:
    """httpx arguments: the transport (the unix socket's, or TCP's) that turns a failure to
    reach cairnd into ``ConnectionFailed``."""
    where = f"unix://{socket}" if socket else base_url
    if asynchronous:
        return {"transport": _AsyncTransport(httpx.AsyncHTTPTransport(uds=socket), where)}
    return {"transport": _Transport(httpx.HTTPTransport(uds=socket), where)}


def _unreachable(where: str, e: Exception) -> ConnectionFailed:
    return ConnectionFailed(
        f"cannot reach cairnd at {where} ({e}): is it running? Start it with 'cairnd' (as root), "
        "or point Cairn(host) or $CAIRN_HOST at it"
    )


class _Transport(httpx.BaseTransport):
    """An httpx transport whose connection failures are ``ConnectionFailed``."""

    def __init__(self, inner: httpx.BaseTransport, where: str) -> None:
        self.inner = inner
        self.where = where

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return self.inner.handle_request(request)
        except (httpx.ConnectError, httpx.ConnectTimeout) as e:
            raise _unreachable(self.where, e) from e

    def close(self) -> None:
        self.inner.close()


class _AsyncTransport(httpx.AsyncBaseTransport):
    """The asyncio twin of ``_Transport``."""

    def __init__(self, inner: httpx.AsyncBaseTransport, where: str) -> None:
        self.inner = inner
        self.where = where

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self.inner.handle_async_request(request)
        except (httpx.ConnectError, httpx.ConnectTimeout) as e:
            raise _unreachable(self.where, e) from e

    async def aclose(self) -> None:
        await self.inner.aclose()


#: Connects within 10 s; no limit on an answer's time.
TIMEOUT = httpx.Timeout(None, connect=10.0)


def checked(response: Response) -> Any:
    """The parsed answer of a generated call, or its typed error."""
    status = int(response.status_code)
    if status >= 400:
        raise error_from(status, response.content)
    return response.parsed


def raise_for(response: httpx.Response) -> None:
    """Raises the typed error of a raw answer (read before)."""
    if response.status_code >= 400:
        raise error_from(response.status_code, response.content)


def argv(cmd: Command) -> List[str]:
    """A command as the API's argument list."""
    if isinstance(cmd, str):
        return ["/bin/sh", "-c", cmd]
    return [str(a) for a in cmd]


def exec_body(
    cmd: Command,
    env: Optional[Dict[str, str]],
    workdir: Optional[str],
    timeout: Optional[int],
) -> Dict[str, Any]:
    """The JSON of an exec request."""
    body: Dict[str, Any] = {"cmd": argv(cmd)}
    if env:
        body["env"] = [f"{k}={v}" for k, v in env.items()]
    if workdir is not None:
        body["workdir"] = workdir
    if timeout is not None:
        body["timeout_secs"] = int(timeout)
    return body


@dataclass
class ExecEvent:
    """One event of an exec stream: ``stdout``/``stderr`` with ``data``, ``started`` with
    ``pid``, and last ``exit`` with ``code`` (and ``message`` when cairn knows more) or
    ``error``."""

    type: str
    data: bytes = b""
    code: Optional[int] = None
    message: Optional[str] = None
    pid: Optional[int] = None

    @staticmethod
    def parse(line: Union[str, bytes]) -> "ExecEvent":
        """One NDJSON line of the stream."""
        raw = json.loads(line)
        data = raw.get("data")
        return ExecEvent(
            type=raw.get("type", ""),
            data=base64.b64decode(data) if data else b"",
            code=raw.get("code"),
            message=raw.get("message"),
            pid=raw.get("pid"),
        )


@dataclass
class ExecResult:
    """What a command did: its exit code, its output, and cairn's word when it has one."""

    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""
    message: Optional[str] = None
    events: List[ExecEvent] = field(default_factory=list, repr=False)

    @property
    def text(self) -> str:
        """stdout as text."""
        return self.stdout.decode("utf-8", "replace")

    @property
    def ok(self) -> bool:
        """Whether it exited with 0."""
        return self.exit_code == 0


class Collector:
    """Gathers a stream's events into an ``ExecResult``, calling the output callbacks."""

    def __init__(self, on_stdout: Any = None, on_stderr: Any = None) -> None:
        self.result = ExecResult(exit_code=-1)
        self.on_stdout = on_stdout
        self.on_stderr = on_stderr
        self.ended = False

    def add(self, ev: ExecEvent) -> None:
        """Takes one event."""
        self.result.events.append(ev)
        if ev.type == "stdout":
            self.result.stdout += ev.data
            if self.on_stdout:
                self.on_stdout(ev.data)
        elif ev.type == "stderr":
            self.result.stderr += ev.data
            if self.on_stderr:
                self.on_stderr(ev.data)
        elif ev.type == "exit":
            self.result.exit_code = int(ev.code if ev.code is not None else -1)
            self.result.message = ev.message
            self.ended = True
        elif ev.type == "error":
            raise CairnError(ev.message or "the command failed", code=ev.code or "failed")

    def finish(self) -> ExecResult:
        """The result, once the stream ended."""
        if not self.ended:
            raise CairnError(
                "the exec stream ended without an exit event (the connection broke)",
                code="connection_failed",
            )
        return self.result


def opt(value: Any) -> Any:
    """None as the generated client's UNSET."""
    return UNSET if value is None else value


def snapshot_ref(snapshot: Any) -> str:
    """A snapshot argument (a Snapshot object, an id, ``NAME`` or ``SANDBOX:NAME``) as text."""
    return snapshot if isinstance(snapshot, str) else str(snapshot.id)


def sandbox_ref(sandbox: Any) -> str:
    """A sandbox argument (a Sandbox object, an id or a name) as text."""
    return sandbox if isinstance(sandbox, str) else str(sandbox.id)


def drop_none(d: Dict[str, Any]) -> Dict[str, Any]:
    """``d`` without its None values."""
    return {k: v for k, v in d.items() if v is not None}


def create_body(image: Optional[str], options: Dict[str, Any]) -> Dict[str, Any]:
    """The JSON of a create request: ``env`` may be a dict."""
    body = drop_none(dict(options, image=image))
    env = body.get("env")
    if isinstance(env, dict):
        body["env"] = [f"{k}={v}" for k, v in env.items()]
    return body


def fork_error(failed: Any) -> CairnError:
    """The error of one fork that failed (an ``ErrorDetail``)."""
    detail = failed.to_dict() if hasattr(failed, "to_dict") else dict(failed)
    return error_from(STATUS.get(str(detail.get("code")), 409), {"error": detail})


def archive_params(format: str) -> Dict[str, str]:
    """The query of an archive download."""
    if format not in ("tar.zst", "tar.gz"):
        raise ValueError(f"unknown archive format {format!r}: use tar.zst or tar.gz")
    return {"format": format}


def background_pid(stream: str) -> int:
    """The pid a detached exec's one-event stream names, or its error."""
    for line in stream.splitlines():
        if not line.strip():
            continue
        ev = ExecEvent.parse(line)
        if ev.type == "started" and ev.pid is not None:
            return int(ev.pid)
        if ev.type == "exit":
            raise CairnError(
                ev.message or f"the command ended at once with code {ev.code}",
                code="cannot_start",
                details={"exit_code": ev.code},
            )
        if ev.type == "error":
            raise CairnError(ev.message or "the command could not start", code=ev.code or "failed")
    raise CairnError("the background exec's answer named no process", code="unexpected_answer")
