from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from typing_extensions import Self

from ..types import UNSET, Unset

T = TypeVar("T", bound="MkdirRequest")


@_attrs_define
class MkdirRequest:
    """`POST /v1/sandboxes/{id}/files/mkdir`.

    Attributes:
        path (str): Absolute path of the new directory.
        mode (int | None | Unset): Permission bits (default 0o755 = 493).
        parents (bool | Unset): Make missing parents too, and succeed when it exists (`mkdir -p`).
    """

    path: str
    mode: int | None | Unset = UNSET
    parents: bool | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        path = self.path

        mode: int | None | Unset
        if isinstance(self.mode, Unset):
            mode = UNSET
        else:
            mode = self.mode

        parents = self.parents

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "path": path,
            }
        )
        if mode is not UNSET:
            field_dict["mode"] = mode
        if parents is not UNSET:
            field_dict["parents"] = parents

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        path = d.pop("path")

        def _parse_mode(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        mode = _parse_mode(d.pop("mode", UNSET))

        parents = d.pop("parents", UNSET)

        mkdir_request = cls(
            path=path,
            mode=mode,
            parents=parents,
        )

        return mkdir_request
