from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field
from typing_extensions import Self

from ..models.exec_exit_type import ExecExitType
from ..types import UNSET, Unset

T = TypeVar("T", bound="ExecExit")


@_attrs_define
class ExecExit:
    """The command ended with this code (128+N when killed by signal N; 124 on timeout; 126
    or 127 when it could not start; 137 when the sandbox died or was ended under it).

        Attributes:
            code (int): Exit code.
            type_ (ExecExitType):
            message (None | str | Unset): Why, when Cairn knows more than the code: the command could not start (a missing
                program or working directory), or its sandbox died (it is then `stopped` with the
                same reason), was stopped, restored, paused with its memory released or destroyed
                under it. Says what to do.
    """

    code: int
    type_: ExecExitType
    message: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        code = self.code

        type_ = self.type_.value

        message: None | str | Unset
        if isinstance(self.message, Unset):
            message = UNSET
        else:
            message = self.message

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "code": code,
                "type": type_,
            }
        )
        if message is not UNSET:
            field_dict["message"] = message

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        code = d.pop("code")

        type_ = ExecExitType(d.pop("type"))

        def _parse_message(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        message = _parse_message(d.pop("message", UNSET))

        exec_exit = cls(
            code=code,
            type_=type_,
            message=message,
        )

        exec_exit.additional_properties = d
        return exec_exit

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
