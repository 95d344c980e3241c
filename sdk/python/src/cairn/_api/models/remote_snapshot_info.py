from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field
from typing_extensions import Self

from ..models.runtime_kind import RuntimeKind

T = TypeVar("T", bound="RemoteSnapshotInfo")


@_attrs_define
class RemoteSnapshotInfo:
    """A snapshot in the remote catalog (`GET /v1/remote/snapshots`).

    Attributes:
        chunks (int): Chunks its archive stream was cut into.
        created_at (datetime.datetime): When it was taken.
        id (str): Its id (the same on every host).
        local (bool): Whether this host has it (forks need no pull).
        name (str): Its name.
        pushed_at (datetime.datetime): When it was pushed.
        runtime (RuntimeKind): Which OCI runtime drives a sandbox.
        size_bytes (int): Bytes of data it holds (files and memory).
        stateful (bool): Whether it holds memory (a fork resumes its processes).
    """

    chunks: int
    created_at: datetime.datetime
    id: str
    local: bool
    name: str
    pushed_at: datetime.datetime
    runtime: RuntimeKind
    size_bytes: int
    stateful: bool
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        chunks = self.chunks

        created_at = self.created_at.isoformat()

        id = self.id

        local = self.local

        name = self.name

        pushed_at = self.pushed_at.isoformat()

        runtime = self.runtime.value

        size_bytes = self.size_bytes

        stateful = self.stateful

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "chunks": chunks,
                "created_at": created_at,
                "id": id,
                "local": local,
                "name": name,
                "pushed_at": pushed_at,
                "runtime": runtime,
                "size_bytes": size_bytes,
                "stateful": stateful,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        chunks = d.pop("chunks")

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        id = d.pop("id")

        local = d.pop("local")

        name = d.pop("name")

        pushed_at = datetime.datetime.fromisoformat(d.pop("pushed_at"))

        runtime = RuntimeKind(d.pop("runtime"))

        size_bytes = d.pop("size_bytes")

        stateful = d.pop("stateful")

        remote_snapshot_info = cls(
            chunks=chunks,
            created_at=created_at,
            id=id,
            local=local,
            name=name,
            pushed_at=pushed_at,
            runtime=runtime,
            size_bytes=size_bytes,
            stateful=stateful,
        )

        remote_snapshot_info.additional_properties = d
        return remote_snapshot_info

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
