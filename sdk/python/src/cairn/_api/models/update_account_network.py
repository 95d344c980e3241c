from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from typing_extensions import Self

T = TypeVar("T", bound="UpdateAccountNetwork")


@_attrs_define
class UpdateAccountNetwork:
    """`PUT /v1/account/network`.

    Attributes:
        sandbox_to_sandbox (bool): Let the account's `nat` sandboxes reach each other (`true`) or not (`false`); applies
            at once to the running ones.
    """

    sandbox_to_sandbox: bool

    def to_dict(self) -> dict[str, Any]:
        sandbox_to_sandbox = self.sandbox_to_sandbox

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "sandbox_to_sandbox": sandbox_to_sandbox,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        sandbox_to_sandbox = d.pop("sandbox_to_sandbox")

        update_account_network = cls(
            sandbox_to_sandbox=sandbox_to_sandbox,
        )

        return update_account_network
