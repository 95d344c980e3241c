from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from typing_extensions import Self

T = TypeVar("T", bound="PublishImageRequest")


@_attrs_define
class PublishImageRequest:
    """`POST /v1/images/{name}/publish`: make an image usable by every account, or private again.

    Attributes:
        public (bool): `true` to publish, `false` to make it private again.
    """

    public: bool

    def to_dict(self) -> dict[str, Any]:
        public = self.public

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "public": public,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        public = d.pop("public")

        publish_image_request = cls(
            public=public,
        )

        return publish_image_request
