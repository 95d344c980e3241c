from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field
from typing_extensions import Self

T = TypeVar("T", bound="ProcessInfo")


@_attrs_define
class ProcessInfo:
    """`GET /v1/sandboxes/{id}/processes`: one process of a running sandbox.

    Attributes:
        cmd (str): Its command line (arguments joined by spaces), or its name in brackets.
        pid (int): Its pid in the sandbox.
        ppid (int): Its parent's pid.
    """

    cmd: str
    pid: int
    ppid: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        cmd = self.cmd

        pid = self.pid

        ppid = self.ppid

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "cmd": cmd,
                "pid": pid,
                "ppid": ppid,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        cmd = d.pop("cmd")

        pid = d.pop("pid")

        ppid = d.pop("ppid")

        process_info = cls(
            cmd=cmd,
            pid=pid,
            ppid=ppid,
        )

        process_info.additional_properties = d
        return process_info

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
