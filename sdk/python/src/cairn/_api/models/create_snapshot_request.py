from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from typing_extensions import Self

from ..types import UNSET, Unset

T = TypeVar("T", bound="CreateSnapshotRequest")


@_attrs_define
class CreateSnapshotRequest:
    """`POST /v1/sandboxes/{id}/snapshots`.

    Attributes:
        name (None | str | Unset): Name (default: the UTC time); unique per sandbox.
        stateful (bool | Unset): Also capture process memory (gvisor sandboxes): forks and restores resume the
            processes.
    """

    name: None | str | Unset = UNSET
    stateful: bool | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        name: None | str | Unset
        if isinstance(self.name, Unset):
            name = UNSET
        else:
            name = self.name

        stateful = self.stateful

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if name is not UNSET:
            field_dict["name"] = name
        if stateful is not UNSET:
            field_dict["stateful"] = stateful

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)

        def _parse_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        name = _parse_name(d.pop("name", UNSET))

        stateful = d.pop("stateful", UNSET)

        create_snapshot_request = cls(
            name=name,
            stateful=stateful,
        )

        return create_snapshot_request
