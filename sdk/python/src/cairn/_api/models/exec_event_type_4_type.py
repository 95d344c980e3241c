from enum import StrEnum


class ExecEventType4Type(StrEnum):
    STARTED = "started"

    def __str__(self) -> str:
        return str(self.value)
