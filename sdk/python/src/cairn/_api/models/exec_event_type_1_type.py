from enum import StrEnum


class ExecEventType1Type(StrEnum):
    STDERR = "stderr"

    def __str__(self) -> str:
        return str(self.value)
