from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from typing_extensions import Self

T = TypeVar("T", bound="MoveRequest")


@_attrs_define
class MoveRequest:
    """`POST /v1/sandboxes/{id}/files/move`.

    Attributes:
        from_ (str): Absolute path of what to move.
        to (str): Its new absolute path (a file there is replaced).
    """

    from_: str
    to: str

    def to_dict(self) -> dict[str, Any]:
        from_ = self.from_

        to = self.to

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "from": from_,
                "to": to,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        from_ = d.pop("from")

        to = d.pop("to")

        move_request = cls(
            from_=from_,
            to=to,
        )

        return move_request
