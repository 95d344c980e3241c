from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field
from typing_extensions import Self

from ..types import UNSET, Unset

T = TypeVar("T", bound="FileEntry")


@_attrs_define
class FileEntry:
    """A file, directory or link inside a sandbox or snapshot (the files API).

    Attributes:
        gid (int): Numeric group.
        kind (str): `file`, `directory`, `symlink`, `fifo`, `socket`, `char_device` or `block_device`.
        mode (int): Permission bits, set-id and sticky bits (e.g. 420 for 0o644).
        mtime (int): Last modification, in seconds since the Unix epoch.
        path (str): Absolute path inside the sandbox.
        size (int): Bytes (a symlink: its target's length; a directory: what the filesystem says).
        uid (int): Numeric owner.
        target (None | str | Unset): A symlink's target, as stored (never followed).
    """

    gid: int
    kind: str
    mode: int
    mtime: int
    path: str
    size: int
    uid: int
    target: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        gid = self.gid

        kind = self.kind

        mode = self.mode

        mtime = self.mtime

        path = self.path

        size = self.size

        uid = self.uid

        target: None | str | Unset
        if isinstance(self.target, Unset):
            target = UNSET
        else:
            target = self.target

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "gid": gid,
                "kind": kind,
                "mode": mode,
                "mtime": mtime,
                "path": path,
                "size": size,
                "uid": uid,
            }
        )
        if target is not UNSET:
            field_dict["target"] = target

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        gid = d.pop("gid")

        kind = d.pop("kind")

        mode = d.pop("mode")

        mtime = d.pop("mtime")

        path = d.pop("path")

        size = d.pop("size")

        uid = d.pop("uid")

        def _parse_target(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        target = _parse_target(d.pop("target", UNSET))

        file_entry = cls(
            gid=gid,
            kind=kind,
            mode=mode,
            mtime=mtime,
            path=path,
            size=size,
            uid=uid,
            target=target,
        )

        file_entry.additional_properties = d
        return file_entry

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
