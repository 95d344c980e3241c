from enum import StrEnum


class PauseReason(StrEnum):
    IDLE = "idle"
    USER = "user"

    def __str__(self) -> str:
        return str(self.value)
