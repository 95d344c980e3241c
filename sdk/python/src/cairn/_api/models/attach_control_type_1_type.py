from enum import StrEnum


class AttachControlType1Type(StrEnum):
    EOF = "eof"

    def __str__(self) -> str:
        return str(self.value)
