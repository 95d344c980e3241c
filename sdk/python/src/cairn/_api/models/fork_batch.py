from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field
from typing_extensions import Self

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.error_detail import ErrorDetail
    from ..models.sandbox_info import SandboxInfo


T = TypeVar("T", bound="ForkBatch")


@_attrs_define
class ForkBatch:
    """The answer to `POST /v1/snapshots/{id}/fork`: the forks made, in order, and why the
    others (if any) were not. A fork that failed left nothing behind.

        Attributes:
            sandboxes (list[SandboxInfo]): The forks made.
            failed (list[ErrorDetail] | Unset): One error for each fork that was not made (empty when all were).
    """

    sandboxes: list[SandboxInfo]
    failed: list[ErrorDetail] | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        sandboxes = []
        for sandboxes_item_data in self.sandboxes:
            sandboxes_item = sandboxes_item_data.to_dict()
            sandboxes.append(sandboxes_item)

        failed: list[dict[str, Any]] | Unset = UNSET
        if not isinstance(self.failed, Unset):
            failed = []
            for failed_item_data in self.failed:
                failed_item = failed_item_data.to_dict()
                failed.append(failed_item)

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "sandboxes": sandboxes,
            }
        )
        if failed is not UNSET:
            field_dict["failed"] = failed

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        from ..models.error_detail import ErrorDetail
        from ..models.sandbox_info import SandboxInfo

        d = dict(src_dict)
        sandboxes = []
        _sandboxes = d.pop("sandboxes")
        for sandboxes_item_data in _sandboxes:
            sandboxes_item = SandboxInfo.from_dict(sandboxes_item_data)

            sandboxes.append(sandboxes_item)

        _failed = d.pop("failed", UNSET)
        failed: list[ErrorDetail] | Unset = UNSET
        if _failed is not UNSET:
            failed = []
            for failed_item_data in _failed:
                failed_item = ErrorDetail.from_dict(failed_item_data)

                failed.append(failed_item)

        fork_batch = cls(
            sandboxes=sandboxes,
            failed=failed,
        )

        fork_batch.additional_properties = d
        return fork_batch

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
