from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field
from typing_extensions import Self

T = TypeVar("T", bound="CreateSandboxRequestSecrets")


@_attrs_define
class CreateSandboxRequestSecrets:
    """Secrets, `NAME` → value: files in the sandbox's `/run/secrets` (a tmpfs, mode 0400,
    owner root) and, with an exec's `secret_env`, variables. Stored sealed, never shown,
    removed before every snapshot and given back after it, a restore or a fork. Needs
    the agent. Names: a letter or `_`, then letters, digits or `_` (at most 64); at most
    32 secrets of at most 64 KiB each.

    """

    additional_properties: dict[str, str] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        create_sandbox_request_secrets = cls()

        create_sandbox_request_secrets.additional_properties = d
        return create_sandbox_request_secrets

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> str:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: str) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
