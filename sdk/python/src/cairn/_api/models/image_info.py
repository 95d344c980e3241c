from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field
from typing_extensions import Self

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.dropped_files import DroppedFiles
    from ..models.pull_report import PullReport


T = TypeVar("T", bound="ImageInfo")


@_attrs_define
class ImageInfo:
    """An image as the API shows it.

    Attributes:
        created_at (datetime.datetime): When it was imported.
        id (str): `img-` and 8 hex digits.
        name (str): Name, unique in its account (and among public images).
        size_bytes (int): Bytes its files take.
        source (str): Where it was imported from (empty for a public image of another account).
        dropped (DroppedFiles | Unset): How many special files of each kind an image import left out.
        owned (bool | Unset): Imported by the caller's account (only the owner, or the operator, removes it).
        public (bool | Unset): Published by the operator: every account may use it.
        pull (None | PullReport | Unset):
    """

    created_at: datetime.datetime
    id: str
    name: str
    size_bytes: int
    source: str
    dropped: DroppedFiles | Unset = UNSET
    owned: bool | Unset = UNSET
    public: bool | Unset = UNSET
    pull: None | PullReport | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.pull_report import PullReport

        created_at = self.created_at.isoformat()

        id = self.id

        name = self.name

        size_bytes = self.size_bytes

        source = self.source

        dropped: dict[str, Any] | Unset = UNSET
        if not isinstance(self.dropped, Unset):
            dropped = self.dropped.to_dict()

        owned = self.owned

        public = self.public

        pull: dict[str, Any] | None | Unset
        if isinstance(self.pull, Unset):
            pull = UNSET
        elif isinstance(self.pull, PullReport):
            pull = self.pull.to_dict()
        else:
            pull = self.pull

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "created_at": created_at,
                "id": id,
                "name": name,
                "size_bytes": size_bytes,
                "source": source,
            }
        )
        if dropped is not UNSET:
            field_dict["dropped"] = dropped
        if owned is not UNSET:
            field_dict["owned"] = owned
        if public is not UNSET:
            field_dict["public"] = public
        if pull is not UNSET:
            field_dict["pull"] = pull

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.dropped_files import DroppedFiles
        from ..models.pull_report import PullReport

        d = dict(src_dict)
        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        id = d.pop("id")

        name = d.pop("name")

        size_bytes = d.pop("size_bytes")

        source = d.pop("source")

        _dropped = d.pop("dropped", UNSET)
        dropped: DroppedFiles | Unset
        if isinstance(_dropped, Unset):
            dropped = UNSET
        else:
            dropped = DroppedFiles.from_dict(_dropped)

        owned = d.pop("owned", UNSET)

        public = d.pop("public", UNSET)

        def _parse_pull(data: object) -> None | PullReport | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                pull_type_1 = PullReport.from_dict(data)

                return pull_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | PullReport | Unset, data)

        pull = _parse_pull(d.pop("pull", UNSET))

        image_info = cls(
            created_at=created_at,
            id=id,
            name=name,
            size_bytes=size_bytes,
            source=source,
            dropped=dropped,
            owned=owned,
            public=public,
            pull=pull,
        )

        image_info.additional_properties = d
        return image_info

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
