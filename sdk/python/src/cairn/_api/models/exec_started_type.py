from enum import StrEnum


class ExecStartedType(StrEnum):
    STARTED = "started"

    def __str__(self) -> str:
        return str(self.value)
