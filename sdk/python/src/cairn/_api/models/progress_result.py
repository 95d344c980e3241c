from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field
from typing_extensions import Self

from ..models.progress_result_type import ProgressResultType

T = TypeVar("T", bound="ProgressResult")


@_attrs_define
class ProgressResult:
    """The operation succeeded: the status and JSON body of the ordinary answer.

    Attributes:
        body (Any): The ordinary answer's body.
        status (int): The ordinary answer's HTTP status (200 or 201).
        type_ (ProgressResultType):
    """

    body: Any
    status: int
    type_: ProgressResultType
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        body = self.body

        status = self.status

        type_ = self.type_.value

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "body": body,
                "status": status,
                "type": type_,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        body = d.pop("body")

        status = d.pop("status")

        type_ = ProgressResultType(d.pop("type"))

        progress_result = cls(
            body=body,
            status=status,
            type_=type_,
        )

        progress_result.additional_properties = d
        return progress_result

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
