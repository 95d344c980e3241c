from enum import StrEnum


class ProgressErrorType(StrEnum):
    ERROR = "error"

    def __str__(self) -> str:
        return str(self.value)
