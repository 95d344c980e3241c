from enum import StrEnum


class SandboxState(StrEnum):
    CREATING = "creating"
    DESTROYED = "destroyed"
    FAILED = "failed"
    PAUSED = "paused"
    RUNNING = "running"
    STOPPED = "stopped"

    def __str__(self) -> str:
        return str(self.value)
