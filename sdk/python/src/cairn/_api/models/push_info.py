from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field
from typing_extensions import Self

T = TypeVar("T", bound="PushInfo")


@_attrs_define
class PushInfo:
    """What `POST /v1/snapshots/{id}/push` did.

    Attributes:
        already_pushed (bool): The remote held it already: nothing was read or uploaded.
        bytes_ (int): Bytes of its archive stream.
        chunks (int): Chunks its archive stream was cut into (0 when already pushed).
        seconds (float): How long it took.
        snapshot (str): The snapshot pushed (it keeps its id on the remote and on every host that pulls it).
        uploaded_bytes (int): Bytes uploaded.
        uploaded_chunks (int): Chunks uploaded (the others were in the store already).
    """

    already_pushed: bool
    bytes_: int
    chunks: int
    seconds: float
    snapshot: str
    uploaded_bytes: int
    uploaded_chunks: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        already_pushed = self.already_pushed

        bytes_ = self.bytes_

        chunks = self.chunks

        seconds = self.seconds

        snapshot = self.snapshot

        uploaded_bytes = self.uploaded_bytes

        uploaded_chunks = self.uploaded_chunks

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "already_pushed": already_pushed,
                "bytes": bytes_,
                "chunks": chunks,
                "seconds": seconds,
                "snapshot": snapshot,
                "uploaded_bytes": uploaded_bytes,
                "uploaded_chunks": uploaded_chunks,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        already_pushed = d.pop("already_pushed")

        bytes_ = d.pop("bytes")

        chunks = d.pop("chunks")

        seconds = d.pop("seconds")

        snapshot = d.pop("snapshot")

        uploaded_bytes = d.pop("uploaded_bytes")

        uploaded_chunks = d.pop("uploaded_chunks")

        push_info = cls(
            already_pushed=already_pushed,
            bytes_=bytes_,
            chunks=chunks,
            seconds=seconds,
            snapshot=snapshot,
            uploaded_bytes=uploaded_bytes,
            uploaded_chunks=uploaded_chunks,
        )

        push_info.additional_properties = d
        return push_info

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
