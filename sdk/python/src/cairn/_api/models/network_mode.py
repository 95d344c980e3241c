from enum import StrEnum


class NetworkMode(StrEnum):
    NAT = "nat"
    NONE = "none"

    def __str__(self) -> str:
        return str(self.value)
