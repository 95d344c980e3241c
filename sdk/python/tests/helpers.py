"""What the SDK's tests share: the cairnd they drive (from the environment that
crates/cairn/tests/sdk.rs sets: CAIRN_HOST and CAIRN_TOKEN), the runtime
(CAIRN_RUNTIME) and the image (CAIRN_IMAGE)."""

import os
import sys
import traceback

RUNTIME = os.environ.get("CAIRN_RUNTIME", "gvisor")
IMAGE = os.environ.get("CAIRN_IMAGE", "base")


def run(tests):
    """Runs each test function in turn; exits 1 at the first failure, else prints 'all passed'."""
    for test in tests:
        print(f"--- {test.__name__} ({RUNTIME})", flush=True)
        try:
            test()
        except Exception:
            traceback.print_exc()
            print(f"FAILED: {test.__name__}", flush=True)
            sys.exit(1)
    print("all passed", flush=True)
