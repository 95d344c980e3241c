from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from typing_extensions import Self

from ..types import UNSET, Unset

T = TypeVar("T", bound="SignalRequest")


@_attrs_define
class SignalRequest:
    """`POST /v1/sandboxes/{id}/processes/{pid}/signal`.

    Attributes:
        signal (None | str | Unset): The signal: a name (`TERM`, `SIGKILL`…) or a number; `TERM` when absent.
    """

    signal: None | str | Unset = UNSET

    def to_dict(self) -> dict[str, Any]:
        signal: None | str | Unset
        if isinstance(self.signal, Unset):
            signal = UNSET
        else:
            signal = self.signal

        field_dict: dict[str, Any] = {}

        field_dict.update({})
        if signal is not UNSET:
            field_dict["signal"] = signal

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)

        def _parse_signal(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        signal = _parse_signal(d.pop("signal", UNSET))

        signal_request = cls(
            signal=signal,
        )

        return signal_request
