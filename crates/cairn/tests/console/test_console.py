"""The web console in a real browser (Debian's chromium driven by playwright), against the
real cairnd that crates/cairn/tests/console.rs starts. Environment: CAIRN_URL (the TCP
listener, http://HOST:PORT), CAIRN_TOKEN (account alice's), CAIRN_SANDBOX (alice's running
sandbox, named agent-1), CAIRN_XSS_SANDBOX (alice's sandbox whose workdir is markup),
CAIRN_OTHER (a sandbox of another account), CAIRN_LOGIN_URL (from `cairn ui`), SHOTS (where
screenshots go). Prints "all passed" at the end."""

import json
import os
import re
import sys
import urllib.request

from playwright.sync_api import expect, sync_playwright

URL = os.environ["CAIRN_URL"]
TOKEN = os.environ["CAIRN_TOKEN"]
SBX = os.environ["CAIRN_SANDBOX"]
XSS_SBX = os.environ["CAIRN_XSS_SANDBOX"]
OTHER = os.environ["CAIRN_OTHER"]
LOGIN_URL = os.environ["CAIRN_LOGIN_URL"]
SHOTS = os.environ["SHOTS"]
PAYLOAD = "<img src=x onerror=alert(1)>"


def api(method, path, body=None):
    """A call to the API with alice's token (what the test checks against, not what it drives)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(URL + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + TOKEN)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=120) as r:
        text = r.read().decode()
    return text


def snapshots_of(sandbox):
    return json.loads(api("GET", f"/v1/sandboxes/{sandbox}/snapshots"))


def shot(page, name):
    page.screenshot(path=os.path.join(SHOTS, name), full_page=True)


def confirm(page, value=None):
    """Answers the console's confirmation: fills its input when asked, then confirms."""
    expect(page.locator("#confirm")).to_be_visible()
    if value is not None:
        page.fill("#confirm-input", value)
    page.click("#confirm-yes")
    expect(page.locator("#confirm")).to_be_hidden()


def main():
    dialogs = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        ctx = browser.new_context(viewport={"width": 1360, "height": 900})
        page = ctx.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))

        # The page loads without a token, with strict headers.
        resp = page.goto(URL + "/ui")
        assert resp.status == 200, resp.status
        csp = resp.headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, csp
        assert resp.headers.get("x-frame-options") == "DENY"
        assert resp.headers.get("x-content-type-options") == "nosniff"

        # A wrong token says so.
        page.fill("#token", "ck_0000000000000000000000000000000000000000")
        page.click("#use-token")
        expect(page.locator("#status")).to_contain_text("unknown token")

        # Log in with alice's token: her sandboxes, not another account's.
        page.fill("#token", TOKEN)
        page.click("#use-token")
        row = page.locator(f'#sandboxes tbody tr[data-id="{SBX}"]')
        expect(row).to_contain_text("agent-1")
        expect(row).to_contain_text("running")
        expect(row).to_contain_text("runc")
        expect(row).to_contain_text("MiB")
        assert page.locator(f'#sandboxes tbody tr[data-id="{OTHER}"]').count() == 0
        assert page.evaluate("sessionStorage.getItem('cairn.token')") == TOKEN

        # Tenant strings are text: the workdir that is markup shows as its characters.
        xss_row = page.locator(f'#sandboxes tbody tr[data-id="{XSS_SBX}"]')
        expect(xss_row.locator("td.workdir")).to_have_text("/" + PAYLOAD)
        assert page.locator("img").count() == 0
        shot(page, "01-sandboxes.png")

        # A snapshot through the button: the tree grows.
        row.locator('button[data-action="snapshot"]').click()
        confirm(page, "first")
        expect(page.locator("#status")).to_contain_text("Snapshot first")
        snap_nodes = page.locator("#tree g.snapshot")
        expect(snap_nodes).to_have_count(1)
        first = snapshots_of(SBX)[0]["id"]

        # A file, then a second snapshot on top of the first.
        api("POST", f"/v1/sandboxes/{SBX}/exec",
            {"cmd": ["sh", "-c", "echo hello > /root/new.txt"]})
        row.locator('button[data-action="snapshot"]').click()
        confirm(page, "second")
        expect(snap_nodes).to_have_count(2)
        snaps = snapshots_of(SBX)
        second = [s for s in snaps if s["name"] == "second"][0]
        assert second["parent"] == first, snaps
        second = second["id"]

        # Select both: the diff shows the file.
        page.click(f'#tree g.snapshot[data-id="{first}"]')
        page.click(f'#tree g.snapshot[data-id="{second}"]')
        expect(page.locator("#diff-section")).to_be_visible()
        expect(page.locator("#diff tbody")).to_contain_text("/root/new.txt")
        expect(page.locator("#diff tbody")).to_contain_text("added")
        shot(page, "02-diff.png")

        # Fork the first snapshot through the button: the fork appears in the table and in
        # the tree, under the snapshot it came from.
        page.click("#clear-selection")
        page.click(f'#tree g.snapshot[data-id="{first}"]')
        page.click("#fork")
        confirm(page, "fork")
        expect(page.locator("#status")).to_contain_text("Forked into fork-1")
        fork_row = page.locator("#sandboxes tbody tr", has_text="fork-1")
        expect(fork_row).to_have_count(1)
        fork_id = fork_row.get_attribute("data-id")
        expect(page.locator(f'#tree g.sandbox[data-id="{fork_id}"]')).to_have_count(1)
        forked = json.loads(api("GET", f"/v1/sandboxes/{fork_id}"))
        assert forked["parent_snapshot"] == first, forked
        page.click(f'#tree g.snapshot[data-id="{second}"]')
        expect(page.locator("#diff tbody")).to_contain_text("/root/new.txt")
        shot(page, "03-fork.png")  # docs/console.png

        # Pause and resume through the buttons.
        row.locator('button[data-action="pause"]').click()
        confirm(page)
        expect(row).to_contain_text("paused")
        row.locator('button[data-action="resume"]').click()
        confirm(page)
        expect(row).to_contain_text("running")

        # Restore the first snapshot in place: the file made after it is gone.
        page.click("#clear-selection")
        page.click(f'#tree g.snapshot[data-id="{first}"]')
        page.click("#restore")
        confirm(page)
        expect(page.locator("#status")).to_contain_text("restored to first")
        out = api("POST", f"/v1/sandboxes/{SBX}/exec",
                  {"cmd": ["sh", "-c", "test -e /root/new.txt; echo $?"]})
        assert '"exit"' in out and "MQo=" in out, out  # base64 of "1\n": no such file

        # A snapshot named with markup: refused by the API, and the refusal shows as text.
        row.locator('button[data-action="snapshot"]').click()
        confirm(page, PAYLOAD)
        expect(page.locator("#status")).to_have_class(re.compile(r"\berror\b"))
        assert page.locator("img").count() == 0

        # Cancel leaves things as they were; destroy asks first, then destroys.
        fork_row.locator('button[data-action="destroy"]').click()
        page.click("#confirm-no")
        expect(fork_row).to_have_count(1)
        fork_row.locator('button[data-action="destroy"]').click()
        confirm(page)
        expect(fork_row).to_have_count(0)
        shot(page, "04-after.png")

        # The operator's login URL from `cairn ui`: works once.
        op = ctx.new_page()
        op.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        op.goto(LOGIN_URL)
        expect(op.locator("#who")).to_have_text("account local")
        expect(op.locator("#status")).to_contain_text("Signed in")
        assert "code=" not in op.url, op.url
        again = ctx.new_page()
        again.goto(LOGIN_URL)
        expect(again.locator("#status")).to_contain_text("Login failed")

        assert not dialogs, f"a dialog fired: {dialogs}"
        assert not errors, f"the page's script failed: {errors}"
        browser.close()
    print("all passed")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        import traceback
        traceback.print_exc()
        sys.exit(1)
