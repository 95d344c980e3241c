"""The seeds' programmatic workflows, synchronous: checkpoint before a risky step and restore,
the iterative agent loop with save points, forks, files, exec streaming, pause and resume,
typed errors and context managers. Run by crates/cairn/tests/sdk.rs against a real cairnd."""

import os
import tempfile
import time

from helpers import IMAGE, RUNTIME, run

import cairn
from cairn import Cairn, Sandbox

client = Cairn()  # CAIRN_HOST + CAIRN_TOKEN from the environment


def wait_for(condition, seconds=10.0):
    """Waits until ``condition()`` holds."""
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.1)


def new_sandbox(**options):
    return Sandbox.create(image=IMAGE, runtime=RUNTIME, client=client, **options)


def test_checkpoint_before_risk_then_restore():
    with new_sandbox() as sbx:
        sbx.files.mkdir("/work")
        sbx.files.write("/work/app.py", "print('v1')\n")
        sbx.files.write("/work/data.txt", b"\x00precious\xff")
        snap = sbx.snapshot(name="before-risk")
        assert snap.name == "before-risk" and snap.id.startswith("snap-"), snap
        risky = sbx.exec("rm -rf /work && echo broken > /etc/marker && exit 3")
        assert risky.exit_code == 3, risky
        assert not sbx.files.exists("/work/app.py")
        sbx.restore(snap)
        assert sbx.state == "running", sbx.state
        assert sbx.files.read_text("/work/app.py") == "print('v1')\n"
        assert sbx.files.read("/work/data.txt") == b"\x00precious\xff"
        assert sbx.exec(["cat", "/etc/marker"]).exit_code != 0
        # By name too, as SANDBOX:NAME.
        sbx.exec("rm /work/app.py")
        sbx.restore(f"{sbx.id}:before-risk")
        assert sbx.files.exists("/work/app.py")


def test_iterative_agent_loop_with_save_points():
    steps = [
        "echo 'def add(a, b): return a + b' > /work/lib.sh",
        "echo 'broken code' > /work/lib.sh && exit 1",  # the agent's mistake
        "echo 'tests: ok' > /work/tests.txt",
        "mkdir -p /work/out && echo built > /work/out/result",
    ]
    with new_sandbox(name="agent-loop") as sbx:
        sbx.files.mkdir("/work")
        save_points = [sbx.snapshot(name="step-0")]
        rolled_back = 0
        for i, step in enumerate(steps, start=1):
            result = sbx.exec(step)
            if result.exit_code != 0:
                # Undo the failed step: back to the last save point, then go on.
                sbx.restore(save_points[-1])
                rolled_back += 1
                continue
            save_points.append(sbx.snapshot(name=f"step-{i}"))
        assert rolled_back == 1
        assert sbx.files.read_text("/work/lib.sh") == "def add(a, b): return a + b\n"
        assert sbx.files.read_text("/work/out/result") == "built\n"
        names = [s.name for s in sbx.snapshots()]
        assert names == ["step-0", "step-1", "step-3", "step-4"], names
        # Each save point holds what was true then.
        changed = {d.path for d in save_points[1].diff(save_points[-1])}
        assert "/work/tests.txt" in changed and "/work/out/result" in changed, changed
        # Go back two steps and branch from there without touching the loop's sandbox.
        with Sandbox.from_snapshot(save_points[1], runtime=RUNTIME) as branch:
            assert not branch.files.exists("/work/tests.txt")
            assert branch.files.exists("/work/lib.sh")
        assert sbx.files.exists("/work/tests.txt")


def test_exec_streams_output_with_its_exit_code():
    with new_sandbox() as sbx:
        seen = []
        result = sbx.exec(
            "echo one; echo two >&2; echo three; exit 7",
            on_stdout=seen.append,
        )
        assert result.exit_code == 7 and not result.ok, result
        assert result.stdout == b"one\nthree\n" and result.stderr == b"two\n", result
        assert b"".join(seen) == b"one\nthree\n", seen
        events = list(sbx.exec_stream(["sh", "-c", "echo $GREETING from $PWD"], env={"GREETING": "hi"}, workdir="/tmp"))
        assert events[-1].type == "exit" and events[-1].code == 0, events
        assert b"".join(e.data for e in events if e.type == "stdout") == b"hi from /tmp\n"
        missing = sbx.exec(["no-such-program"])
        assert missing.exit_code == 127 and "no such program" in (missing.message or ""), missing


def test_files_read_write_list():
    with new_sandbox() as sbx:
        sbx.files.mkdir("/data/nested", parents=True)
        sbx.files.write("/data/a.txt", "alpha")
        sbx.files.write("/data/run.sh", "#!/bin/sh\necho ran\n", mode=0o755)
        sbx.files.write("/data/nested/b.bin", bytes(range(256)))
        names = sorted(e.path.rsplit("/", 1)[-1] for e in sbx.files.list("/data"))
        assert names == ["a.txt", "nested", "run.sh"], names
        deep = {e.path for e in sbx.files.list("/data", depth=2)}
        assert "/data/nested/b.bin" in deep, deep
        assert sbx.files.read("/data/nested/b.bin") == bytes(range(256))
        assert sbx.files.stat("/data/a.txt").size == 5
        assert sbx.exec("/data/run.sh").text == "ran\n"
        sbx.files.remove("/data", recursive=True)
        assert not sbx.files.exists("/data")


def test_pause_resume_and_stateful_fork():
    with new_sandbox() as sbx:
        sbx.exec("echo kept > /root/f")
        sbx.pause()
        assert sbx.state == "paused", sbx.state
        sbx.resume()
        assert sbx.state == "running"
        assert sbx.files.read_text("/root/f") == "kept\n"
        snap = sbx.snapshot(stateful=True)
        assert snap.stateful
        with Sandbox.from_snapshot(snap, runtime=RUNTIME) as fork:
            assert fork.id != sbx.id and fork.state == "running"
            assert fork.files.read_text("/root/f") == "kept\n"


def test_background_process_carried_by_a_stateful_fork():
    with new_sandbox() as sbx:
        pid = sbx.exec_background("i=0; while true; do i=$((i+1)); echo $i > /root/c; sleep 0.1; done")
        assert pid in [p.pid for p in sbx.processes()], sbx.processes()
        wait_for(lambda: int(sbx.exec("cat /root/c").text or 0) > 2)
        snap = sbx.snapshot(name="counting", stateful=True)
        sbx.signal(pid, "KILL")
        wait_for(lambda: pid not in [p.pid for p in sbx.processes()])
        with Sandbox.from_snapshot(snap, runtime=RUNTIME) as fork:
            # The loop rewrites the file (`>` empties it first): a read may find it empty.
            texts = []
            wait_for(lambda: texts.append(fork.exec("cat /root/c").text) or texts[-1])
            first = int(texts[-1])
            # The loop runs on in the fork, from where it was.
            wait_for(lambda: int(fork.exec("cat /root/c").text or 0) > first)
        try:
            sbx.exec_background(["no-such-program"])
            raise AssertionError("a missing program started")
        except cairn.CairnError as e:
            assert e.details == {"exit_code": 127}, (e, e.details)


def test_export_then_import_gives_back_the_same_snapshot():
    with new_sandbox() as sbx:
        sbx.files.write("/root/shared.txt", "for a teammate")
        snap = sbx.snapshot(name="to-share")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "snap.tar.zst")
        size = snap.export(path)
        assert size == os.path.getsize(path) > 0, size
        snap.delete()
        back = client.import_snapshot(path)
        # A new snapshot of the importing account, with the archive's name and files.
        assert back.id != snap.id and back.name == "to-share", back
    with Sandbox.from_snapshot(back, runtime=RUNTIME) as fork:
        assert fork.files.read_text("/root/shared.txt") == "for a teammate"
    back.delete()


def test_the_unix_socket_needs_no_token():
    with Cairn(os.environ["CAIRN_SOCKET_PATH"]) as operator:
        with Sandbox.create(image=IMAGE, runtime=RUNTIME, client=operator) as sbx:
            assert sbx.exec("echo local").text == "local\n"
            assert sbx.id in [s.id for s in operator.sandboxes()]
        # Another account's sandboxes are not the operator's socket account's.
        assert all(s.name != "agent-loop" for s in operator.sandboxes())


def test_typed_errors():
    try:
        client.sandbox("sbx-00000000")
        raise AssertionError("no NotFound")
    except cairn.NotFound as e:
        assert e.status == 404 and e.code == "not_found", e
    try:
        new_sandbox(name="bad name!")
        raise AssertionError("no InvalidArgument")
    except cairn.InvalidArgument as e:
        assert "name" in e.message, e
    try:
        Sandbox.create(image="no-such-image", client=client)
        raise AssertionError("no NotFound")
    except cairn.NotFound:
        pass
    limit = int(os.environ.get("CAIRN_SNAPSHOT_LIMIT", "8"))
    with new_sandbox() as sbx:
        for i in range(limit):
            sbx.snapshot(name=f"s{i}")
        try:
            sbx.snapshot(name="one-too-many")
            raise AssertionError("no LimitExceeded")
        except cairn.LimitExceeded as e:
            assert isinstance(e, cairn.Conflict) and e.status == 409, e
            assert str(limit) in e.message, e.message
    with Cairn("http://127.0.0.1:1", token="ck_x") as nowhere:
        try:
            nowhere.sandboxes()
            raise AssertionError("no ConnectionFailed")
        except cairn.ConnectionFailed as e:
            assert "127.0.0.1:1" in e.message and "CAIRN_HOST" in e.message, e
    with Cairn("/nonexistent/cairnd.sock") as nowhere:
        try:
            Sandbox.create(image=IMAGE, client=nowhere)
            raise AssertionError("no ConnectionFailed")
        except cairn.ConnectionFailed as e:
            assert "unix:///nonexistent/cairnd.sock" in e.message, e
    other = Cairn(os.environ["CAIRN_HOST"], token="ck_not-a-token")
    try:
        other.sandboxes()
        raise AssertionError("no Unauthenticated")
    except cairn.Unauthenticated:
        pass
    finally:
        other.close()


def test_context_manager_destroys_and_keeps_snapshots():
    with new_sandbox() as sbx:
        sbx.files.write("/root/x", "x")
        snap = sbx.snapshot(name="kept")
        gone = sbx.id
    try:
        client.sandbox(gone)
        raise AssertionError("the sandbox outlived its with block")
    except cairn.NotFound:
        pass
    assert client.snapshot(snap.id).name == "kept"
    with Sandbox.from_snapshot(snap.id, client=client, runtime=RUNTIME) as again:
        assert again.files.read_text("/root/x") == "x"
    snap.delete()
    try:
        client.snapshot(snap.id)
        raise AssertionError("the snapshot outlived delete")
    except cairn.NotFound:
        pass


def test_every_api_error_code_has_its_class():
    import json
    import re

    from cairn.errors import ERRORS, STATUS

    doc = json.load(open(os.path.join(os.path.dirname(__file__), "../../../docs/openapi.json")))
    described = doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["description"]
    codes = dict((c, int(s)) for c, s in re.findall(r"([a-z_]+) \((\d{3})\)", described))
    assert len(codes) >= 17, described
    for code, status in codes.items():
        assert code in ERRORS and ERRORS[code].code == code, f"no class for {code}"
        assert STATUS[code] == status, (code, STATUS[code], status)
    assert set(ERRORS) == set(codes) == set(STATUS), set(ERRORS) ^ set(codes)


def test_the_readme_example_runs():
    readme = open(os.path.join(os.path.dirname(__file__), "../../../README.md")).read()
    block = readme.split("```python\n", 1)[1].split("```", 1)[0]
    code = block.replace('Cairn("http://127.0.0.1:7421", token="ck_…")', "Cairn()")
    assert code != block, "the README's example no longer makes its Cairn the way this test expects"
    exec(compile(code, "README.md", "exec"), {})


if __name__ == "__main__":
    run(
        [
            test_checkpoint_before_risk_then_restore,
            test_iterative_agent_loop_with_save_points,
            test_exec_streams_output_with_its_exit_code,
            test_files_read_write_list,
            test_pause_resume_and_stateful_fork,
            test_background_process_carried_by_a_stateful_fork,
            test_export_then_import_gives_back_the_same_snapshot,
            test_the_unix_socket_needs_no_token,
            test_typed_errors,
            test_context_manager_destroys_and_keeps_snapshots,
            test_every_api_error_code_has_its_class,
            test_the_readme_example_runs,
        ]
    )
    client.close()
