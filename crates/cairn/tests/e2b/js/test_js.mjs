// The unmodified e2b JS SDK (pinned in package.json) against a real cairnd: the core flow.
// Run by crates/cairn/tests/e2b.rs with E2B_API_URL, E2B_SANDBOX_URL, E2B_API_KEY set.
import { Sandbox, CommandExitError, AuthenticationError, SandboxNotFoundError } from 'e2b'

function check(cond, what) {
  if (!cond) {
    console.error(`FAILED: ${what}`)
    process.exit(1)
  }
  console.log(`ok: ${what}`)
}

const sbx = await Sandbox.create('base')
check(sbx.sandboxId.startsWith('sbx-'), `create answers a Cairn sandbox id (${sbx.sandboxId})`)

const r = await sbx.commands.run('echo hello; echo oops >&2')
check(r.exitCode === 0 && r.stdout === 'hello\n' && r.stderr === 'oops\n', `commands.run (${JSON.stringify(r)})`)

try {
  await sbx.commands.run('exit 4')
  check(false, 'a failing command throws CommandExitError')
} catch (e) {
  check(e instanceof CommandExitError && e.exitCode === 4, `CommandExitError with its code (${e})`)
}

await sbx.files.write('/root/js.txt', 'from js\n')
check((await sbx.files.read('/root/js.txt')) === 'from js\n', 'files.write then files.read')
const names = (await sbx.files.list('/root')).map((e) => e.name)
check(names.includes('js.txt'), `files.list (${names})`)

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// A background command outlives its handle: connect attaches to it again, and sees its end.
const loop = await sbx.commands.run('i=0; while :; do i=$((i+1)); echo line $i; sleep 0.1; done', { background: true })
await loop.disconnect()
await sleep(500)
const again = await sbx.commands.connect(loop.pid)
await sleep(500)
check(await sbx.commands.kill(loop.pid), 'commands.kill of a connected command')
try {
  await again.wait()
  check(false, 'a killed command throws')
} catch (e) {
  check(e instanceof CommandExitError && e.exitCode === 137 && e.stdout.includes('line'), `connect sees its output and end (${e})`)
}

// watchDir streams what commands do in a directory.
await sbx.files.makeDir('/root/w')
const seen = []
const watch = await sbx.files.watchDir('/root/w', (ev) => seen.push(`${ev.type}:${ev.name}`))
await sbx.commands.run('echo x > /root/w/a.txt')
for (let i = 0; i < 50 && !seen.includes('create:a.txt'); i++) await sleep(200)
check(seen.includes('create:a.txt'), `watchDir sees a file created (${seen})`)
await watch.stop()

// Paging: one at a time through the paginator, with the states as the SDK sends them.
const paged = [await Sandbox.create('base', { metadata: { page: 'js' } }), await Sandbox.create('base', { metadata: { page: 'js' } })]
const pager = Sandbox.list({ query: { metadata: { page: 'js' }, state: ['running', 'paused'] }, limit: 1 })
const pages = []
while (pager.hasNext) pages.push((await pager.nextItems()).map((s) => s.sandboxId))
check(JSON.stringify(pages) === JSON.stringify(paged.map((s) => [s.sandboxId])), `Sandbox.list pages one at a time (${JSON.stringify(pages)})`)
for (const s of paged) await s.kill()

const listed = (await Sandbox.list().nextItems()).map((s) => s.sandboxId)
check(listed.includes(sbx.sandboxId), `Sandbox.list (${listed})`)

try {
  await Sandbox.create('base', { apiKey: 'ck_not_a_key' })
  check(false, 'a wrong API key is refused')
} catch (e) {
  check(e instanceof AuthenticationError, `a wrong API key throws AuthenticationError (${e})`)
}

await sbx.kill()
try {
  await Sandbox.getInfo(sbx.sandboxId)
  check(false, 'a killed sandbox is gone')
} catch (e) {
  check(e instanceof SandboxNotFoundError, `a killed sandbox is gone (${e})`)
}
console.log('all passed')
