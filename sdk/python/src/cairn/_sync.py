"""The synchronous layer: ``Cairn``, ``Sandbox``, ``Snapshot``, ``Files``.

JSON calls go through the client generated from docs/openapi.json (``cairn._api``); the
byte streams (exec's NDJSON, file contents) through its httpx client directly.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Optional, Union

from ._api.api.exec_ import list_processes, signal_process
from ._api.api.files import list_files, make_directory, remove_file, stat_file
from ._api.api.images import list_images
from ._api.api.sandboxes import (
    create_sandbox,
    destroy_sandbox,
    get_sandbox,
    list_sandboxes,
    pause_sandbox,
    resume_sandbox,
    start_sandbox,
    stop_sandbox,
)
from ._api.api.snapshots import (
    create_snapshot,
    delete_snapshot,
    diff_snapshot,
    fork_snapshot,
    get_snapshot,
    list_sandbox_snapshots,
    list_snapshots,
    restore_snapshot,
)
from ._api.client import AuthenticatedClient, Client
from ._api.models import (
    CreateSandboxRequest,
    CreateSnapshotRequest,
    ForkRequest,
    MkdirRequest,
    RestoreRequest,
    SignalRequest,
)
from ._common import (
    TIMEOUT,
    Collector,
    Command,
    ExecEvent,
    ExecResult,
    checked,
    create_body,
    drop_none,
    fork_error,
    client_args,
    endpoint,
    archive_params,
    background_pid,
    exec_body,
    opt,
    raise_for,
    sandbox_ref,
    snapshot_ref,
)
from .errors import CairnError

_default: Optional["Cairn"] = None


def _client(client: Optional["Cairn"]) -> "Cairn":
    """``client``, or one made from the environment once (see ``Cairn``)."""
    global _default
    if client is not None:
        return client
    if _default is None:
        _default = Cairn()
    return _default


class Cairn:
    """A connection to cairnd.

    ``Cairn("http://10.0.0.5:7421", token="ck_…")`` over TCP, ``Cairn("/var/lib/cairn/cairnd.sock")``
    over the operator's unix socket, or ``Cairn()`` from ``$CAIRN_HOST`` and ``$CAIRN_TOKEN``
    as the CLI reads them (else ``$CAIRN_HOME/cairnd.sock``). Use it as a context manager,
    or ``close()`` it.
    """

    def __init__(self, host: Optional[str] = None, token: Optional[str] = None) -> None:
        base_url, socket, token = endpoint(host, token)
        args = client_args(base_url, socket, asynchronous=False)
        self.api: Union[Client, AuthenticatedClient]
        if token:
            self.api = AuthenticatedClient(base_url=base_url, token=token, timeout=TIMEOUT, httpx_args=args)
        else:
            self.api = Client(base_url=base_url, timeout=TIMEOUT, httpx_args=args)

    def __enter__(self) -> "Cairn":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connection."""
        self.api.get_httpx_client().close()

    # Sandboxes, snapshots and images of the caller's account.

    def create_sandbox(self, image: Optional[str] = None, **options: Any) -> "Sandbox":
        """``Sandbox.create`` on this connection."""
        return Sandbox.create(image=image, client=self, **options)

    def sandbox(self, id_or_name: str) -> "Sandbox":
        """One of the caller's sandboxes."""
        return Sandbox(self, checked(get_sandbox.sync_detailed(id_or_name, client=self.api)))

    def sandboxes(self) -> List["Sandbox"]:
        """The caller's sandboxes."""
        return [Sandbox(self, i) for i in checked(list_sandboxes.sync_detailed(client=self.api))]

    def snapshot(self, ref: str) -> "Snapshot":
        """One snapshot: its id, ``NAME`` or ``SANDBOX:NAME``."""
        return Snapshot(self, checked(get_snapshot.sync_detailed(ref, client=self.api)))

    def snapshots(self, all: bool = False) -> List["Snapshot"]:
        """The caller's snapshots, oldest first (``all``: automatic, failed and deleted too)."""
        infos = checked(list_snapshots.sync_detailed(client=self.api, all_=all))
        return [Snapshot(self, i) for i in infos]

    def images(self) -> List[Any]:
        """The images the caller can use (``ImageInfo``)."""
        return list(checked(list_images.sync_detailed(client=self.api)))

    def import_snapshot(self, path: str, *, name: Optional[str] = None) -> "Snapshot":
        """Imports a snapshot archive (``Snapshot.export``'s, from any Cairn host) from the
        file ``path``, streamed: a new snapshot of this account (``name``: another name)."""
        http = self.api.get_httpx_client()
        params = {"name": name} if name else {}
        with open(path, "rb") as f:
            headers = {"content-type": "application/octet-stream"}
            r = http.post("/v1/snapshots", params=params, content=_chunks(f), headers=headers)
        raise_for(r)
        return self.snapshot(r.json()["id"])


def _chunks(f: Any, size: int = 1 << 20) -> Iterator[bytes]:
    """A file's bytes in chunks, for a streamed upload."""
    while chunk := f.read(size):
        yield chunk


class Sandbox:
    """A sandbox. Make one with ``Sandbox.create`` or ``Sandbox.from_snapshot``; as a context
    manager it is destroyed on exit."""

    def __init__(self, client: Cairn, info: Any) -> None:
        self.client = client
        self.info = info
        self.files = Files(self)

    def __repr__(self) -> str:
        return f"Sandbox({self.id!r}, state={self.state!r})"

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.destroy()
        except CairnError as e:
            if e.code != "not_found":
                raise

    @property
    def id(self) -> str:
        """``sbx-`` and 8 hex digits."""
        return str(self.info.id)

    @property
    def name(self) -> Optional[str]:
        """Its name, if it has one."""
        return self.info.name or None

    @property
    def state(self) -> str:
        """``running``, ``paused``, ``stopped``… as of the last answer (``refresh()``)."""
        return str(getattr(self.info.state, "value", self.info.state))

    @classmethod
    def create(
        cls,
        image: Optional[str] = None,
        *,
        client: Optional[Cairn] = None,
        **options: Any,
    ) -> "Sandbox":
        """Creates and starts a sandbox from ``image``. ``options`` are the API's create fields:
        ``name``, ``runtime`` (``gvisor`` or ``runc``), ``cpus``, ``memory`` (``"512M"``),
        ``env`` (a dict or ``["K=V"]``), ``workdir``, ``network``, ``idle_timeout``, ``disk``…"""
        c = _client(client)
        body = create_body(image, options)
        info = checked(create_sandbox.sync_detailed(client=c.api, body=CreateSandboxRequest.from_dict(body)))
        return cls(c, info)

    @classmethod
    def from_snapshot(
        cls,
        snapshot: Any,
        *,
        client: Optional[Cairn] = None,
        fresh: bool = False,
        **options: Any,
    ) -> "Sandbox":
        """A new sandbox forked from ``snapshot`` (a ``Snapshot``, an id, ``NAME`` or
        ``SANDBOX:NAME``); ``fresh``: a stateful snapshot's files only, booted fresh."""
        c = client or getattr(snapshot, "client", None)
        options.update(from_snapshot=snapshot_ref(snapshot), fresh=fresh or None)
        return cls.create(client=c, **options)

    def refresh(self) -> "Sandbox":
        """Reads its state again."""
        self.info = checked(get_sandbox.sync_detailed(self.id, client=self.client.api))
        return self

    def exec_stream(
        self,
        cmd: Command,
        *,
        env: Optional[Dict[str, str]] = None,
        workdir: Optional[str] = None,
        timeout: Optional[int] = None,
    ) -> Iterator[ExecEvent]:
        """Runs ``cmd`` and yields its events as they come: output, then one ``exit``.
        Closing the iterator early ends the command."""
        http = self.client.api.get_httpx_client()
        body = exec_body(cmd, env, workdir, timeout)
        with http.stream("POST", f"/v1/sandboxes/{self.id}/exec", json=body) as r:
            if r.status_code >= 400:
                r.read()
                raise_for(r)
            for line in r.iter_lines():
                if line.strip():
                    yield ExecEvent.parse(line)

    def exec(
        self,
        cmd: Command,
        *,
        env: Optional[Dict[str, str]] = None,
        workdir: Optional[str] = None,
        timeout: Optional[int] = None,
        on_stdout: Optional[Callable[[bytes], Any]] = None,
        on_stderr: Optional[Callable[[bytes], Any]] = None,
    ) -> ExecResult:
        """Runs ``cmd`` (a list, or a string for ``/bin/sh -c``) to its end, streaming its
        output to ``on_stdout``/``on_stderr`` as it comes; returns its exit code and output.
        A non-zero exit is not an error: look at ``exit_code``."""
        collect = Collector(on_stdout, on_stderr)
        for ev in self.exec_stream(cmd, env=env, workdir=workdir, timeout=timeout):
            collect.add(ev)
        return collect.finish()

    def exec_background(
        self,
        cmd: Command,
        *,
        env: Optional[Dict[str, str]] = None,
        workdir: Optional[str] = None,
    ) -> int:
        """Starts ``cmd`` in the background (a server, a long job: a child of the sandbox's
        init, so stateful snapshots carry it) with its output on /dev/null unless it
        redirects it; returns its pid, for ``signal``. Raises when it could not start."""
        http = self.client.api.get_httpx_client()
        body = dict(exec_body(cmd, env, workdir, None), detach=True)
        r = http.post(f"/v1/sandboxes/{self.id}/exec", json=body)
        raise_for(r)
        return background_pid(r.text)

    def processes(self) -> List[Any]:
        """Its processes (``ProcessInfo``: pid, ppid, cmd)."""
        return list(checked(list_processes.sync_detailed(self.id, client=self.client.api)))

    def signal(self, pid: int, signal: str = "TERM") -> None:
        """Sends ``signal`` (a name such as ``KILL``, or a number) to one of its processes."""
        body = SignalRequest.from_dict({"signal": str(signal)})
        checked(signal_process.sync_detailed(self.id, pid, client=self.client.api, body=body))

    def snapshot(self, name: Optional[str] = None, *, stateful: bool = False) -> "Snapshot":
        """Snapshots it: its files, and with ``stateful`` its processes' memory too."""
        body = CreateSnapshotRequest.from_dict(drop_none({"name": name, "stateful": stateful}))
        info = checked(create_snapshot.sync_detailed(self.id, client=self.client.api, body=body))
        return Snapshot(self.client, info)

    def snapshots(self, all: bool = False) -> List["Snapshot"]:
        """Its snapshots, oldest first."""
        infos = checked(list_sandbox_snapshots.sync_detailed(self.id, client=self.client.api, all_=all))
        return [Snapshot(self.client, i) for i in infos]

    def restore(self, snapshot: Any, *, fresh: bool = False) -> "Sandbox":
        """Puts ``snapshot``'s state back into this sandbox, in place: everything since is
        discarded."""
        body = RestoreRequest.from_dict(drop_none({"to": self.id, "fresh": fresh or None}))
        ref = snapshot_ref(snapshot)
        self.info = checked(restore_snapshot.sync_detailed(ref, client=self.client.api, body=body))
        return self

    def pause(self, *, release_memory: bool = False) -> "Sandbox":
        """Freezes it (with an automatic snapshot); ``release_memory``: its processes to disk."""
        r = pause_sandbox.sync_detailed(self.id, client=self.client.api, release_memory=release_memory)
        self.info = checked(r)
        return self

    def resume(self) -> "Sandbox":
        """Continues a paused sandbox."""
        self.info = checked(resume_sandbox.sync_detailed(self.id, client=self.client.api))
        return self

    def stop(self) -> "Sandbox":
        """Stops its processes; its files stay."""
        self.info = checked(stop_sandbox.sync_detailed(self.id, client=self.client.api))
        return self

    def start(self) -> "Sandbox":
        """Starts a stopped sandbox."""
        self.info = checked(start_sandbox.sync_detailed(self.id, client=self.client.api))
        return self

    def destroy(self, *, with_snapshots: bool = False) -> None:
        """Destroys it (running or not); its snapshots stay unless ``with_snapshots``."""
        r = destroy_sandbox.sync_detailed(self.id, client=self.client.api, force=True, with_snapshots=with_snapshots)
        checked(r)


class Snapshot:
    """A snapshot: fork it, restore it, diff it, delete it."""

    def __init__(self, client: Cairn, info: Any) -> None:
        self.client = client
        self.info = info

    def __repr__(self) -> str:
        return f"Snapshot({self.id!r}, name={self.name!r})"

    @property
    def id(self) -> str:
        """``snap-`` and 8 hex digits."""
        return str(self.info.id)

    @property
    def name(self) -> Optional[str]:
        """Its name, if it has one."""
        return self.info.name or None

    @property
    def stateful(self) -> bool:
        """Whether it holds process memory."""
        return bool(self.info.stateful)

    def fork(self, count: int = 1, **options: Any) -> List[Sandbox]:
        """``count`` new sandboxes from it (made concurrently by cairnd). ``options``: the
        fork fields (``name`` prefix, ``fresh``, ``cpus``, ``memory``, ``env``…). When some
        forks fail, raises the first one's error with the forks made in ``error.made``."""
        body = ForkRequest.from_dict(drop_none(dict(options, count=count)))
        batch = checked(fork_snapshot.sync_detailed(self.id, client=self.client.api, body=body))
        made = [Sandbox(self.client, i) for i in batch.sandboxes]
        if batch.failed:
            err = fork_error(batch.failed[0])
            err.made = made  # type: ignore[attr-defined]
            raise err
        return made

    def restore(self, to: Optional[Any] = None, *, fresh: bool = False) -> Sandbox:
        """Restores it in place into its sandbox (or ``to``)."""
        body = RestoreRequest.from_dict(drop_none({"to": sandbox_ref(to) if to else None, "fresh": fresh or None}))
        return Sandbox(self.client, checked(restore_snapshot.sync_detailed(self.id, client=self.client.api, body=body)))

    def diff(self, against: Optional[Any] = None) -> List[Any]:
        """Paths changed since it (``DiffEntry``): against a later snapshot, or the live sandbox."""
        ref = opt(snapshot_ref(against) if against else None)
        return list(checked(diff_snapshot.sync_detailed(self.id, client=self.client.api, against=ref)))

    def delete(self) -> None:
        """Deletes it; sandboxes made from it keep working."""
        checked(delete_snapshot.sync_detailed(self.id, client=self.client.api))

    def export(self, path: str, *, format: str = "tar.zst") -> int:
        """Downloads it as one archive (``tar.zst`` or ``tar.gz``) to the file ``path``,
        streamed; returns its size. Any Cairn host imports it (``import_snapshot``)."""
        http = self.client.api.get_httpx_client()
        size = 0
        with http.stream("GET", f"/v1/snapshots/{self.id}/archive", params=archive_params(format)) as r:
            if r.status_code >= 400:
                r.read()
                raise_for(r)
            with open(path, "wb") as f:
                for chunk in r.iter_bytes():
                    f.write(chunk)
                    size += len(chunk)
        return size


class Files:
    """A sandbox's files (``sandbox.files``)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def _url(self, suffix: str = "") -> str:
        return f"/v1/sandboxes/{self.sandbox.id}/files{suffix}"

    def read(self, path: str) -> bytes:
        """A file's bytes."""
        r = self.sandbox.client.api.get_httpx_client().get(self._url(), params={"path": path})
        raise_for(r)
        return r.content

    def read_text(self, path: str) -> str:
        """A file's text (UTF-8)."""
        return self.read(path).decode("utf-8", "replace")

    def write(self, path: str, data: Union[bytes, str], *, mode: Optional[int] = None) -> Any:
        """Writes a file whole (``mode``: permission bits, e.g. ``0o755``); returns its entry."""
        params = {"path": path}
        if mode is not None:
            params["mode"] = format(mode, "o")
        content = data.encode() if isinstance(data, str) else data
        http = self.sandbox.client.api.get_httpx_client()
        r = http.put(self._url(), params=params, content=content, headers={"content-type": "application/octet-stream"})
        raise_for(r)
        return r.json()

    def list(self, path: str = "/", *, depth: int = 1) -> List[Any]:
        """A directory's entries (``FileEntry``: name, path, kind, size…)."""
        r = list_files.sync_detailed(self.sandbox.id, client=self.sandbox.client.api, path=path, depth=depth)
        return list(checked(r))

    def stat(self, path: str) -> Any:
        """What ``path`` is (``FileEntry``)."""
        return checked(stat_file.sync_detailed(self.sandbox.id, client=self.sandbox.client.api, path=path))

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists."""
        try:
            self.stat(path)
            return True
        except CairnError as e:
            if e.code == "not_found":
                return False
            raise

    def mkdir(self, path: str, *, parents: bool = False) -> Any:
        """Makes a directory."""
        body = MkdirRequest.from_dict({"path": path, "parents": parents})
        return checked(make_directory.sync_detailed(self.sandbox.id, client=self.sandbox.client.api, body=body))

    def remove(self, path: str, *, recursive: bool = False) -> None:
        """Removes a file (or with ``recursive`` a directory and what is below)."""
        r = remove_file.sync_detailed(self.sandbox.id, client=self.sandbox.client.api, path=path, recursive=recursive)
        checked(r)
