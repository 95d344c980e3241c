from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field
from typing_extensions import Self

T = TypeVar("T", bound="RemoteDeleteInfo")


@_attrs_define
class RemoteDeleteInfo:
    """What `DELETE /v1/remote/snapshots/{id}` did.

    Attributes:
        collected_bytes (int): Their bytes.
        collected_chunks (int): Chunks no pushed snapshot of the account names any more, deleted.
        snapshot (str): The pushed snapshot deleted from the store (hosts that pulled it keep their copy).
    """

    collected_bytes: int
    collected_chunks: int
    snapshot: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        collected_bytes = self.collected_bytes

        collected_chunks = self.collected_chunks

        snapshot = self.snapshot

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "collected_bytes": collected_bytes,
                "collected_chunks": collected_chunks,
                "snapshot": snapshot,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        collected_bytes = d.pop("collected_bytes")

        collected_chunks = d.pop("collected_chunks")

        snapshot = d.pop("snapshot")

        remote_delete_info = cls(
            collected_bytes=collected_bytes,
            collected_chunks=collected_chunks,
            snapshot=snapshot,
        )

        remote_delete_info.additional_properties = d
        return remote_delete_info

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
