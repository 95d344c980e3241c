"""Cairn's Python SDK: sandboxes, exec, files, snapshots, restore and fork, sync and asyncio.

```python
from cairn import Cairn, Sandbox

cairn = Cairn("http://127.0.0.1:7421", token="ck_…")   # or Cairn(): $CAIRN_HOST, $CAIRN_TOKEN
with Sandbox.create(image="base", client=cairn) as sbx:  # destroyed on exit
    sbx.files.write("/work/plan.txt", "step 1\\n")
    print(sbx.exec("cat /work/plan.txt").text)
    snap = sbx.snapshot(name="before-risk")
    sbx.exec("rm -rf /work")
    sbx.restore(snap)                                     # /work is back
    forks = snap.fork(5)                                  # five new sandboxes
```

The layer here is hand-written; ``cairn._api`` under it is generated from docs/openapi.json
by openapi-python-client (see docs/sdk.md). Errors are typed: ``cairn.errors``.
"""

from ._async import AsyncCairn, AsyncFiles, AsyncSandbox, AsyncSnapshot
from ._common import ExecEvent, ExecResult
from ._sync import Cairn, Files, Sandbox, Snapshot
from .errors import (
    Busy,
    CairnError,
    CheckpointFailed,
    Conflict,
    ConnectionFailed,
    Forbidden,
    Internal,
    InvalidArgument,
    LimitExceeded,
    NotFound,
    PoolFull,
    RuntimeIdentityMismatch,
    TooLarge,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "AsyncCairn",
    "AsyncFiles",
    "AsyncSandbox",
    "AsyncSnapshot",
    "Busy",
    "Cairn",
    "CairnError",
    "CheckpointFailed",
    "Conflict",
    "ConnectionFailed",
    "ExecEvent",
    "ExecResult",
    "Files",
    "Forbidden",
    "Internal",
    "InvalidArgument",
    "LimitExceeded",
    "NotFound",
    "PoolFull",
    "RuntimeIdentityMismatch",
    "Sandbox",
    "Snapshot",
    "TooLarge",
    "Unauthenticated",
    "Unavailable",
]
