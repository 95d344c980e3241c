from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field
from typing_extensions import Self

from ..models.network_mode import NetworkMode
from ..models.pause_reason import PauseReason
from ..models.runtime_kind import RuntimeKind
from ..models.sandbox_state import SandboxState
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.published_port import PublishedPort


T = TypeVar("T", bound="SandboxInfo")


@_attrs_define
class SandboxInfo:
    """A sandbox as the API shows it.

    Attributes:
        cpus (float): CPU limit in cores.
        created_at (datetime.datetime): When it was created (RFC 3339).
        env (list[str]): Environment given to every process, `KEY=VALUE`.
        id (str): `sbx-` and 8 hex digits.
        image (str): Name of the image its root filesystem came from.
        memory_bytes (int): Memory limit in bytes.
        memory_released (bool): Paused with its processes checkpointed to disk (no memory used); `resume` restores them.
        pids_limit (int): Maximum number of processes.
        runtime (RuntimeKind): Which OCI runtime drives a sandbox.
        state (SandboxState): Where a sandbox is in its life.
        workdir (str): Default working directory of `exec`.
        address (None | str | Unset): Its IPv4 address on the bridge (`nat` only); kept across stop and start.
        agent (None | str | Unset): The agent inside it (its init, which runs its commands): `connected`, `waiting`
            (starting, or dialing back after a snapshot), `quiesced` (a checkpoint is under way),
            or `unavailable: <why>` (it runs the shell init and execs through the runtime).
            `null` when it is not running.
        disk_bytes (int | None | Unset): Bytes it may write into its root filesystem beyond the image or snapshot it
            started
            from (see `disk` of the create request); `null`: no limit of its own (the pool's
            reserve still applies).
        disk_used_bytes (int | None | Unset): Bytes counted against `disk_bytes` so far (as of the file system's last
            commit, a few
            seconds behind); `null` when cairnd does not count writes (started with
            `--no-disk-quota`).
        idle_timeout_secs (int | None | Unset): Paused automatically after this many seconds without exec or other use;
            the next
            exec resumes it.
        name (None | str | Unset): Optional user-chosen name, unique per account.
        network (NetworkMode | Unset): How a sandbox reaches the network.
        parent_snapshot (None | str | Unset): The snapshot its files descend from: the last one taken of it, or the one
            it was
            forked or restored from since; `null` when it was made from an image and none was
            taken since. With each snapshot's `parent`, this draws the lineage
            (`cairn snapshot tree`).
        pause_reason (None | PauseReason | Unset):
        paused_at (datetime.datetime | None | Unset): While paused: when it was paused (RFC 3339); `null` otherwise.
        published (list[PublishedPort] | Unset): Sandbox TCP ports reachable on the host's 127.0.0.1.
        secrets (list[str] | Unset): The names of its secrets (never their values).
        state_reason (None | str | Unset): Why it is `failed` or `stopped`, when known.
    """

    cpus: float
    created_at: datetime.datetime
    env: list[str]
    id: str
    image: str
    memory_bytes: int
    memory_released: bool
    pids_limit: int
    runtime: RuntimeKind
    state: SandboxState
    workdir: str
    address: None | str | Unset = UNSET
    agent: None | str | Unset = UNSET
    disk_bytes: int | None | Unset = UNSET
    disk_used_bytes: int | None | Unset = UNSET
    idle_timeout_secs: int | None | Unset = UNSET
    name: None | str | Unset = UNSET
    network: NetworkMode | Unset = UNSET
    parent_snapshot: None | str | Unset = UNSET
    pause_reason: None | PauseReason | Unset = UNSET
    paused_at: datetime.datetime | None | Unset = UNSET
    published: list[PublishedPort] | Unset = UNSET
    secrets: list[str] | Unset = UNSET
    state_reason: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        cpus = self.cpus

        created_at = self.created_at.isoformat()

        env = self.env

        id = self.id

        image = self.image

        memory_bytes = self.memory_bytes

        memory_released = self.memory_released

        pids_limit = self.pids_limit

        runtime = self.runtime.value

        state = self.state.value

        workdir = self.workdir

        address: None | str | Unset
        if isinstance(self.address, Unset):
            address = UNSET
        else:
            address = self.address

        agent: None | str | Unset
        if isinstance(self.agent, Unset):
            agent = UNSET
        else:
            agent = self.agent

        disk_bytes: int | None | Unset
        if isinstance(self.disk_bytes, Unset):
            disk_bytes = UNSET
        else:
            disk_bytes = self.disk_bytes

        disk_used_bytes: int | None | Unset
        if isinstance(self.disk_used_bytes, Unset):
            disk_used_bytes = UNSET
        else:
            disk_used_bytes = self.disk_used_bytes

        idle_timeout_secs: int | None | Unset
        if isinstance(self.idle_timeout_secs, Unset):
            idle_timeout_secs = UNSET
        else:
            idle_timeout_secs = self.idle_timeout_secs

        name: None | str | Unset
        if isinstance(self.name, Unset):
            name = UNSET
        else:
            name = self.name

        network: str | Unset = UNSET
        if not isinstance(self.network, Unset):
            network = self.network.value

        parent_snapshot: None | str | Unset
        if isinstance(self.parent_snapshot, Unset):
            parent_snapshot = UNSET
        else:
            parent_snapshot = self.parent_snapshot

        pause_reason: None | str | Unset
        if isinstance(self.pause_reason, Unset):
            pause_reason = UNSET
        elif isinstance(self.pause_reason, PauseReason):
            pause_reason = self.pause_reason.value
        else:
            pause_reason = self.pause_reason

        paused_at: None | str | Unset
        if isinstance(self.paused_at, Unset):
            paused_at = UNSET
        elif isinstance(self.paused_at, datetime.datetime):
            paused_at = self.paused_at.isoformat()
        else:
            paused_at = self.paused_at

        published: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.published, Unset):
            published = []
            for published_item_data in self.published:
                published_item = published_item_data.to_dict()
                published.append(published_item)

        secrets: list[str] | Unset = UNSET
        if not isinstance(self.secrets, Unset):
            secrets = self.secrets

        state_reason: None | str | Unset
        if isinstance(self.state_reason, Unset):
            state_reason = UNSET
        else:
            state_reason = self.state_reason

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "cpus": cpus,
                "created_at": created_at,
                "env": env,
                "id": id,
                "image": image,
                "memory_bytes": memory_bytes,
                "memory_released": memory_released,
                "pids_limit": pids_limit,
                "runtime": runtime,
                "state": state,
                "workdir": workdir,
            }
        )
        if address is not UNSET:
            field_dict["address"] = address
        if agent is not UNSET:
            field_dict["agent"] = agent
        if disk_bytes is not UNSET:
            field_dict["disk_bytes"] = disk_bytes
        if disk_used_bytes is not UNSET:
            field_dict["disk_used_bytes"] = disk_used_bytes
        if idle_timeout_secs is not UNSET:
            field_dict["idle_timeout_secs"] = idle_timeout_secs
        if name is not UNSET:
            field_dict["name"] = name
        if network is not UNSET:
            field_dict["network"] = network
        if parent_snapshot is not UNSET:
            field_dict["parent_snapshot"] = parent_snapshot
        if pause_reason is not UNSET:
            field_dict["pause_reason"] = pause_reason
        if paused_at is not UNSET:
            field_dict["paused_at"] = paused_at
        if published is not UNSET:
            field_dict["published"] = published
        if secrets is not UNSET:
            field_dict["secrets"] = secrets
        if state_reason is not UNSET:
            field_dict["state_reason"] = state_reason

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.published_port import PublishedPort

        d = dict(src_dict)
        cpus = d.pop("cpus")

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        env = cast(list[str], d.pop("env"))

        id = d.pop("id")

        image = d.pop("image")

        memory_bytes = d.pop("memory_bytes")

        memory_released = d.pop("memory_released")

        pids_limit = d.pop("pids_limit")

        runtime = RuntimeKind(d.pop("runtime"))

        state = SandboxState(d.pop("state"))

        workdir = d.pop("workdir")

        def _parse_address(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        address = _parse_address(d.pop("address", UNSET))

        def _parse_agent(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        agent = _parse_agent(d.pop("agent", UNSET))

        def _parse_disk_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        disk_bytes = _parse_disk_bytes(d.pop("disk_bytes", UNSET))

        def _parse_disk_used_bytes(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        disk_used_bytes = _parse_disk_used_bytes(d.pop("disk_used_bytes", UNSET))

        def _parse_idle_timeout_secs(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        idle_timeout_secs = _parse_idle_timeout_secs(d.pop("idle_timeout_secs", UNSET))

        def _parse_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        name = _parse_name(d.pop("name", UNSET))

        _network = d.pop("network", UNSET)
        network: NetworkMode | Unset
        if isinstance(_network, Unset):
            network = UNSET
        else:
            network = NetworkMode(_network)

        def _parse_parent_snapshot(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        parent_snapshot = _parse_parent_snapshot(d.pop("parent_snapshot", UNSET))

        def _parse_pause_reason(data: object) -> None | PauseReason | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                pause_reason_type_1 = PauseReason(data)

                return pause_reason_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | PauseReason | Unset, data)

        pause_reason = _parse_pause_reason(d.pop("pause_reason", UNSET))

        def _parse_paused_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                paused_at_type_0 = datetime.datetime.fromisoformat(data)

                return paused_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        paused_at = _parse_paused_at(d.pop("paused_at", UNSET))

        _published = d.pop("published", UNSET)
        published: list[PublishedPort] | Unset = UNSET
        if _published is not UNSET:
            published = []
            for published_item_data in _published:
                published_item = PublishedPort.from_dict(published_item_data)

                published.append(published_item)

        secrets = cast(list[str], d.pop("secrets", UNSET))

        def _parse_state_reason(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        state_reason = _parse_state_reason(d.pop("state_reason", UNSET))

        sandbox_info = cls(
            cpus=cpus,
            created_at=created_at,
            env=env,
            id=id,
            image=image,
            memory_bytes=memory_bytes,
            memory_released=memory_released,
            pids_limit=pids_limit,
            runtime=runtime,
            state=state,
            workdir=workdir,
            address=address,
            agent=agent,
            disk_bytes=disk_bytes,
            disk_used_bytes=disk_used_bytes,
            idle_timeout_secs=idle_timeout_secs,
            name=name,
            network=network,
            parent_snapshot=parent_snapshot,
            pause_reason=pause_reason,
            paused_at=paused_at,
            published=published,
            secrets=secrets,
            state_reason=state_reason,
        )

        sandbox_info.additional_properties = d
        return sandbox_info

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
