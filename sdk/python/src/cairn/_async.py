"""The asyncio layer: ``AsyncCairn``, ``AsyncSandbox``, ``AsyncSnapshot``, ``AsyncFiles``,
the sync layer's twins method for method, each a coroutine (``exec_stream`` an async
iterator; ``async with`` for the context managers)."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, AsyncIterator, Callable, Dict, List, Optional, Union

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
    client_args,
    create_body,
    drop_none,
    endpoint,
    archive_params,
    background_pid,
    exec_body,
    fork_error,
    opt,
    raise_for,
    sandbox_ref,
    snapshot_ref,
)
from .errors import CairnError

#: The connections made from the environment, one per event loop (an httpx async client
#: belongs to the loop it first ran on).
_defaults: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncCairn]" = weakref.WeakKeyDictionary()


def _client(client: Optional["AsyncCairn"]) -> "AsyncCairn":
    """``client``, or one made from the environment once per event loop (see ``AsyncCairn``)."""
    if client is not None:
        return client
    loop = asyncio.get_running_loop()
    if loop not in _defaults:
        _defaults[loop] = AsyncCairn()
    return _defaults[loop]


class AsyncCairn:
    """A connection to cairnd for asyncio code: the arguments of ``Cairn``. Use it with
    ``async with``, or ``await close()``."""

    def __init__(self, host: Optional[str] = None, token: Optional[str] = None) -> None:
        base_url, socket, token = endpoint(host, token)
        args = client_args(base_url, socket, asynchronous=True)
        self.api: Union[Client, AuthenticatedClient]
        if token:
            self.api = AuthenticatedClient(base_url=base_url, token=token, timeout=TIMEOUT, httpx_args=args)
        else:
            self.api = Client(base_url=base_url, timeout=TIMEOUT, httpx_args=args)

    async def __aenter__(self) -> "AsyncCairn":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the connection."""
        await self.api.get_async_httpx_client().aclose()

    async def create_sandbox(self, image: Optional[str] = None, **options: Any) -> "AsyncSandbox":
        """``AsyncSandbox.create`` on this connection."""
        return await AsyncSandbox.create(image=image, client=self, **options)

    async def sandbox(self, id_or_name: str) -> "AsyncSandbox":
        """One of the caller's sandboxes."""
        return AsyncSandbox(self, checked(await get_sandbox.asyncio_detailed(id_or_name, client=self.api)))

    async def sandboxes(self) -> List["AsyncSandbox"]:
        """The caller's sandboxes."""
        infos = checked(await list_sandboxes.asyncio_detailed(client=self.api))
        return [AsyncSandbox(self, i) for i in infos]

    async def snapshot(self, ref: str) -> "AsyncSnapshot":
        """One snapshot: its id, ``NAME`` or ``SANDBOX:NAME``."""
        return AsyncSnapshot(self, checked(await get_snapshot.asyncio_detailed(ref, client=self.api)))

    async def snapshots(self, all: bool = False) -> List["AsyncSnapshot"]:
        """The caller's snapshots, oldest first (``all``: automatic, failed and deleted too)."""
        infos = checked(await list_snapshots.asyncio_detailed(client=self.api, all_=all))
        return [AsyncSnapshot(self, i) for i in infos]

    async def images(self) -> List[Any]:
        """The images the caller can use (``ImageInfo``)."""
        return list(checked(await list_images.asyncio_detailed(client=self.api)))

    async def import_snapshot(self, path: str, *, name: Optional[str] = None) -> "AsyncSnapshot":
        """Imports a snapshot archive from the file ``path``: a new snapshot of this account."""
        http = self.api.get_async_httpx_client()
        params = {"name": name} if name else {}

        async def chunks() -> AsyncIterator[bytes]:
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    yield chunk

        headers = {"content-type": "application/octet-stream"}
        r = await http.post("/v1/snapshots", params=params, content=chunks(), headers=headers)
        raise_for(r)
        return await self.snapshot(r.json()["id"])


class AsyncSandbox:
    """A sandbox: ``await AsyncSandbox.create(...)``; ``async with`` destroys it on exit."""

    def __init__(self, client: AsyncCairn, info: Any) -> None:
        self.client = client
        self.info = info
        self.files = AsyncFiles(self)

    def __repr__(self) -> str:
        return f"AsyncSandbox({self.id!r}, state={self.state!r})"

    async def __aenter__(self) -> "AsyncSandbox":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self.destroy()
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
    async def create(
        cls,
        image: Optional[str] = None,
        *,
        client: Optional[AsyncCairn] = None,
        **options: Any,
    ) -> "AsyncSandbox":
        """Creates and starts a sandbox from ``image`` (the options of ``Sandbox.create``)."""
        c = _client(client)
        body = CreateSandboxRequest.from_dict(create_body(image, options))
        return cls(c, checked(await create_sandbox.asyncio_detailed(client=c.api, body=body)))

    @classmethod
    async def from_snapshot(
        cls,
        snapshot: Any,
        *,
        client: Optional[AsyncCairn] = None,
        fresh: bool = False,
        **options: Any,
    ) -> "AsyncSandbox":
        """A new sandbox forked from ``snapshot`` (an ``AsyncSnapshot``, an id, ``NAME`` or
        ``SANDBOX:NAME``)."""
        c = client or getattr(snapshot, "client", None)
        options.update(from_snapshot=snapshot_ref(snapshot), fresh=fresh or None)
        return await cls.create(client=c, **options)

    async def refresh(self) -> "AsyncSandbox":
        """Reads its state again."""
        self.info = checked(await get_sandbox.asyncio_detailed(self.id, client=self.client.api))
        return self

    async def exec_stream(
        self,
        cmd: Command,
        *,
        env: Optional[Dict[str, str]] = None,
        workdir: Optional[str] = None,
        timeout: Optional[int] = None,
    ) -> AsyncIterator[ExecEvent]:
        """Runs ``cmd`` and yields its events as they come: output, then one ``exit``."""
        http = self.client.api.get_async_httpx_client()
        body = exec_body(cmd, env, workdir, timeout)
        async with http.stream("POST", f"/v1/sandboxes/{self.id}/exec", json=body) as r:
            if r.status_code >= 400:
                await r.aread()
                raise_for(r)
            async for line in r.aiter_lines():
                if line.strip():
                    yield ExecEvent.parse(line)

    async def exec(
        self,
        cmd: Command,
        *,
        env: Optional[Dict[str, str]] = None,
        workdir: Optional[str] = None,
        timeout: Optional[int] = None,
        on_stdout: Optional[Callable[[bytes], Any]] = None,
        on_stderr: Optional[Callable[[bytes], Any]] = None,
    ) -> ExecResult:
        """Runs ``cmd`` to its end, streaming its output to the callbacks; returns its exit
        code and output."""
        collect = Collector(on_stdout, on_stderr)
        async for ev in self.exec_stream(cmd, env=env, workdir=workdir, timeout=timeout):
            collect.add(ev)
        return collect.finish()

    async def exec_background(
        self,
        cmd: Command,
        *,
        env: Optional[Dict[str, str]] = None,
        workdir: Optional[str] = None,
    ) -> int:
        """Starts ``cmd`` in the background; returns its pid (see ``Sandbox.exec_background``)."""
        http = self.client.api.get_async_httpx_client()
        body = dict(exec_body(cmd, env, workdir, None), detach=True)
        r = await http.post(f"/v1/sandboxes/{self.id}/exec", json=body)
        raise_for(r)
        return background_pid(r.text)

    async def processes(self) -> List[Any]:
        """Its processes (``ProcessInfo``)."""
        return list(checked(await list_processes.asyncio_detailed(self.id, client=self.client.api)))

    async def signal(self, pid: int, signal: str = "TERM") -> None:
        """Sends ``signal`` to one of its processes."""
        body = SignalRequest.from_dict({"signal": str(signal)})
        checked(await signal_process.asyncio_detailed(self.id, pid, client=self.client.api, body=body))

    async def snapshot(self, name: Optional[str] = None, *, stateful: bool = False) -> "AsyncSnapshot":
        """Snapshots it: its files, and with ``stateful`` its processes' memory too."""
        body = CreateSnapshotRequest.from_dict(drop_none({"name": name, "stateful": stateful}))
        info = checked(await create_snapshot.asyncio_detailed(self.id, client=self.client.api, body=body))
        return AsyncSnapshot(self.client, info)

    async def snapshots(self, all: bool = False) -> List["AsyncSnapshot"]:
        """Its snapshots, oldest first."""
        r = await list_sandbox_snapshots.asyncio_detailed(self.id, client=self.client.api, all_=all)
        return [AsyncSnapshot(self.client, i) for i in checked(r)]

    async def restore(self, snapshot: Any, *, fresh: bool = False) -> "AsyncSandbox":
        """Puts ``snapshot``'s state back into this sandbox, in place."""
        body = RestoreRequest.from_dict(drop_none({"to": self.id, "fresh": fresh or None}))
        r = await restore_snapshot.asyncio_detailed(snapshot_ref(snapshot), client=self.client.api, body=body)
        self.info = checked(r)
        return self

    async def pause(self, *, release_memory: bool = False) -> "AsyncSandbox":
        """Freezes it (with an automatic snapshot)."""
        r = await pause_sandbox.asyncio_detailed(self.id, client=self.client.api, release_memory=release_memory)
        self.info = checked(r)
        return self

    async def resume(self) -> "AsyncSandbox":
        """Continues a paused sandbox."""
        self.info = checked(await resume_sandbox.asyncio_detailed(self.id, client=self.client.api))
        return self

    async def stop(self) -> "AsyncSandbox":
        """Stops its processes; its files stay."""
        self.info = checked(await stop_sandbox.asyncio_detailed(self.id, client=self.client.api))
        return self

    async def start(self) -> "AsyncSandbox":
        """Starts a stopped sandbox."""
        self.info = checked(await start_sandbox.asyncio_detailed(self.id, client=self.client.api))
        return self

    async def destroy(self, *, with_snapshots: bool = False) -> None:
        """Destroys it; its snapshots stay unless ``with_snapshots``."""
        r = await destroy_sandbox.asyncio_detailed(
            self.id, client=self.client.api, force=True, with_snapshots=with_snapshots
        )
        checked(r)


class AsyncSnapshot:
    """A snapshot: fork it, restore it, diff it, delete it."""

    def __init__(self, client: AsyncCairn, info: Any) -> None:
        self.client = client
        self.info = info

    def __repr__(self) -> str:
        return f"AsyncSnapshot({self.id!r}, name={self.name!r})"

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

    async def fork(self, count: int = 1, **options: Any) -> List[AsyncSandbox]:
        """``count`` new sandboxes from it (see ``Snapshot.fork``)."""
        body = ForkRequest.from_dict(drop_none(dict(options, count=count)))
        batch = checked(await fork_snapshot.asyncio_detailed(self.id, client=self.client.api, body=body))
        made = [AsyncSandbox(self.client, i) for i in batch.sandboxes]
        if batch.failed:
            err = fork_error(batch.failed[0])
            err.made = made  # type: ignore[attr-defined]
            raise err
        return made

    async def restore(self, to: Optional[Any] = None, *, fresh: bool = False) -> AsyncSandbox:
        """Restores it in place into its sandbox (or ``to``)."""
        body = RestoreRequest.from_dict(drop_none({"to": sandbox_ref(to) if to else None, "fresh": fresh or None}))
        r = await restore_snapshot.asyncio_detailed(self.id, client=self.client.api, body=body)
        return AsyncSandbox(self.client, checked(r))

    async def diff(self, against: Optional[Any] = None) -> List[Any]:
        """Paths changed since it (``DiffEntry``)."""
        ref = opt(snapshot_ref(against) if against else None)
        return list(checked(await diff_snapshot.asyncio_detailed(self.id, client=self.client.api, against=ref)))

    async def delete(self) -> None:
        """Deletes it; sandboxes made from it keep working."""
        checked(await delete_snapshot.asyncio_detailed(self.id, client=self.client.api))

    async def export(self, path: str, *, format: str = "tar.zst") -> int:
        """Downloads it as one archive to the file ``path``, streamed; returns its size."""
        http = self.client.api.get_async_httpx_client()
        size = 0
        async with http.stream("GET", f"/v1/snapshots/{self.id}/archive", params=archive_params(format)) as r:
            if r.status_code >= 400:
                await r.aread()
                raise_for(r)
            with open(path, "wb") as f:
                async for chunk in r.aiter_bytes():
                    f.write(chunk)
                    size += len(chunk)
        return size


class AsyncFiles:
    """A sandbox's files (``sandbox.files``)."""

    def __init__(self, sandbox: AsyncSandbox) -> None:
        self.sandbox = sandbox

    def _url(self) -> str:
        return f"/v1/sandboxes/{self.sandbox.id}/files"

    async def read(self, path: str) -> bytes:
        """A file's bytes."""
        http = self.sandbox.client.api.get_async_httpx_client()
        r = await http.get(self._url(), params={"path": path})
        raise_for(r)
        return r.content

    async def read_text(self, path: str) -> str:
        """A file's text (UTF-8)."""
        return (await self.read(path)).decode("utf-8", "replace")

    async def write(self, path: str, data: Union[bytes, str], *, mode: Optional[int] = None) -> Any:
        """Writes a file whole; returns its entry."""
        params = {"path": path}
        if mode is not None:
            params["mode"] = format(mode, "o")
        content = data.encode() if isinstance(data, str) else data
        http = self.sandbox.client.api.get_async_httpx_client()
        headers = {"content-type": "application/octet-stream"}
        r = await http.put(self._url(), params=params, content=content, headers=headers)
        raise_for(r)
        return r.json()

    async def list(self, path: str = "/", *, depth: int = 1) -> List[Any]:
        """A directory's entries (``FileEntry``)."""
        api = self.sandbox.client.api
        return list(checked(await list_files.asyncio_detailed(self.sandbox.id, client=api, path=path, depth=depth)))

    async def stat(self, path: str) -> Any:
        """What ``path`` is (``FileEntry``)."""
        return checked(await stat_file.asyncio_detailed(self.sandbox.id, client=self.sandbox.client.api, path=path))

    async def exists(self, path: str) -> bool:
        """Whether ``path`` exists."""
        try:
            await self.stat(path)
            return True
        except CairnError as e:
            if e.code == "not_found":
                return False
            raise

    async def mkdir(self, path: str, *, parents: bool = False) -> Any:
        """Makes a directory."""
        body = MkdirRequest.from_dict({"path": path, "parents": parents})
        api = self.sandbox.client.api
        return checked(await make_directory.asyncio_detailed(self.sandbox.id, client=api, body=body))

    async def remove(self, path: str, *, recursive: bool = False) -> None:
        """Removes a file (or with ``recursive`` a directory and what is below)."""
        api = self.sandbox.client.api
        checked(await remove_file.asyncio_detailed(self.sandbox.id, client=api, path=path, recursive=recursive))
