from enum import StrEnum


class RuntimeKind(StrEnum):
    GVISOR = "gvisor"
    RUNC = "runc"

    def __str__(self) -> str:
        return str(self.value)
