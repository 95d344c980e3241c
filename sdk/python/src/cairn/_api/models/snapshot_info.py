from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field
from typing_extensions import Self

from ..models.runtime_kind import RuntimeKind
from ..models.snapshot_state import SnapshotState
from ..types import UNSET, Unset

T = TypeVar("T", bound="SnapshotInfo")


@_attrs_define
class SnapshotInfo:
    """A snapshot as the API shows it.

    Attributes:
        auto (bool): Taken automatically by a pause (`auto-pause-…`): Cairn prunes old ones, and they do
            not count against the per-sandbox limit.
        created_at (datetime.datetime): When it was taken.
        id (str): `snap-` and 8 hex digits.
        image (str): Image the sandbox came from.
        name (str): Name, unique per sandbox.
        runtime (RuntimeKind): Which OCI runtime drives a sandbox.
        sandbox (str): The sandbox it was taken from (it may have been destroyed since).
        size_bytes (int): Bytes it holds over its parent (added and modified files).
        state (SnapshotState): Where a snapshot is in its life: `creating → ready`, `failed` (with an
            error), `deleted` (being removed).
        stateful (bool): Whether it holds process memory (a fork resumes the running processes).
        total_bytes (int): Bytes of its whole tree.
        error (None | str | Unset): Why it failed.
        imported_from (None | str | Unset): The id it had on the host it was exported from, when it was imported from an
            archive (`cairn snapshot import`); its source sandbox is then on that host.
        parent (None | str | Unset): The snapshot this one is incremental over, if any.
        sandbox_name (None | str | Unset): That sandbox's name when the snapshot was taken (`null`: it had none), kept
            after the
            sandbox is destroyed: `SANDBOX:NAME` refers to a snapshot by either.
    """

    auto: bool
    created_at: datetime.datetime
    id: str
    image: str
    name: str
    runtime: RuntimeKind
    sandbox: str
    size_bytes: int
    state: SnapshotState
    stateful: bool
    total_bytes: int
    error: None | str | Unset = UNSET
    imported_from: None | str | Unset = UNSET
    parent: None | str | Unset = UNSET
    sandbox_name: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        auto = self.auto

        created_at = self.created_at.isoformat()

        id = self.id

        image = self.image

        name = self.name

        runtime = self.runtime.value

        sandbox = self.sandbox

        size_bytes = self.size_bytes

        state = self.state.value

        stateful = self.stateful

        total_bytes = self.total_bytes

        error: None | str | Unset
        if isinstance(self.error, Unset):
            error = UNSET
        else:
            error = self.error

        imported_from: None | str | Unset
        if isinstance(self.imported_from, Unset):
            imported_from = UNSET
        else:
            imported_from = self.imported_from

        parent: None | str | Unset
        if isinstance(self.parent, Unset):
            parent = UNSET
        else:
            parent = self.parent

        sandbox_name: None | str | Unset
        if isinstance(self.sandbox_name, Unset):
            sandbox_name = UNSET
        else:
            sandbox_name = self.sandbox_name

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "auto": auto,
                "created_at": created_at,
                "id": id,
                "image": image,
                "name": name,
                "runtime": runtime,
                "sandbox": sandbox,
                "size_bytes": size_bytes,
                "state": state,
                "stateful": stateful,
                "total_bytes": total_bytes,
            }
        )
        if error is not UNSET:
            field_dict["error"] = error
        if imported_from is not UNSET:
            field_dict["imported_from"] = imported_from
        if parent is not UNSET:
            field_dict["parent"] = parent
        if sandbox_name is not UNSET:
            field_dict["sandbox_name"] = sandbox_name

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        auto = d.pop("auto")

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        id = d.pop("id")

        image = d.pop("image")

        name = d.pop("name")

        runtime = RuntimeKind(d.pop("runtime"))

        sandbox = d.pop("sandbox")

        size_bytes = d.pop("size_bytes")

        state = SnapshotState(d.pop("state"))

        stateful = d.pop("stateful")

        total_bytes = d.pop("total_bytes")

        def _parse_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        error = _parse_error(d.pop("error", UNSET))

        def _parse_imported_from(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        imported_from = _parse_imported_from(d.pop("imported_from", UNSET))

        def _parse_parent(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        parent = _parse_parent(d.pop("parent", UNSET))

        def _parse_sandbox_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        sandbox_name = _parse_sandbox_name(d.pop("sandbox_name", UNSET))

        snapshot_info = cls(
            auto=auto,
            created_at=created_at,
            id=id,
            image=image,
            name=name,
            runtime=runtime,
            sandbox=sandbox,
            size_bytes=size_bytes,
            state=state,
            stateful=stateful,
            total_bytes=total_bytes,
            error=error,
            imported_from=imported_from,
            parent=parent,
            sandbox_name=sandbox_name,
        )

        snapshot_info.additional_properties = d
        return snapshot_info

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
