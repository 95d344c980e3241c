"""The unmodified e2b Python SDK (pinned in scripts/setup.sh) against a real cairnd.

Run by crates/cairn/tests/e2b.rs, which starts cairnd with a TCP listener and sets
E2B_API_URL, E2B_SANDBOX_URL, E2B_API_KEY (a Cairn token) and CAIRN_OTHER_KEY (another
account's token). Each check says what it expected.
"""

import json
import os
import struct
import subprocess
import sys
import time

import httpx
from e2b import (
    AuthenticationException,
    CommandExitException,
    FileNotFoundException,
    FilesystemEventType,
    NotFoundException,
    PtySize,
    RateLimitException,
    Sandbox,
    SandboxException,
    SandboxNotFoundException,
    SandboxQuery,
)


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


sbx = Sandbox.create(template="base")
check(sbx.sandbox_id.startswith("sbx-"), f"create answers a Cairn sandbox id ({sbx.sandbox_id})")

r = sbx.commands.run("echo hello; echo oops >&2")
check(r.exit_code == 0, "commands.run exits 0")
check(r.stdout == "hello\n", f"stdout streams back ({r.stdout!r})")
check(r.stderr == "oops\n", f"stderr streams back ({r.stderr!r})")

try:
    sbx.commands.run("echo partial; exit 3")
    check(False, "a failing command raises CommandExitException")
except CommandExitException as e:
    check(e.exit_code == 3, f"the exit code comes back ({e.exit_code})")
    check(e.stdout == "partial\n", f"with its output ({e.stdout!r})")

r = sbx.commands.run("echo $GREETING; pwd", envs={"GREETING": "bonjour"}, cwd="/tmp")
check(r.stdout == "bonjour\n/tmp\n", f"envs and cwd are the command's ({r.stdout!r})")

# Owners and groups show by the sandbox's own names (its /etc/passwd and /etc/group).
sbx.commands.run(
    "echo 'agent:x:1000:1000::/root:/bin/sh' >> /etc/passwd; echo 'agents:x:1000:' >> /etc/group;"
    " touch /root/owned; chown 1000:1000 /root/owned; touch /root/unnamed; chown 4242:4242 /root/unnamed"
)
owned = sbx.files.get_info("/root/owned")
check((owned.owner, owned.group) == ("agent", "agents"), f"a file's owner by name ({owned.owner}:{owned.group})")
unnamed = sbx.files.get_info("/root/unnamed")
check((unnamed.owner, unnamed.group) == ("4242", "4242"), f"an id without a name by number ({unnamed.owner}:{unnamed.group})")

sbx.files.write("/root/hello.txt", "hi there\n")
check(sbx.files.read("/root/hello.txt") == "hi there\n", "files.write then files.read")
check(
    sbx.commands.run("cat /root/hello.txt").stdout == "hi there\n",
    "a written file is there for commands (gVisor: written through the agent)",
)
sbx.files.write("/root/bytes.bin", b"\x00\x01\x02")
check(sbx.files.read("/root/bytes.bin", format="bytes") == b"\x00\x01\x02", "bytes round-trip")

check(sbx.files.make_dir("/root/d/e"), "make_dir makes a directory (and its parents)")
check(not sbx.files.make_dir("/root/d/e"), "make_dir says False when it is there")
check(sbx.files.exists("/root/d/e"), "exists: yes")
check(not sbx.files.exists("/root/nope"), "exists: no")
sbx.files.write("/root/d/e/f.txt", "deep")
names = sorted(e.name for e in sbx.files.list("/root/d/e"))
check(names == ["f.txt"], f"list shows the directory's entries ({names})")
deep = sorted(e.path for e in sbx.files.list("/root/d", depth=2))
check(deep == ["/root/d/e", "/root/d/e/f.txt"], f"list with depth 2 ({deep})")
info = sbx.files.get_info("/root/d/e/f.txt")
check(info.size == 4 and info.type.value == "file", f"get_info ({info})")
sbx.files.rename("/root/d/e/f.txt", "/root/g.txt")
check(sbx.files.read("/root/g.txt") == "deep", "rename moves the file")
sbx.files.remove("/root/d")
check(not sbx.files.exists("/root/d"), "remove takes a directory with what is in it")
try:
    sbx.files.read("/root/d/e/f.txt")
    check(False, "reading a missing file raises")
except FileNotFoundException:
    check(True, "reading a missing file raises FileNotFoundException")

# A watcher of a directory sees what commands do in it (recursively when asked).
sbx.files.make_dir("/root/watched/sub")
watcher = sbx.files.watch_dir("/root/watched", recursive=True)


def events_until(w, want, what):
    got = []
    deadline = time.time() + 10
    while time.time() < deadline:
        got += [(e.name, e.type) for e in w.get_new_events()]
        if all(x in got for x in want):
            break
        time.sleep(0.2)
    check(all(x in got for x in want), f"{what} ({got})")


sbx.commands.run("echo hi > /root/watched/new.txt; echo deep > /root/watched/sub/d.txt")
events_until(
    watcher,
    [("new.txt", FilesystemEventType.CREATE), ("sub/d.txt", FilesystemEventType.CREATE)],
    "watch_dir sees files created, in subdirectories too",
)
sbx.files.rename("/root/watched/new.txt", "/root/watched/moved.txt")
events_until(
    watcher,
    [("new.txt", FilesystemEventType.RENAME), ("moved.txt", FilesystemEventType.CREATE)],
    "a file renamed",
)
sbx.commands.run("rm /root/watched/moved.txt")
events_until(watcher, [("moved.txt", FilesystemEventType.REMOVE)], "and a file removed")
watcher.stop()
gone = Sandbox.create(template="base")
orphan = gone.files.watch_dir("/root")
gone.kill()
try:
    deadline = time.time() + 10
    while time.time() < deadline:
        orphan.get_new_events()
        time.sleep(0.3)
    check(False, "a watcher of a killed sandbox stops")
except SandboxException as e:
    check(True, f"a watcher of a killed sandbox stops ({type(e).__name__}: {e})")

bg = sbx.commands.run("sleep 300", background=True)
check(bg.pid > 1, f"a background command has its pid ({bg.pid})")
listed = [p.pid for p in sbx.commands.list()]
check(bg.pid in listed, f"commands.list shows it ({listed})")
check(sbx.commands.kill(bg.pid), "commands.kill")
try:
    bg.wait()
    check(False, "a killed command does not exit 0")
except CommandExitException as e:
    check(e.exit_code == 137, f"a killed command ends with 137 ({e.exit_code})")
check(not sbx.commands.kill(99999), "killing a missing process says False")

# stdin, and a terminal with its size.
cat = sbx.commands.run("cat", background=True, stdin=True)
sbx.commands.send_stdin(cat.pid, "hello stdin\n")
sbx.commands.close_stdin(cat.pid)
check(cat.wait().stdout == "hello stdin\n", "send_stdin and close_stdin reach the command")
# The command's timeout (the SDK's `timeout`) ends it, attached or not.
short = sbx.commands.run("sleep 600", background=True, timeout=2)
time.sleep(4)
left = [p.pid for p in sbx.commands.list()]
check(short.pid not in left, f"a command is killed when its timeout runs out ({short.pid} in {left})")

cat = sbx.commands.run("cat", background=True, stdin=True)
sbx.commands.stream_input(cat.pid, ["streamed ", "in order\n"])
sbx.commands.close_stdin(cat.pid)
check(cat.wait().stdout == "streamed in order\n", "stream_input reaches the command in order")

# A silent command's stream carries keepalives at the interval the request asks for.
req = json.dumps({"process": {"cmd": "/bin/sh", "args": ["-c", "sleep 2.5; echo late"]}}).encode()
resp = httpx.post(
    f"{os.environ['E2B_SANDBOX_URL']}/process.Process/Start",
    content=struct.pack(">BI", 0, len(req)) + req,
    headers={
        "E2b-Sandbox-Id": sbx.sandbox_id,
        "X-Access-Token": sbx._envd_access_token,
        "Content-Type": "application/connect+json",
        "Keepalive-Ping-Interval": "1",
    },
    timeout=30,
)
frames, body = [], resp.content
while len(body) >= 5:
    flags, size = struct.unpack(">BI", body[:5])
    frames.append(json.loads(body[5 : 5 + size]))
    body = body[5 + size :]
kinds = [next(iter(f.get("event", {"(end)": 0}))) for f in frames]
check(kinds.count("keepalive") >= 2 and kinds[-2] == "end", f"keepalives while it is silent ({kinds})")

# A background command outlives the SDK process that started it; connect attaches to it
# again, sees its later output, and its end when it is killed.
starter = """
import sys
from e2b import Sandbox
s = Sandbox.connect(sys.argv[1])
h = s.commands.run("i=0; while :; do i=$((i+1)); echo line $i; sleep 0.1; done", background=True)
print(h.pid, flush=True)
"""
out = subprocess.run(
    [sys.executable, "-c", starter, sbx.sandbox_id], capture_output=True, text=True, timeout=60
)
check(out.returncode == 0, f"an SDK process starts a background command and exits ({out.stderr[-500:]})")
loop = int(out.stdout.split()[-1])
time.sleep(0.5)
procs = {p.pid: p for p in sbx.commands.list()}
check(loop in procs, f"it runs on after its starter exited ({sorted(procs)})")
check(procs[loop].cmd == "/bin/bash" and "echo line" in procs[loop].args[-1], f"listed as started ({procs[loop]})")
again = sbx.commands.connect(loop)
check(again.pid == loop, "commands.connect attaches to it")
time.sleep(0.5)
check(sbx.commands.kill(loop), "commands.kill ends it")
try:
    again.wait()
    check(False, "a killed command does not exit 0")
except CommandExitException as e:
    check(e.exit_code == 137, f"the connected handle sees its end ({e.exit_code})")
    lines = [int(w) for w in e.stdout.split() if w.isdigit()]
    check(len(lines) >= 5 and lines == list(range(lines[0], lines[-1] + 1)), f"and its output, in order ({lines})")
try:
    sbx.commands.connect(loop)
    check(False, "connecting to an ended command raises")
except NotFoundException:
    check(True, "connecting to an ended command raises NotFoundException")

# A sandbox holds at most 32 commands started through the SDK: past that, a rate limit.
held, refused = [], None
for _ in range(40):
    try:
        held.append(sbx.commands.run("sleep 600", background=True, timeout=0))
    except Exception as e:
        refused = e
        break
check(isinstance(refused, RateLimitException) and len(held) <= 32, f"the 33rd command is refused ({len(held)} held, {refused!r})")
for h in held:
    sbx.commands.kill(h.pid)

term = sbx.pty.create(PtySize(rows=24, cols=80))
sbx.pty.resize(term.pid, PtySize(rows=30, cols=100))
sbx.pty.send_stdin(term.pid, b"stty size; exit\n")
seen = []
term.wait(on_pty=lambda d: seen.append(bytes(d)))
check(b"30 100" in b"".join(seen), f"a pty, resized ({b''.join(seen)[-200:]!r})")

# A background process and a file survive pause and connect (Cairn pauses with a snapshot of
# the processes); a snapshot is a template; fork makes independent copies.
sbx.commands.run(
    "sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done' >/dev/null 2>&1 &"
)
sbx.files.write("/root/kept.txt", "kept")
ticker = sbx.commands.run("while :; do echo tick; sleep 0.2; done", background=True, timeout=0)
time.sleep(0.5)
check(sbx.pause() is not False, "pause")
check(Sandbox.get_info(sbx.sandbox_id).state.value == "paused", "paused")
check(sbx.pause() is False, "pausing a paused sandbox says False (409)")
sbx.connect()
check(Sandbox.get_info(sbx.sandbox_id).state.value == "running", "connect resumes it")
ticking = sbx.commands.connect(ticker.pid)
time.sleep(0.6)
sbx.commands.kill(ticker.pid)
try:
    ticking.wait()
    check(False, "a killed command does not exit 0")
except CommandExitException as e:
    check("tick" in e.stdout, f"a command started before the pause is connected to after it ({e.stdout[-40:]!r})")


def count(s):
    return int(s.commands.run("cat /tmp/count").stdout)


first = count(sbx)
time.sleep(0.5)
check(count(sbx) > first, "the background process counts on after connect")
check(sbx.files.read("/root/kept.txt") == "kept", "and the file is there")

snap = sbx.create_snapshot()
check(snap.snapshot_id.startswith("snap-"), f"create_snapshot ({snap.snapshot_id})")
copy = Sandbox.create(template=snap.snapshot_id)
check(copy.files.read("/root/kept.txt") == "kept", "a sandbox from the snapshot has its files")
first = count(copy)
time.sleep(0.5)
check(count(copy) > first, "and its processes")
copy.kill()

listed = [i.snapshot_id for i in Sandbox.list_snapshots().next_items()]
check(snap.snapshot_id in listed, f"list_snapshots shows it ({listed})")
mine = [i.snapshot_id for i in Sandbox.list_snapshots(sandbox_id=sbx.sandbox_id).next_items()]
check(snap.snapshot_id in mine, f"and among the sandbox's ({mine})")
check(Sandbox.delete_snapshot(snap.snapshot_id), "delete_snapshot")
check(not Sandbox.delete_snapshot(snap.snapshot_id), "delete_snapshot of a missing one says False")

forks = sbx.fork(count=3)
check(len(forks) == 3, f"fork(count=3) answers 3 ({forks})")
check(all(isinstance(f, Sandbox) for f in forks), f"all made ({forks})")
check(len({f.sandbox_id for f in forks} | {sbx.sandbox_id}) == 4, "each its own sandbox")
forks[0].files.write("/root/kept.txt", "changed")
check(forks[1].files.read("/root/kept.txt") == "kept", "forks are independent")
check(sbx.files.read("/root/kept.txt") == "kept", "and the source too")
for f in forks:
    f.kill()

# Metadata is kept and filtered by; a timeout kills the sandbox once it runs out.
tagged = Sandbox.create(template="base", metadata={"team": "a b", "run": "7"}, timeout=60)
found = [i.sandbox_id for i in Sandbox.list(query=SandboxQuery(metadata={"team": "a b"})).next_items()]
check(found == [tagged.sandbox_id], f"list filters by metadata ({found})")
found = Sandbox.list(query=SandboxQuery(metadata={"team": "other"})).next_items()
check(found == [], f"and finds nothing for other metadata ({found})")
check(tagged.get_info().metadata == {"team": "a b", "run": "7"}, "get_info shows the metadata")
# Paging: the SDK's paginator, two at a time, sees each sandbox exactly once, in start order.
made = [Sandbox.create(template="base", metadata={"page": "yes"}) for _ in range(3)]
pager = Sandbox.list(query=SandboxQuery(metadata={"page": "yes"}), limit=2)
seen, pages = [], 0
while pager.has_next:
    seen += [i.sandbox_id for i in pager.next_items()]
    pages += 1
want = [m.sandbox_id for m in made]
check(seen == want and pages == 2, f"list pages through all 3 in 2 pages ({seen}, {pages} pages)")
newest = Sandbox.list(query=SandboxQuery(metadata={"page": "yes"}), limit=1, order="desc").next_items()
check([i.sandbox_id for i in newest] == want[-1:], f"order desc starts with the newest ({newest})")
api = os.environ["E2B_API_URL"]
resp = httpx.get(f"{api}/v2/sandboxes", params={"nextToken": "forged"}, headers={"X-API-KEY": os.environ["E2B_API_KEY"]})
check(resp.status_code == 400, f"a made-up nextToken is refused ({resp.status_code} {resp.text})")
for m in made:
    m.kill()

tagged.set_timeout(2)
time.sleep(5)
try:
    Sandbox.get_info(tagged.sandbox_id)
    check(False, "a sandbox whose timeout ran out is gone")
except SandboxNotFoundException:
    check(True, "a sandbox whose timeout ran out is gone")

# An image with bash runs commands with bash (a login shell), as E2B does.
deb = Sandbox.create(template="debian")
r = deb.commands.run('echo "$BASH_VERSION"; shopt -q login_shell && echo login')
check(r.stdout.startswith("5.") and r.stdout.endswith("login\n"), f"bash -l in Debian ({r.stdout!r})")
deb.kill()

def paused_within(s, seconds, what):
    deadline = time.time() + seconds
    while Sandbox.get_info(s.sandbox_id).state.value != "paused":
        if time.time() >= deadline:
            check(False, what)
        time.sleep(0.5)
    check(True, what)


# With on_timeout "pause", a sandbox whose timeout runs out is paused, and connect resumes it.
napper = Sandbox.create(template="base", timeout=2, lifecycle={"on_timeout": "pause"})
napper.files.write("/root/nap.txt", "zzz")
paused_within(napper, 20, "a sandbox with on_timeout pause is paused at its timeout")
napper.connect(timeout=60)
check(napper.files.read("/root/nap.txt") == "zzz", "connect resumes it, its files kept")
napper.kill()



# With auto_resume, the next in-sandbox call wakes a sandbox its timeout paused.
waker = Sandbox.create(template="base", timeout=2, lifecycle={"on_timeout": "pause", "auto_resume": True})
waker.files.write("/root/w.txt", "awake")
paused_within(waker, 20, "a sandbox with auto_resume is paused at its timeout")
check(waker.files.read("/root/w.txt") == "awake", "a call to it resumes it (auto_resume), its files kept")
check(Sandbox.get_info(waker.sandbox_id).state.value == "running", "and it runs again")
waker.kill()

# A pause in mode "filesystem" (autoPauseMemory false) releases the sandbox's memory.
light = Sandbox.create(template="base", timeout=2, lifecycle={"on_timeout": {"action": "pause", "mode": "filesystem"}})
light.files.write("/root/l.txt", "light")
paused_within(light, 20, "a sandbox with pause mode filesystem is paused at its timeout")
light.connect(timeout=60)
check(light.files.read("/root/l.txt") == "light", "connect resumes it, its files kept")
light.kill()

# Bad input to the new calls is a 4xx (or a Connect error in the stream) naming the problem.
envd = os.environ["E2B_SANDBOX_URL"]
auth = {"E2b-Sandbox-Id": sbx.sandbox_id, "X-Access-Token": sbx._envd_access_token}


def post(path, body, kind="application/json"):
    return httpx.post(f"{envd}/{path}", content=body, headers={**auth, "Content-Type": kind}, timeout=30)


r = post("process.Process/Connect", b"{}")
check(r.status_code == 400 and "pid" in r.text, f"Connect without a pid ({r.status_code} {r.text})")
r = post("process.Process/StreamInput", b"\x00\xff\xff\xff\xffjunk", "application/connect+json")
check(r.status_code == 200 and b"invalid_argument" in r.content, f"StreamInput with a huge message ({r.content[:200]!r})")
alive = json.dumps({"keepalive": {}}).encode()
r = post("process.Process/StreamInput", struct.pack(">BI", 0, len(alive)) + alive + b"\x00\x00", "application/connect+json")
check(b"inside a message" in r.content, f"StreamInput cut inside a message ({r.content[:200]!r})")
r = post("process.Process/StreamInput", struct.pack(">BI", 0, 2) + b"{}", "application/connect+json")
check(b"start, data or keepalive" in r.content, f"StreamInput with an empty message ({r.content[:200]!r})")
r = post("filesystem.Filesystem/CreateWatcher", json.dumps({"path": "/root/kept.txt"}).encode())
check(r.status_code == 400 and "not a directory" in r.text, f"watching a file ({r.status_code} {r.text})")
r = post("filesystem.Filesystem/CreateWatcher", json.dumps({"path": "/nope"}).encode())
check(r.status_code == 404, f"watching a missing directory ({r.status_code} {r.text})")
r = post("filesystem.Filesystem/GetWatcherEvents", json.dumps({"watcherId": "w-0"}).encode())
check(r.status_code == 404, f"reading a watcher that is not there ({r.status_code} {r.text})")
r = httpx.get(f"{api}/v2/sandboxes", params={"limit": "0"}, headers={"X-API-KEY": os.environ["E2B_API_KEY"]})
check(r.status_code == 400 and "limit" in r.text, f"limit 0 ({r.status_code} {r.text})")
r = post("process.Process/Start", json.dumps({"process": {"cmd": "true"}}).encode())
check(r.status_code == 200, "a Start without a timeout header")
r = httpx.post(
    f"{envd}/process.Process/Start",
    content=json.dumps({"process": {"cmd": "true"}}).encode(),
    headers={**auth, "Content-Type": "application/json", "Connect-Timeout-Ms": "soon"},
)
check(r.status_code == 400 and "Connect-Timeout-Ms" in r.text, f"a timeout that is no number ({r.status_code} {r.text})")

# The access token is the sandbox's own: another sandbox's, or none, is refused.
url = os.environ["E2B_SANDBOX_URL"]
other = Sandbox.create(template="base")
resp = httpx.get(
    f"{url}/files",
    params={"path": "/root/hello.txt"},
    headers={"E2b-Sandbox-Id": sbx.sandbox_id, "X-Access-Token": other._envd_access_token},
)
check(resp.status_code == 401, f"another sandbox's access token is refused ({resp.status_code})")
other.kill()

# Another account's key neither sees nor reaches the sandbox.
info = Sandbox.get_info(sbx.sandbox_id)
check(info.sandbox_id == sbx.sandbox_id and info.state.value == "running", "get_info")
try:
    Sandbox.get_info(sbx.sandbox_id, api_key=os.environ["CAIRN_OTHER_KEY"])
    check(False, "another account cannot see the sandbox")
except SandboxNotFoundException as e:
    check(True, f"another account gets 'not found' ({e})")

try:
    Sandbox.create(template="base", api_key="ck_not_a_key")
    check(False, "a wrong API key is refused")
except AuthenticationException:
    check(True, "a wrong API key raises AuthenticationException")

check(sbx.kill(), "kill")
try:
    sbx.commands.run("true")
    check(False, "a killed sandbox runs nothing")
except SandboxException:
    check(True, "a killed sandbox runs nothing")
print("all passed")
