from enum import StrEnum


class ProgressReportType(StrEnum):
    PROGRESS = "progress"

    def __str__(self) -> str:
        return str(self.value)
