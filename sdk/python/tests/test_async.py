"""The seeds' programmatic workflows with asyncio: fork five and compare them with
asyncio.gather, the batch fork, and checkpoint-before-risk with AsyncSandbox. Run by
crates/cairn/tests/sdk.rs against a real cairnd."""

import asyncio

from helpers import IMAGE, RUNTIME, run

import cairn
from cairn import AsyncCairn, AsyncSandbox


async def fork_five_and_compare():
    async with AsyncCairn() as client:
        async with await AsyncSandbox.create(image=IMAGE, runtime=RUNTIME, client=client) as src:
            await src.files.write("/seed.txt", "shared start\n")
            snap = await src.snapshot(name="seed")
            # Five forks at once, each trying its own approach.
            forks = await asyncio.gather(*[AsyncSandbox.from_snapshot(snap, runtime=RUNTIME) for _ in range(5)])
            try:
                assert len({f.id for f in forks}) == 5
                results = await asyncio.gather(
                    *[
                        f.exec(f"echo approach-{i} > /answer.txt && cat /seed.txt /answer.txt")
                        for i, f in enumerate(forks)
                    ]
                )
                for i, r in enumerate(results):
                    assert r.exit_code == 0, r
                    assert r.text == f"shared start\napproach-{i}\n", r.text
                # Each fork is private: none sees another's answer, the source sees none.
                answers = await asyncio.gather(*[f.files.read_text("/answer.txt") for f in forks])
                assert answers == [f"approach-{i}\n" for i in range(5)], answers
                assert not await src.files.exists("/answer.txt")
                # Keep the best one as a snapshot of its own.
                best = await forks[3].snapshot(name="best")
                assert best.id != snap.id
            finally:
                await asyncio.gather(*[f.destroy() for f in forks])
            # The batch form: cairnd makes the five concurrently.
            batch = await snap.fork(5, name="batch")
            try:
                assert [b.name for b in batch] == [f"batch-{i}" for i in range(1, 6)], batch
                texts = await asyncio.gather(*[b.files.read_text("/seed.txt") for b in batch])
                assert texts == ["shared start\n"] * 5
            finally:
                await asyncio.gather(*[b.destroy() for b in batch])


async def checkpoint_before_risk_async():
    async with AsyncCairn() as client:
        async with await client.create_sandbox(IMAGE, runtime=RUNTIME) as sbx:
            await sbx.files.write("/app.txt", "v1")
            snap = await sbx.snapshot(name="safe")
            chunks = []
            result = await sbx.exec("rm /app.txt; echo gone; exit 2", on_stdout=chunks.append)
            assert result.exit_code == 2 and b"".join(chunks) == b"gone\n", result
            await sbx.restore(snap)
            assert await sbx.files.read_text("/app.txt") == "v1"
            await sbx.pause()
            assert sbx.state == "paused"
            await sbx.resume()
            listed = [s.name for s in await sbx.snapshots()]
            assert listed == ["safe"], listed
            try:
                await client.snapshot("no-such-snapshot")
                raise AssertionError("no NotFound")
            except cairn.NotFound:
                pass


async def default_connection():
    # No client: AsyncCairn() from CAIRN_HOST and CAIRN_TOKEN, one per event loop.
    async with await AsyncSandbox.create(image=IMAGE, runtime=RUNTIME) as sbx:
        assert (await sbx.exec("echo $((6 * 7))")).text == "42\n"


def test_the_default_connection_in_two_event_loops():
    asyncio.run(default_connection())
    asyncio.run(default_connection())


def test_fork_five_and_compare_with_gather():
    asyncio.run(fork_five_and_compare())


def test_checkpoint_before_risk_async():
    asyncio.run(checkpoint_before_risk_async())


if __name__ == "__main__":
    run(
        [
            test_fork_five_and_compare_with_gather,
            test_checkpoint_before_risk_async,
            test_the_default_connection_in_two_event_loops,
        ]
    )
