from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from typing_extensions import Self

T = TypeVar("T", bound="TemplateStep")


@_attrs_define
class TemplateStep:
    """`GET|PUT /v1/template-steps/{key}`: one cached build step of your account.

    Attributes:
        snapshot (str): The snapshot the step left (one of yours, ready).
    """

    snapshot: str

    def to_dict(self) -> dict[str, Any]:
        snapshot = self.snapshot

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "snapshot": snapshot,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        snapshot = d.pop("snapshot")

        template_step = cls(
            snapshot=snapshot,
        )

        return template_step
