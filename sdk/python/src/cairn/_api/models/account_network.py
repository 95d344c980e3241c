from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field
from typing_extensions import Self

T = TypeVar("T", bound="AccountNetwork")


@_attrs_define
class AccountNetwork:
    """`GET /v1/account/network` (and the answer to `PUT`): the caller's account's network settings.

    Attributes:
        account (str): The account.
        sandbox_to_sandbox (bool): Whether the account's `nat` sandboxes reach each other (off by default). Other
            accounts' sandboxes, the gateway and the host's addresses stay out of reach either way.
    """

    account: str
    sandbox_to_sandbox: bool
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        account = self.account

        sandbox_to_sandbox = self.sandbox_to_sandbox

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "account": account,
                "sandbox_to_sandbox": sandbox_to_sandbox,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        account = d.pop("account")

        sandbox_to_sandbox = d.pop("sandbox_to_sandbox")

        account_network = cls(
            account=account,
            sandbox_to_sandbox=sandbox_to_sandbox,
        )

        account_network.additional_properties = d
        return account_network

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
