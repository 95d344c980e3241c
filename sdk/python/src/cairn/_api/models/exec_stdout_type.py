from enum import StrEnum


class ExecStdoutType(StrEnum):
    STDOUT = "stdout"

    def __str__(self) -> str:
        return str(self.value)
