from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field
from typing_extensions import Self

T = TypeVar("T", bound="DroppedFiles")


@_attrs_define
class DroppedFiles:
    """How many special files of each kind an image import left out.

    Attributes:
        block_devices (int): Block devices (disks, loop devices).
        char_devices (int): Character devices (`/dev/mem`-like nodes, wherever they were).
        fifos (int): Named pipes.
        sockets (int): Unix domain sockets.
    """

    block_devices: int
    char_devices: int
    fifos: int
    sockets: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        block_devices = self.block_devices

        char_devices = self.char_devices

        fifos = self.fifos

        sockets = self.sockets

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "block_devices": block_devices,
                "char_devices": char_devices,
                "fifos": fifos,
                "sockets": sockets,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        block_devices = d.pop("block_devices")

        char_devices = d.pop("char_devices")

        fifos = d.pop("fifos")

        sockets = d.pop("sockets")

        dropped_files = cls(
            block_devices=block_devices,
            char_devices=char_devices,
            fifos=fifos,
            sockets=sockets,
        )

        dropped_files.additional_properties = d
        return dropped_files

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
