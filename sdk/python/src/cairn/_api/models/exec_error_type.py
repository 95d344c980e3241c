from enum import StrEnum


class ExecErrorType(StrEnum):
    ERROR = "error"

    def __str__(self) -> str:
        return str(self.value)
