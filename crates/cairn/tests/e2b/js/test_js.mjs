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
