from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from typing_extensions import Self

T = TypeVar("T", bound="RegistryLoginRequest")


@_attrs_define
class RegistryLoginRequest:
    """`POST /v1/registries/login`: credentials for a registry, kept (sealed) for the caller's
    account and used by its pulls from that registry. Never returned by any request.

        Attributes:
            host (str): The registry, `host[:port]` as references write it (`registry.example.com`).
            password (str): Password or access token.
            username (str): User name.
    """

    host: str
    password: str
    username: str

    def to_dict(self) -> dict[str, Any]:
        host = self.host

        password = self.password

        username = self.username

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "host": host,
                "password": password,
                "username": username,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        host = d.pop("host")

        password = d.pop("password")

        username = d.pop("username")

        registry_login_request = cls(
            host=host,
            password=password,
            username=username,
        )

        return registry_login_request
