from enum import StrEnum


class ExecStderrType(StrEnum):
    STDERR = "stderr"

    def __str__(self) -> str:
        return str(self.value)
