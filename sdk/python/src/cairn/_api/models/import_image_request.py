from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from typing_extensions import Self

from ..types import UNSET, Unset

T = TypeVar("T", bound="ImportImageRequest")


@_attrs_define
class ImportImageRequest:
    """`POST /v1/images` with a JSON body (the operator only): import a root filesystem
    directory, an OCI image archive (`docker save`/`skopeo copy oci-archive:` style tar) or an
    OCI layout tarball that lies on the daemon's host. Tenants upload the archive as the
    request body instead (`POST /v1/images?name=NAME`).

        Attributes:
            name (str): Name for the new image.
            path (str): Absolute path on the daemon's host: a directory or a `.tar`/`.tar.gz` file.
            public (bool | Unset): Publish it to every account at once (the operator only).
    """

    name: str
    path: str
    public: bool | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        name = self.name

        path = self.path

        public = self.public

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "name": name,
                "path": path,
            }
        )
        if public is not UNSET:
            field_dict["public"] = public

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        name = d.pop("name")

        path = d.pop("path")

        public = d.pop("public", UNSET)

        import_image_request = cls(
            name=name,
            path=path,
            public=public,
        )

        return import_image_request
