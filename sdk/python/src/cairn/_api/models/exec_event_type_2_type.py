from enum import StrEnum


class ExecEventType2Type(StrEnum):
    EXIT = "exit"

    def __str__(self) -> str:
        return str(self.value)
