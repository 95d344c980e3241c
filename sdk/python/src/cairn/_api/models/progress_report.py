from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field
from typing_extensions import Self

from ..models.progress_report_type import ProgressReportType
from ..models.progress_unit import ProgressUnit
from ..types import UNSET, Unset

T = TypeVar("T", bound="ProgressReport")


@_attrs_define
class ProgressReport:
    """How far one phase has come (intermediate reports of a phase may be skipped).

    Attributes:
        done (int): How much of the phase is done.
        phase (str): The phase: `forks`, `import`, `memory`, `layer sha256:…`.
        type_ (ProgressReportType):
        unit (ProgressUnit): What [`Progress::done`] and [`Progress::total`] count.
        total (int | None | Unset): How much there is in all, when known.
    """

    done: int
    phase: str
    type_: ProgressReportType
    unit: ProgressUnit
    total: int | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        done = self.done

        phase = self.phase

        type_ = self.type_.value

        unit = self.unit.value

        total: int | None | Unset
        if isinstance(self.total, Unset):
            total = UNSET
        else:
            total = self.total

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "done": done,
                "phase": phase,
                "type": type_,
                "unit": unit,
            }
        )
        if total is not UNSET:
            field_dict["total"] = total

        return field_dict

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        d = dict(src_dict)
        done = d.pop("done")

        phase = d.pop("phase")

        type_ = ProgressReportType(d.pop("type"))

        unit = ProgressUnit(d.pop("unit"))

        def _parse_total(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        total = _parse_total(d.pop("total", UNSET))

        progress_report = cls(
            done=done,
            phase=phase,
            type_=type_,
            unit=unit,
            total=total,
        )

        progress_report.additional_properties = d
        return progress_report

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
