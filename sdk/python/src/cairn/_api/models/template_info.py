from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field
from typing_extensions import Self

from ..models.runtime_kind import RuntimeKind
from ..types import UNSET, Unset

T = TypeVar("T", bound="TemplateInfo")


@_attrs_define
class TemplateInfo:
    """A template: a name of your account for one of your snapshots, which `up --template`
    forks, with the process defaults its sandboxes get.

        Attributes:
            created_at (datetime.datetime): When it was made (or last rebuilt).
            env (list[str]): Environment (`KEY=VALUE`) its sandboxes' processes get over the snapshot's.
            image (str): The image under its files.
            name (str): Its name, unique in your account.
            runtime (RuntimeKind): Which OCI runtime drives a sandbox.
            snapshot (str): The snapshot it holds (which cannot be deleted while it does).
            stateful (bool): Whether the snapshot holds memory: its sandboxes start with its processes running.
            total_bytes (int): Bytes of the snapshot's whole tree.
            user (None | str | Unset): User (`uid` or `uid:gid`) recorded from the Cairnfile's `USER`, when set.
            workdir (None | str | Unset): Working directory its sandboxes' processes start in, when set.
    """

    created_at: datetime.datetime
    env: list[str]
    image: str
    name: str
    runtime: RuntimeKind
    snapshot: str
    stateful: bool
    total_bytes: int
    user: None | str | Unset = UNSET
    workdir: None | str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        created_at = self.created_at.isoformat()

        env = self.env

        image = self.image

        name = self.name

        runtime = self.runtime.value

        snapshot = self.snapshot

        stateful = self.stateful

        total_bytes = self.total_bytes

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
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "created_at": created_at,
                "env": env,
                "image": image,
                "name": name,
                "runtime": runtime,
                "snapshot": snapshot,
                "stateful": stateful,
                "total_bytes": total_bytes,
            }
        )
        if user is not UNSET:
            field_dict["user"] = user
        if workdir is not UNSET:
            field_dict["workdir"] = workdir

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))

        env = cast(list[str], d.pop("env"))

        image = d.pop("image")

        name = d.pop("name")

        runtime = RuntimeKind(d.pop("runtime"))

        snapshot = d.pop("snapshot")

        stateful = d.pop("stateful")

        total_bytes = d.pop("total_bytes")

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

        template_info = cls(
            created_at=created_at,
            env=env,
            image=image,
            name=name,
            runtime=runtime,
            snapshot=snapshot,
            stateful=stateful,
            total_bytes=total_bytes,
            user=user,
            workdir=workdir,
        )

        template_info.additional_properties = d
        return template_info

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
