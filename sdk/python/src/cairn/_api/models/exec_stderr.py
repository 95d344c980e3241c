from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field
from typing_extensions import Self

from ..models.exec_stderr_type import ExecStderrType

T = TypeVar("T", bound="ExecStderr")


@_attrs_define
class ExecStderr:
    """Bytes the command wrote to stderr, base64-encoded.

    Attributes:
        data (str): Base64 of the bytes.
        type_ (ExecStderrType):
    """

    data: str
    type_: ExecStderrType
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = self.data

        type_ = self.type_.value

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "data": data,
                "type": type_,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        data = d.pop("data")

        type_ = ExecStderrType(d.pop("type"))

        exec_stderr = cls(
            data=data,
            type_=type_,
        )

        exec_stderr.additional_properties = d
        return exec_stderr

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
