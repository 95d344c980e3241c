from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field
from typing_extensions import Self

T = TypeVar("T", bound="PullReport")


@_attrs_define
class PullReport:
    """What an image pull fetched from its registry.

    Attributes:
        digest (str): The digest of the image manifest pulled (`sha256:…`).
        downloaded_bytes (int): Bytes downloaded for them.
        layers (int): Layers the image has.
        layers_downloaded (int): Layers downloaded (the others were already in the host's blob cache).
        reference (str): The reference pulled, in full (`registry.example.com/team/app:1.2`).
    """

    digest: str
    downloaded_bytes: int
    layers: int
    layers_downloaded: int
    reference: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        digest = self.digest

        downloaded_bytes = self.downloaded_bytes

        layers = self.layers

        layers_downloaded = self.layers_downloaded

        reference = self.reference

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "digest": digest,
                "downloaded_bytes": downloaded_bytes,
                "layers": layers,
                "layers_downloaded": layers_downloaded,
                "reference": reference,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        digest = d.pop("digest")

        downloaded_bytes = d.pop("downloaded_bytes")

        layers = d.pop("layers")

        layers_downloaded = d.pop("layers_downloaded")

        reference = d.pop("reference")

        pull_report = cls(
            digest=digest,
            downloaded_bytes=downloaded_bytes,
            layers=layers,
            layers_downloaded=layers_downloaded,
            reference=reference,
        )

        pull_report.additional_properties = d
        return pull_report

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
