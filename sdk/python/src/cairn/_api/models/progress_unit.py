from enum import StrEnum


class ProgressUnit(StrEnum):
    BYTES = "bytes"
    ITEMS = "items"

    def __str__(self) -> str:
        return str(self.value)
