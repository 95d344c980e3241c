from enum import StrEnum


class AttachResizeType(StrEnum):
    RESIZE = "resize"

    def __str__(self) -> str:
        return str(self.value)
