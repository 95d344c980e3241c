from enum import StrEnum


class ProgressResultType(StrEnum):
    RESULT = "result"

    def __str__(self) -> str:
        return str(self.value)
