from enum import StrEnum


class AttachControlType0Type(StrEnum):
    RESIZE = "resize"

    def __str__(self) -> str:
        return str(self.value)
