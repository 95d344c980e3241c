from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from typing_extensions import Self

from ..types import UNSET, Unset

T = TypeVar("T", bound="ExecRequest")


@_attrs_define
class ExecRequest:
    """`POST /v1/sandboxes/{id}/exec`.

    Attributes:
        cmd (list[str]): Program and arguments. A single string is run by `/bin/sh -c` when the CLI is given one.
        detach (bool | Unset): Start it detached, as a child of the sandbox's init, and answer at once: the stream
            is one `started` event with its process id, or an `exit` (126, 127) with a message
            when it cannot start. Its output goes to /dev/null unless the command redirects it.
            Detached processes are the ones a stateful snapshot carries into forks and restores.
        env (list[str] | Unset): Extra environment, `KEY=VALUE`.
        secret_env (list[str] | Unset): Names of the sandbox's secrets to add to the command's environment as
            `NAME=VALUE`
            (needs the agent).
        started_event (bool | Unset): Attached: begin the stream with a `started` event that gives the process's id (in
            the
            sandbox), which `POST /v1/sandboxes/{id}/processes/{pid}/signal` takes. Only through
            the agent (an exec through the runtime has no such event).
        timeout_secs (int | None | Unset): Kill the command after this many seconds; the exit code is then 124.
        user (None | str | Unset): Run it as this user: a numeric `uid` or `uid:gid` (needs the agent). Default: the
            sandbox's (its template's `USER`), else root.
        workdir (None | str | Unset): Working directory (absolute); defaults to the sandbox's.
    """

    cmd: list[str]
    detach: bool | Unset = UNSET
    env: list[str] | Unset = UNSET
    secret_env: list[str] | Unset = UNSET
    started_event: bool | Unset = UNSET
    timeout_secs: int | None | Unset = UNSET
    user: None | str | Unset = UNSET
    workdir: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        cmd = self.cmd

        detach = self.detach

        env: list[str] | Unset = UNSET
        if not isinstance(self.env, Unset):
            env = self.env

        secret_env: list[str] | Unset = UNSET
        if not isinstance(self.secret_env, Unset):
            secret_env = self.secret_env

        started_event = self.started_event

        timeout_secs: int | None | Unset
        if isinstance(self.timeout_secs, Unset):
            timeout_secs = UNSET
        else:
            timeout_secs = self.timeout_secs

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
                "cmd": cmd,
            }
        )
        if detach is not UNSET:
            field_dict["detach"] = detach
        if env is not UNSET:
            field_dict["env"] = env
        if secret_env is not UNSET:
            field_dict["secret_env"] = secret_env
        if started_event is not UNSET:
            field_dict["started_event"] = started_event
        if timeout_secs is not UNSET:
            field_dict["timeout_secs"] = timeout_secs
        if user is not UNSET:
            field_dict["user"] = user
        if workdir is not UNSET:
            field_dict["workdir"] = workdir

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        cmd = cast(list[str], d.pop("cmd"))

        detach = d.pop("detach", UNSET)

        env = cast(list[str], d.pop("env", UNSET))

        secret_env = cast(list[str], d.pop("secret_env", UNSET))

        started_event = d.pop("started_event", UNSET)

        def _parse_timeout_secs(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        timeout_secs = _parse_timeout_secs(d.pop("timeout_secs", UNSET))

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

        exec_request = cls(
            cmd=cmd,
            detach=detach,
            env=env,
            secret_env=secret_env,
            started_event=started_event,
            timeout_secs=timeout_secs,
            user=user,
            workdir=workdir,
        )

        return exec_request
