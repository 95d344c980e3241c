from enum import StrEnum


class AttachEofType(StrEnum):
    EOF = "eof"

    def __str__(self) -> str:
        return str(self.value)
