from enum import StrEnum


class ExecEventType3Type(StrEnum):
    ERROR = "error"

    def __str__(self) -> str:
        return str(self.value)
