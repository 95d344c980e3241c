from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from typing_extensions import Self

from ..types import UNSET, Unset

T = TypeVar("T", bound="CreateTemplateRequest")


@_attrs_define
class CreateTemplateRequest:
    """`POST /v1/templates`: name one of your snapshots as a template.

    Attributes:
        from_snapshot (str): The snapshot: its id, `NAME` or `SANDBOX:NAME` (a ready one you took).
        name (str): The template's name (letters, digits, `.`, `_`, `-`; unique in your account).
        env (list[str] | Unset): Environment (`KEY=VALUE`) its sandboxes get over the snapshot's.
        replace (bool | Unset): Replace a template of that name (a rebuild) instead of refusing; the build steps only
            the old one used are deleted.
        user (None | str | Unset): User (`uid` or `uid:gid`, numeric) to record.
        workdir (None | str | Unset): Working directory (absolute) its sandboxes' processes start in.
    """

    from_snapshot: str
    name: str
    env: list[str] | Unset = UNSET
    replace: bool | Unset = UNSET
    user: None | str | Unset = UNSET
    workdir: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        from_snapshot = self.from_snapshot

        name = self.name

        env: list[str] | Unset = UNSET
        if not isinstance(self.env, Unset):
            env = self.env

        replace = self.replace

        user: None | str | Unset
        if isinstance(self.user, Unset):
            user = UNSET
        else:
            user = self.user

        workdir: None | str | Unset
        if isinstance(self.workdir, Unset):
            workdir = UNSET
        else:
            workdir = self.workdir

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "from_snapshot": from_snapshot,
                "name": name,
            }
        )
        if env is not UNSET:
            field_dict["env"] = env
        if replace is not UNSET:
            field_dict["replace"] = replace
        if user is not UNSET:
            field_dict["user"] = user
        if workdir is not UNSET:
            field_dict["workdir"] = workdir

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        from_snapshot = d.pop("from_snapshot")

        name = d.pop("name")

        env = cast(list[str], d.pop("env", UNSET))

        replace = d.pop("replace", UNSET)

        def _parse_user(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        user = _parse_user(d.pop("user", UNSET))

        def _parse_workdir(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        workdir = _parse_workdir(d.pop("workdir", UNSET))

        create_template_request = cls(
            from_snapshot=from_snapshot,
            name=name,
            env=env,
            replace=replace,
            user=user,
            workdir=workdir,
        )

        return create_template_request
