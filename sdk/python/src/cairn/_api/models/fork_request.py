from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from typing_extensions import Self

from ..models.runtime_kind import RuntimeKind
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.fork_request_secrets import ForkRequestSecrets


T = TypeVar("T", bound="ForkRequest")


@_attrs_define
class ForkRequest:
    """`POST /v1/snapshots/{id}/fork`: `count` sandboxes from one snapshot, made concurrently.
    The options are a single fork's (`POST /v1/sandboxes` with `from_snapshot`), but for
    `publish` (a host port belongs to one sandbox: fork those one by one).

        Attributes:
            count (int | None | Unset): How many forks: 1 to 256 (default 1).
            cpus (float | None | Unset): CPU limit in cores (default: the snapshot's).
            disk (None | str | Unset): Disk limit of each fork such as `512M` (default: the snapshot's sandbox's).
            env (list[str] | Unset): Environment, `KEY=VALUE`, over the snapshot's.
            fresh (bool | Unset): With a stateful snapshot: boot fresh on its files instead of resuming its processes.
            idle_timeout (None | str | Unset): Idle timeout of each fork (`90s`, `30m`, `2h`).
            memory (None | str | Unset): Memory limit such as `512M` or `2G` (default: the snapshot's).
            name (None | str | Unset): Name prefix: the forks are named `NAME-1`, `NAME-2`… (unique per account).
            network (None | str | Unset): `none` or `nat` (default: the snapshot's).
            pids_limit (int | None | Unset): Maximum number of processes (default: the snapshot's).
            runtime (None | RuntimeKind | Unset):
            secrets (ForkRequestSecrets | Unset): Secrets of each fork, over those its snapshot's sandbox had (which every
                fork gets
                again): `NAME` → value, as in `POST /v1/sandboxes`.
            workdir (None | str | Unset): Default working directory (absolute; default: the snapshot's).
    """

    count: int | None | Unset = UNSET
    cpus: float | None | Unset = UNSET
    disk: None | str | Unset = UNSET
    env: list[str] | Unset = UNSET
    fresh: bool | Unset = UNSET
    idle_timeout: None | str | Unset = UNSET
    memory: None | str | Unset = UNSET
    name: None | str | Unset = UNSET
    network: None | str | Unset = UNSET
    pids_limit: int | None | Unset = UNSET
    runtime: None | RuntimeKind | Unset = UNSET
    secrets: ForkRequestSecrets | Unset = UNSET
    workdir: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        count: int | None | Unset
        if isinstance(self.count, Unset):
            count = UNSET
        else:
            count = self.count

        cpus: float | None | Unset
        if isinstance(self.cpus, Unset):
            cpus = UNSET
        else:
            cpus = self.cpus

        disk: None | str | Unset
        if isinstance(self.disk, Unset):
            disk = UNSET
        else:
            disk = self.disk

        env: list[str] | Unset = UNSET
        if not isinstance(self.env, Unset):
            env = self.env

        fresh = self.fresh

        idle_timeout: None | str | Unset
        if isinstance(self.idle_timeout, Unset):
            idle_timeout = UNSET
        else:
            idle_timeout = self.idle_timeout

        memory: None | str | Unset
        if isinstance(self.memory, Unset):
            memory = UNSET
        else:
            memory = self.memory

        name: None | str | Unset
        if isinstance(self.name, Unset):
            name = UNSET
        else:
            name = self.name

        network: None | str | Unset
        if isinstance(self.network, Unset):
            network = UNSET
        else:
            network = self.network

        pids_limit: int | None | Unset
        if isinstance(self.pids_limit, Unset):
            pids_limit = UNSET
        else:
            pids_limit = self.pids_limit

        runtime: None | str | Unset
        if isinstance(self.runtime, Unset):
            runtime = UNSET
        elif isinstance(self.runtime, RuntimeKind):
            runtime = self.runtime.value
        else:
            runtime = self.runtime

        secrets: dict[str, Any] | Unset = UNSET
        if not isinstance(self.secrets, Unset):
            secrets = self.secrets.to_dict()

        workdir: None | str | Unset
        if isinstance(self.workdir, Unset):
            workdir = UNSET
        else:
            workdir = self.workdir

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if count is not UNSET:
            field_dict["count"] = count
        if cpus is not UNSET:
            field_dict["cpus"] = cpus
        if disk is not UNSET:
            field_dict["disk"] = disk
        if env is not UNSET:
            field_dict["env"] = env
        if fresh is not UNSET:
            field_dict["fresh"] = fresh
        if idle_timeout is not UNSET:
            field_dict["idle_timeout"] = idle_timeout
        if memory is not UNSET:
            field_dict["memory"] = memory
        if name is not UNSET:
            field_dict["name"] = name
        if network is not UNSET:
            field_dict["network"] = network
        if pids_limit is not UNSET:
            field_dict["pids_limit"] = pids_limit
        if runtime is not UNSET:
            field_dict["runtime"] = runtime
        if secrets is not UNSET:
            field_dict["secrets"] = secrets
        if workdir is not UNSET:
            field_dict["workdir"] = workdir

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.fork_request_secrets import ForkRequestSecrets

        d = dict(src_dict)

        def _parse_count(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        count = _parse_count(d.pop("count", UNSET))

        def _parse_cpus(data: object) -> float | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(float | None | Unset, data)

        cpus = _parse_cpus(d.pop("cpus", UNSET))

        def _parse_disk(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        disk = _parse_disk(d.pop("disk", UNSET))

        env = cast(list[str], d.pop("env", UNSET))

        fresh = d.pop("fresh", UNSET)

        def _parse_idle_timeout(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        idle_timeout = _parse_idle_timeout(d.pop("idle_timeout", UNSET))

        def _parse_memory(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        memory = _parse_memory(d.pop("memory", UNSET))

        def _parse_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        name = _parse_name(d.pop("name", UNSET))

        def _parse_network(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        network = _parse_network(d.pop("network", UNSET))

        def _parse_pids_limit(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        pids_limit = _parse_pids_limit(d.pop("pids_limit", UNSET))

        def _parse_runtime(data: object) -> None | RuntimeKind | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                runtime_type_1 = RuntimeKind(data)

                return runtime_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | RuntimeKind | Unset, data)

        runtime = _parse_runtime(d.pop("runtime", UNSET))

        _secrets = d.pop("secrets", UNSET)
        secrets: ForkRequestSecrets | Unset
        if isinstance(_secrets, Unset):
            secrets = UNSET
        else:
            secrets = ForkRequestSecrets.from_dict(_secrets)

        def _parse_workdir(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        workdir = _parse_workdir(d.pop("workdir", UNSET))

        fork_request = cls(
            count=count,
            cpus=cpus,
            disk=disk,
            env=env,
            fresh=fresh,
            idle_timeout=idle_timeout,
            memory=memory,
            name=name,
            network=network,
            pids_limit=pids_limit,
            runtime=runtime,
            secrets=secrets,
            workdir=workdir,
        )

        return fork_request
