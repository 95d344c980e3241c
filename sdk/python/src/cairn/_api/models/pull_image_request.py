from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from typing_extensions import Self

from ..types import UNSET, Unset

T = TypeVar("T", bound="PullImageRequest")


@_attrs_define
class PullImageRequest:
    """`POST /v1/images/pull`: pull an image from an OCI distribution registry.

    Attributes:
        reference (str): `host[:port]/repository[:tag|@sha256:digest]` (Docker Hub's short forms, such as
            `python:3.12`, too).
        name (None | str | Unset): Name for the new image (default: the repository's last component and the tag,
            `app-1.2`).
    """

    reference: str
    name: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        reference = self.reference

        name: None | str | Unset
        if isinstance(self.name, Unset):
            name = UNSET
        else:
            name = self.name

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "reference": reference,
            }
        )
        if name is not UNSET:
            field_dict["name"] = name

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        reference = d.pop("reference")

        def _parse_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        name = _parse_name(d.pop("name", UNSET))

        pull_image_request = cls(
            reference=reference,
            name=name,
        )

        return pull_image_request
