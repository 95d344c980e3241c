from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from typing_extensions import Self

from ..types import UNSET, Unset

T = TypeVar("T", bound="RestoreRequest")


@_attrs_define
class RestoreRequest:
    """`POST /v1/snapshots/{id}/restore`.

    Attributes:
        fresh (bool | Unset): With a stateful snapshot: put back its files only, and boot a running sandbox on them
            instead of resuming the snapshot's processes (for a host or runtime they cannot resume on).
        to (None | str | Unset): Restore into this sandbox (id or name) instead of the source sandbox.
    """

    fresh: bool | Unset = UNSET
    to: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        fresh = self.fresh

        to: None | str | Unset
        if isinstance(self.to, Unset):
            to = UNSET
        else:
            to = self.to

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if fresh is not UNSET:
            field_dict["fresh"] = fresh
        if to is not UNSET:
            field_dict["to"] = to

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        fresh = d.pop("fresh", UNSET)

        def _parse_to(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        to = _parse_to(d.pop("to", UNSET))

        restore_request = cls(
            fresh=fresh,
            to=to,
        )

        return restore_request
