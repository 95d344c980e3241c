from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field
from typing_extensions import Self

from ..models.exec_stdout_type import ExecStdoutType

T = TypeVar("T", bound="ExecStdout")


@_attrs_define
class ExecStdout:
    """Bytes the command wrote to stdout, base64-encoded.

    Attributes:
        data (str): Base64 of the bytes.
        type_ (ExecStdoutType):
    """

    data: str
    type_: ExecStdoutType
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

        type_ = ExecStdoutType(d.pop("type"))

        exec_stdout = cls(
            data=data,
            type_=type_,
        )

        exec_stdout.additional_properties = d
        return exec_stdout

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
