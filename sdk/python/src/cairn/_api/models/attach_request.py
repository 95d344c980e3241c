from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from typing_extensions import Self

from ..types import UNSET, Unset

T = TypeVar("T", bound="AttachRequest")


@_attrs_define
class AttachRequest:
    """The first message a client sends on the `attach` WebSocket: the command
    and how to wire it. Then binary messages carry stdin bytes and text
    messages carry [`AttachControl`]; the server answers with one text
    [`ExecEvent`] per message, ending with `exit` or `error`.

        Attributes:
            cmd (list[str]): Program and arguments.
            cols (int | None | Unset): Terminal width.
            env (list[str] | Unset): Extra environment, `KEY=VALUE`.
            rows (int | None | Unset): Terminal height.
            secret_env (list[str] | Unset): Names of the sandbox's secrets to add to the command's environment (as exec's).
            timeout_secs (int | None | Unset): Kill the command after this many seconds (exit code 124).
            tty (bool | Unset): Give the command a terminal (stdout and stderr then arrive merged as `stdout`).
            workdir (None | str | Unset): Working directory (absolute).
    """

    cmd: list[str]
    cols: int | None | Unset = UNSET
    env: list[str] | Unset = UNSET
    rows: int | None | Unset = UNSET
    secret_env: list[str] | Unset = UNSET
    timeout_secs: int | None | Unset = UNSET
    tty: bool | Unset = UNSET
    workdir: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        cmd = self.cmd

        cols: int | None | Unset
        if isinstance(self.cols, Unset):
            cols = UNSET
        else:
            cols = self.cols

        env: list[str] | Unset = UNSET
        if not isinstance(self.env, Unset):
            env = self.env

        rows: int | None | Unset
        if isinstance(self.rows, Unset):
            rows = UNSET
        else:
            rows = self.rows

        secret_env: list[str] | Unset = UNSET
        if not isinstance(self.secret_env, Unset):
            secret_env = self.secret_env

        timeout_secs: int | None | Unset
        if isinstance(self.timeout_secs, Unset):
            timeout_secs = UNSET
        else:
            timeout_secs = self.timeout_secs

        tty = self.tty

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
        if cols is not UNSET:
            field_dict["cols"] = cols
        if env is not UNSET:
            field_dict["env"] = env
        if rows is not UNSET:
            field_dict["rows"] = rows
        if secret_env is not UNSET:
            field_dict["secret_env"] = secret_env
        if timeout_secs is not UNSET:
            field_dict["timeout_secs"] = timeout_secs
        if tty is not UNSET:
            field_dict["tty"] = tty
        if workdir is not UNSET:
            field_dict["workdir"] = workdir

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        cmd = cast(list[str], d.pop("cmd"))

        def _parse_cols(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        cols = _parse_cols(d.pop("cols", UNSET))

        env = cast(list[str], d.pop("env", UNSET))

        def _parse_rows(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        rows = _parse_rows(d.pop("rows", UNSET))

        secret_env = cast(list[str], d.pop("secret_env", UNSET))

        def _parse_timeout_secs(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        timeout_secs = _parse_timeout_secs(d.pop("timeout_secs", UNSET))

        tty = d.pop("tty", UNSET)

        def _parse_workdir(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        workdir = _parse_workdir(d.pop("workdir", UNSET))

        attach_request = cls(
            cmd=cmd,
            cols=cols,
            env=env,
            rows=rows,
            secret_env=secret_env,
            timeout_secs=timeout_secs,
            tty=tty,
            workdir=workdir,
        )

        return attach_request
