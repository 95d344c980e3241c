from enum import StrEnum


class ExecExitType(StrEnum):
    EXIT = "exit"

    def __str__(self) -> str:
        return str(self.value)
