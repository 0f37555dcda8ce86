"""The executor: batches are all or nothing, journaled ahead, retried only when worth it,
and recoverable after a crash. Runs against SimulatedNode behind a fault-injecting wrapper."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.changes import PolicyChange
from engine.execute import (
    NOT_BEFORE,
    BatchStatus,
    ItemStatus,
    MemoryJournal,
    RetryPolicy,
    apply_batch,
    is_transient,
    reconcile,
    rollback_changes,
)
from engine.network_gen import generate_network
from engine.node_source import (
    Capabilities,
    Channel,
    CloseResult,
    ForwardPage,
    NetworkGraph,
    NodeInfo,
    NodeRequestError,
    NodeSource,
    NodeUnavailable,
    NotSupported,
    PolicyUpdate,
    RebalanceResult,
    RoutingPolicy,
)
from engine.sources.simulated import SimConfig, SimulatedNode

T0 = 1_770_000_000.0


class Crash(BaseException):
    """The process dies here: nothing after this point runs (not an Exception on purpose)."""


@dataclass
class Fault:
    """What goes wrong on calls `call`, `call + 1`, ... (`times` of them) of `method` on
    `channel` (any channel when None); calls are counted per method and channel from 1."""

    kind: str  # unavailable | refuse | unsupported | hang | ignore | lost_answer | crash_*
    channel: str | None = None
    method: str = "set_policy"
    call: int = 1
    times: int = 1


class FaultyNode:
    """A NodeSource wrapping another one and injecting faults into get/set_policy."""

    def __init__(
        self,
        inner: SimulatedNode,
        *faults: Fault,
        before_set: Callable[[str], Awaitable[None]] | None = None,
    ):
        self.inner = inner
        self.faults = list(faults)
        self.before_set = before_set
        self.kind: str = inner.kind
        self.capabilities: Capabilities = inner.capabilities
        self.calls: Counter[tuple[str, str]] = Counter()
        self.log: list[tuple[str, str, int]] = []

    async def get_info(self) -> NodeInfo:
        return await self.inner.get_info()

    async def list_channels(self) -> list[Channel]:
        return await self.inner.list_channels()

    async def forwards_since(self, cursor: int, limit: int) -> ForwardPage:
        return await self.inner.forwards_since(cursor, limit)

    async def describe_graph(self) -> NetworkGraph:
        return await self.inner.describe_graph()

    async def rebalance(
        self, out_channel: str, in_channel: str, amount_msat: int, max_fee_msat: int
    ) -> RebalanceResult:
        return await self.inner.rebalance(out_channel, in_channel, amount_msat, max_fee_msat)

    async def close_channel(self, channel_id: str) -> CloseResult:
        return await self.inner.close_channel(channel_id)

    async def get_policy(self, channel_id: str) -> RoutingPolicy:
        return await self._call("get_policy", channel_id, lambda: self.inner.get_policy(channel_id))

    async def set_policy(self, channel_id: str, update: PolicyUpdate) -> RoutingPolicy:
        if self.before_set:
            await self.before_set(channel_id)
        return await self._call(
            "set_policy", channel_id, lambda: self.inner.set_policy(channel_id, update)
        )

    def sets(self, channel_id: str | None = None) -> list[str]:
        return [c for m, c, _ in self.log if m == "set_policy" and channel_id in (None, c)]

    async def _call(
        self, method: str, channel_id: str, real: Callable[[], Awaitable[RoutingPolicy]]
    ) -> RoutingPolicy:
        self.calls[(method, channel_id)] += 1
        n = self.calls[(method, channel_id)]
        self.log.append((method, channel_id, n))
        fault = next(
            (
                f
                for f in self.faults
                if f.method == method
                and f.channel in (None, channel_id)
                and f.call <= n < f.call + f.times
            ),
            None,
        )
        if fault is None:
            return await real()
        if fault.kind == "unavailable":
            raise NodeUnavailable("connection refused")
        if fault.kind == "refuse":
            raise NodeRequestError("invalid policy")
        if fault.kind == "unsupported":
            raise NotSupported("not on this backend")
        if fault.kind == "hang":
            await asyncio.sleep(3600)
        if fault.kind == "ignore":  # answers as if done, changes nothing
            return await self.inner.get_policy(channel_id)
        if fault.kind == "lost_answer":  # applied, but the answer never arrives
            await real()
            raise NodeUnavailable("connection reset")
        if fault.kind == "crash_before":
            raise Crash
        if fault.kind == "crash_after":
            await real()
            raise Crash
        raise AssertionError(f"unknown fault {fault.kind}")


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def retry_policy(**kw: object) -> tuple[RetryPolicy, Sleeps]:
    sleeps = Sleeps()
    options: dict = {"timeout_seconds": 0.05, "rng": random.Random(0)} | kw
    return RetryPolicy(sleep=sleeps, **options), sleeps


@functools.cache
def network() -> NetworkGraph:
    return generate_network(300, seed=11)


def make_node(seed: int = 5) -> SimulatedNode:
    config = SimConfig(seed=seed, num_channels=8, history_days=1)
    return SimulatedNode(network(), config, clock=lambda: T0)


async def make_changes(node: NodeSource, n: int, prefix: str = "c") -> list[PolicyChange]:
    channels = await node.list_channels()
    changes = []
    for i, ch in enumerate(channels[:n]):
        before = await node.get_policy(ch.channel_id)
        after = dataclasses.replace(
            before,
            fee_rate_ppm=before.fee_rate_ppm + 100 + i,
            base_fee_msat=before.base_fee_msat + 7,
        )
        changes.append(PolicyChange(f"{prefix}{i}", ch.channel_id, before, after, "test"))
    return changes


async def node_policies(node: SimulatedNode, changes: list[PolicyChange]) -> list[RoutingPolicy]:
    return [await node.get_policy(c.channel_id) for c in changes]


async def setup(
    n: int = 4, seed: int = 5
) -> tuple[SimulatedNode, list[PolicyChange], MemoryJournal]:
    node = make_node(seed)
    return node, await make_changes(node, n), MemoryJournal()


def journal_statuses(journal: MemoryJournal, batch_id: str) -> list[str]:
    return [i.status for i in journal.batches[batch_id].items.values()]


# -- success and retries ------------------------------------------------------------------


async def test_success_applies_every_change() -> None:
    node, changes, journal = await setup(4)
    retry, sleeps = retry_policy()
    faulty = FaultyNode(node)
    assert isinstance(faulty, NodeSource)
    result = await apply_batch(faulty, "b1", changes, journal, retry)
    assert result.status == BatchStatus.SUCCESS
    assert list(result.statuses.values()) == [ItemStatus.APPLIED] * 4
    assert await node_policies(node, changes) == [c.after for c in changes]
    assert journal.batch_status("b1")[0] == BatchStatus.SUCCESS
    assert journal_statuses(journal, "b1") == [ItemStatus.APPLIED] * 4
    assert all(i.readback == c.after for i, c in zip(result.items, changes, strict=True))
    assert sleeps.delays == []


async def test_sending_is_journaled_before_the_node_call() -> None:
    node, changes, journal = await setup(3)
    seen: list[str] = []

    async def check(channel_id: str) -> None:
        item = next(
            i for i in journal.batches["b1"].items.values() if i.change.channel_id == channel_id
        )
        seen.append(item.status)

    await apply_batch(FaultyNode(node, before_set=check), "b1", changes, journal, retry_policy()[0])
    assert seen == [ItemStatus.SENDING] * 3
    kinds = [e[0] for e in journal.events]
    assert kinds == ["record"] + ["sending", "item"] * 3 + ["batch"]


async def test_transient_errors_are_retried() -> None:
    node, changes, journal = await setup(2)
    faulty = FaultyNode(node, Fault("unavailable", changes[0].channel_id, times=2))
    retry, sleeps = retry_policy(base_seconds=1.0, cap_seconds=30.0)
    result = await apply_batch(faulty, "b1", changes, journal, retry)
    assert result.status == BatchStatus.SUCCESS
    assert len(faulty.sets(changes[0].channel_id)) == 3
    assert len(sleeps.delays) == 2
    assert 0.8 <= sleeps.delays[0] <= 1.2 and 1.6 <= sleeps.delays[1] <= 2.4
    assert await node_policies(node, changes) == [c.after for c in changes]


async def test_transient_errors_give_up_after_the_attempts() -> None:
    node, changes, journal = await setup(2)
    faulty = FaultyNode(node, Fault("unavailable", changes[0].channel_id, times=100))
    retry, sleeps = retry_policy(attempts=4)
    result = await apply_batch(faulty, "b1", changes, journal, retry)
    assert result.status == BatchStatus.FAILED
    assert len(faulty.sets(changes[0].channel_id)) == 4 and len(sleeps.delays) == 3
    assert "after 4 attempts" in result.items[0].error
    assert result.statuses == {"c0": ItemStatus.FAILED, "c1": ItemStatus.PENDING}
    assert await node_policies(node, changes) == [c.before for c in changes]


@pytest.mark.parametrize("kind", ["refuse", "unsupported"])
async def test_permanent_errors_are_not_retried(kind: str) -> None:
    node, changes, journal = await setup(3)
    faulty = FaultyNode(node, Fault(kind, changes[0].channel_id, times=100))
    retry, sleeps = retry_policy()
    result = await apply_batch(faulty, "b1", changes, journal, retry)
    assert result.status == BatchStatus.FAILED
    assert faulty.sets() == [changes[0].channel_id]
    assert sleeps.delays == []
    assert result.failed_channels == [changes[0].channel_id]
    assert changes[0].channel_id in result.detail
    assert await node_policies(node, changes) == [c.before for c in changes]


def test_what_is_transient() -> None:
    assert is_transient(NodeUnavailable("down"))
    assert is_transient(asyncio.TimeoutError())
    assert is_transient(ConnectionResetError())
    assert not is_transient(NodeRequestError("no"))
    assert not is_transient(NotSupported("no"))
    assert not is_transient(ValueError("bad policy"))


async def test_a_hanging_node_times_out() -> None:
    node, changes, journal = await setup(2)
    faulty = FaultyNode(node, Fault("hang", changes[1].channel_id, times=100))
    retry, sleeps = retry_policy(attempts=2, timeout_seconds=0.02)
    result = await asyncio.wait_for(apply_batch(faulty, "b1", changes, journal, retry), 5)
    assert result.status == BatchStatus.ROLLED_BACK
    assert "no answer within 0.02 s" in result.items[1].error
    assert len(sleeps.delays) == 1
    assert await node_policies(node, changes) == [c.before for c in changes]


# -- failures and rollback ---------------------------------------------------------------


async def test_failure_in_the_middle_restores_the_applied_ones() -> None:
    node, changes, journal = await setup(4)
    originals = await node_policies(node, changes)
    faulty = FaultyNode(node, Fault("refuse", changes[2].channel_id))
    result = await apply_batch(faulty, "b1", changes, journal, retry_policy()[0])
    assert result.status == BatchStatus.ROLLED_BACK
    assert list(result.statuses.values()) == [
        ItemStatus.RESTORED,
        ItemStatus.RESTORED,
        ItemStatus.FAILED,
        ItemStatus.PENDING,
    ]
    assert journal_statuses(journal, "b1") == list(result.statuses.values())
    assert await node_policies(node, changes) == originals
    ids = [c.channel_id for c in changes]
    assert faulty.sets() == [ids[0], ids[1], ids[2], ids[1], ids[0]]  # restored newest first
    assert ids[2] in result.detail and "invalid policy" in result.detail
    assert result.failed_channels == [ids[2]] and result.unsettled_channels == []


async def test_restore_failure_is_partial_and_names_the_channel() -> None:
    node, changes, journal = await setup(4)
    ids = [c.channel_id for c in changes]
    faulty = FaultyNode(node, Fault("refuse", ids[2]), Fault("refuse", ids[1], call=2))
    result = await apply_batch(faulty, "b1", changes, journal, retry_policy()[0])
    assert result.status == BatchStatus.PARTIAL
    assert result.unsettled_channels == [ids[1]]
    assert ids[1] in result.detail and "check by hand" in result.detail
    assert list(result.statuses.values()) == [
        ItemStatus.RESTORED,
        ItemStatus.RESTORE_FAILED,
        ItemStatus.FAILED,
        ItemStatus.PENDING,
    ]
    got = await node_policies(node, changes)
    assert got == [changes[0].before, changes[1].after, changes[2].before, changes[3].before]
    assert journal.batch_status("b1") == (BatchStatus.PARTIAL, result.detail)


async def test_transient_errors_during_restore_are_retried() -> None:
    node, changes, journal = await setup(3)
    ids = [c.channel_id for c in changes]
    faulty = FaultyNode(
        node, Fault("refuse", ids[2]), Fault("unavailable", ids[0], call=2, times=2)
    )
    retry, sleeps = retry_policy()
    result = await apply_batch(faulty, "b1", changes, journal, retry)
    assert result.status == BatchStatus.ROLLED_BACK
    assert len(sleeps.delays) == 2
    assert await node_policies(node, changes) == [c.before for c in changes]


async def test_readback_mismatch_fails_and_rolls_back() -> None:
    node, changes, journal = await setup(3)
    ids = [c.channel_id for c in changes]
    result = await apply_batch(
        FaultyNode(node, Fault("ignore", ids[1])), "b1", changes, journal, retry_policy()[0]
    )
    assert result.status == BatchStatus.ROLLED_BACK
    assert result.statuses["c1"] == ItemStatus.FAILED
    assert result.items[1].error.startswith("node did not apply")
    assert result.items[1].readback == changes[1].before
    assert result.statuses["c0"] == ItemStatus.RESTORED
    assert await node_policies(node, changes) == [c.before for c in changes]


async def test_a_change_that_landed_despite_the_error_is_put_back() -> None:
    node, changes, journal = await setup(3)
    ids = [c.channel_id for c in changes]
    faulty = FaultyNode(node, Fault("lost_answer", ids[1], times=100))
    result = await apply_batch(faulty, "b1", changes, journal, retry_policy(attempts=2)[0])
    assert result.status == BatchStatus.ROLLED_BACK
    assert result.statuses["c1"] == ItemStatus.FAILED
    assert await node_policies(node, changes) == [c.before for c in changes]


async def test_a_landed_change_that_cannot_be_put_back_is_partial() -> None:
    node, changes, journal = await setup(2)
    cid = changes[0].channel_id
    faulty = FaultyNode(node, Fault("lost_answer", cid, times=2), Fault("refuse", cid, call=3))
    result = await apply_batch(faulty, "b1", changes, journal, retry_policy(attempts=2)[0])
    assert result.status == BatchStatus.PARTIAL
    assert result.statuses == {"c0": ItemStatus.FAILED, "c1": ItemStatus.PENDING}
    assert result.unsettled_channels == [cid]
    assert "applied despite the error" in result.detail
    assert await node.get_policy(cid) == changes[0].after


async def test_outside_change_is_not_overwritten() -> None:
    node, changes, journal = await setup(3)
    ids = [c.channel_id for c in changes]
    theirs = await node.set_policy(ids[1], PolicyUpdate(fee_rate_ppm=4321))
    faulty = FaultyNode(node)
    result = await apply_batch(faulty, "b1", changes, journal, retry_policy()[0])
    assert result.status == BatchStatus.ROLLED_BACK
    assert result.statuses == {
        "c0": ItemStatus.RESTORED,
        "c1": ItemStatus.FAILED,
        "c2": ItemStatus.PENDING,
    }
    assert NOT_BEFORE in result.items[1].error
    assert ids[1] not in faulty.sets()
    assert await node.get_policy(ids[1]) == theirs
    assert await node.get_policy(ids[0]) == changes[0].before


async def test_batch_validation() -> None:
    node, changes, journal = await setup(2)
    twice = [changes[0], dataclasses.replace(changes[0], change_id="other")]
    with pytest.raises(ValueError, match="one change per channel"):
        await apply_batch(node, "b1", twice, journal, retry_policy()[0])
    await apply_batch(node, "b1", changes, journal, retry_policy()[0])
    with pytest.raises(ValueError, match="other changes"):
        await apply_batch(node, "b1", changes[:1], journal, retry_policy()[0])


# -- idempotence -------------------------------------------------------------------------


async def test_rerun_after_success_changes_nothing() -> None:
    node, changes, journal = await setup(4)
    await apply_batch(node, "b1", changes, journal, retry_policy()[0])
    updates = [ch.policy_updates for ch in node._state.channels.values()]
    faulty = FaultyNode(node)
    result = await apply_batch(faulty, "b1", changes, journal, retry_policy()[0])
    assert result.status == BatchStatus.SUCCESS
    assert list(result.statuses.values()) == [ItemStatus.SKIPPED] * 4
    assert faulty.sets() == []
    assert [ch.policy_updates for ch in node._state.channels.values()] == updates
    assert journal_statuses(journal, "b1") == [ItemStatus.APPLIED] * 4  # history kept


async def test_rerun_after_rollback_applies_again() -> None:
    node, changes, journal = await setup(3)
    faulty = FaultyNode(node, Fault("refuse", changes[2].channel_id))
    first = await apply_batch(faulty, "b1", changes, journal, retry_policy()[0])
    assert first.status == BatchStatus.ROLLED_BACK
    second = await apply_batch(node, "b1", changes, journal, retry_policy()[0])
    assert second.status == BatchStatus.SUCCESS
    assert list(second.statuses.values()) == [ItemStatus.APPLIED] * 3
    assert await node_policies(node, changes) == [c.after for c in changes]


async def test_changes_already_in_place_are_skipped() -> None:
    node, changes, journal = await setup(2)
    await node.set_policy(changes[0].channel_id, changes[0].update())
    faulty = FaultyNode(node)
    result = await apply_batch(faulty, "b1", changes, journal, retry_policy()[0])
    assert result.statuses == {"c0": ItemStatus.SKIPPED, "c1": ItemStatus.APPLIED}
    assert faulty.sets() == [changes[1].channel_id]


# -- crashes and reconciliation ----------------------------------------------------------


async def assert_journal_matches_node(node: SimulatedNode, journal: MemoryJournal) -> None:
    for batch in journal.batches.values():
        for item in batch.items.values():
            policy = await node.get_policy(item.change.channel_id)
            if item.status in (ItemStatus.APPLIED, ItemStatus.SKIPPED):
                assert policy == item.change.after, item
            else:
                assert policy == item.change.before, item


async def test_crash_after_the_node_applied_is_confirmed() -> None:
    node, changes, journal = await setup(3)
    faulty = FaultyNode(node, Fault("crash_after", changes[2].channel_id))
    with pytest.raises(Crash):
        await apply_batch(faulty, "b1", changes, journal, retry_policy()[0])
    assert journal.batch_status("b1")[0] == BatchStatus.PENDING
    assert journal_statuses(journal, "b1")[2] == ItemStatus.SENDING

    notes = await reconcile(FaultyNode(node), journal, retry_policy()[0])  # a fresh process
    item = journal.batches["b1"].items["c2"]
    assert item.status == ItemStatus.APPLIED and item.error == "confirmed after restart"
    assert journal.batch_status("b1")[0] == BatchStatus.SUCCESS
    assert journal_statuses(journal, "b1") == [ItemStatus.APPLIED] * 3
    assert any("confirmed after restart" in n for n in notes)
    await assert_journal_matches_node(node, journal)
    assert await reconcile(node, journal, retry_policy()[0]) == []  # nothing left to do


async def test_crash_in_the_middle_rolls_the_batch_back() -> None:
    node, changes, journal = await setup(4)
    faulty = FaultyNode(node, Fault("crash_after", changes[1].channel_id))
    with pytest.raises(Crash):
        await apply_batch(faulty, "b1", changes, journal, retry_policy()[0])
    with pytest.raises(ValueError, match="reconcile"):
        await apply_batch(node, "b1", changes, journal, retry_policy()[0])

    notes = await reconcile(FaultyNode(node), journal, retry_policy()[0])
    assert journal_statuses(journal, "b1") == [
        ItemStatus.RESTORED,
        ItemStatus.RESTORED,
        ItemStatus.PENDING,
        ItemStatus.PENDING,
    ]
    status, detail = journal.batch_status("b1")
    assert status == BatchStatus.ROLLED_BACK
    assert "not attempted" in detail and "restart" in detail
    assert any("ROLLED_BACK" in n for n in notes)
    assert await node_policies(node, changes) == [c.before for c in changes]
    await assert_journal_matches_node(node, journal)


async def test_crash_before_the_node_applied_is_failed() -> None:
    node, changes, journal = await setup(1)
    faulty = FaultyNode(node, Fault("crash_before", changes[0].channel_id))
    with pytest.raises(Crash):
        await apply_batch(faulty, "b1", changes, journal, retry_policy()[0])
    assert journal_statuses(journal, "b1") == [ItemStatus.SENDING]

    await reconcile(FaultyNode(node), journal, retry_policy()[0])
    item = journal.batches["b1"].items["c0"]
    assert item.status == ItemStatus.FAILED and item.error == "not applied before the crash"
    assert journal.batch_status("b1")[0] == BatchStatus.FAILED
    await assert_journal_matches_node(node, journal)


async def test_crash_during_restore_is_finished_by_reconcile() -> None:
    node, changes, journal = await setup(3)
    ids = [c.channel_id for c in changes]
    faulty = FaultyNode(node, Fault("refuse", ids[2]), Fault("crash_after", ids[1], call=2))
    with pytest.raises(Crash):
        await apply_batch(faulty, "b1", changes, journal, retry_policy()[0])
    await reconcile(node, journal, retry_policy()[0])
    assert journal.batch_status("b1")[0] == BatchStatus.ROLLED_BACK
    assert await node_policies(node, changes) == [c.before for c in changes]
    await assert_journal_matches_node(node, journal)


async def test_reconcile_records_an_unknown_policy() -> None:
    node, changes, journal = await setup(1)
    cid = changes[0].channel_id
    with pytest.raises(Crash):
        await apply_batch(
            FaultyNode(node, Fault("crash_after", cid)), "b1", changes, journal, retry_policy()[0]
        )
    theirs = await node.set_policy(cid, PolicyUpdate(fee_rate_ppm=9999))
    await reconcile(node, journal, retry_policy()[0])
    item = journal.batches["b1"].items["c0"]
    assert item.status == ItemStatus.FAILED and item.readback == theirs
    assert "9999" in item.error
    status, detail = journal.batch_status("b1")
    assert status == BatchStatus.PARTIAL and cid in detail
    assert await node.get_policy(cid) == theirs  # left alone


async def test_reconcile_leaves_unreadable_items_for_later() -> None:
    node, changes, journal = await setup(1)
    cid = changes[0].channel_id
    with pytest.raises(Crash):
        await apply_batch(
            FaultyNode(node, Fault("crash_after", cid)), "b1", changes, journal, retry_policy()[0]
        )
    down = FaultyNode(node, Fault("unavailable", method="get_policy", times=100))
    notes = await reconcile(down, journal, retry_policy()[0])
    assert journal_statuses(journal, "b1") == [ItemStatus.SENDING]
    assert journal.batch_status("b1")[0] == BatchStatus.PENDING
    assert any("still unknown" in n for n in notes)
    await reconcile(node, journal, retry_policy()[0])
    assert journal.batch_status("b1")[0] == BatchStatus.SUCCESS


# -- admin rollback ----------------------------------------------------------------------


async def test_rollback_of_one_change_and_then_the_rest() -> None:
    node, changes, journal = await setup(3)
    await apply_batch(node, "b1", changes, journal, retry_policy()[0])
    result = await rollback_changes(node, [changes[1]], journal, "b1", retry_policy()[0])
    assert result.status == BatchStatus.ROLLED_BACK
    assert result.statuses == {"c1": ItemStatus.RESTORED}
    got = await node_policies(node, changes)
    assert got == [changes[0].after, changes[1].before, changes[2].after]
    assert journal.batch_status("b1")[0] == BatchStatus.PARTIAL

    rest = await rollback_changes(node, [changes[0], changes[2]], journal, "b1", retry_policy()[0])
    assert rest.status == BatchStatus.ROLLED_BACK
    assert journal.batch_status("b1")[0] == BatchStatus.ROLLED_BACK
    assert await node_policies(node, changes) == [c.before for c in changes]


async def test_rollback_leaves_channels_changed_since() -> None:
    node, changes, journal = await setup(3)
    await apply_batch(node, "b1", changes, journal, retry_policy()[0])
    theirs = await node.set_policy(changes[0].channel_id, PolicyUpdate(fee_rate_ppm=1234))
    result = await rollback_changes(node, changes, journal, "b1", retry_policy()[0])
    assert result.status == BatchStatus.PARTIAL
    assert result.statuses["c0"] == ItemStatus.RESTORE_FAILED
    assert result.unsettled_channels == [changes[0].channel_id]
    assert "changed on the node since" in result.detail
    assert await node.get_policy(changes[0].channel_id) == theirs
    got = await node_policies(node, changes)
    assert got[1:] == [changes[1].before, changes[2].before]


async def test_rollback_of_nothing_possible_is_failed() -> None:
    node, changes, journal = await setup(1)
    await apply_batch(node, "b1", changes, journal, retry_policy()[0])
    faulty = FaultyNode(node, Fault("refuse", changes[0].channel_id, call=1, times=9))
    result = await rollback_changes(faulty, changes, journal, "b1", retry_policy()[0])
    assert result.status == BatchStatus.FAILED
    assert journal.batch_status("b1")[0] == BatchStatus.PARTIAL


# -- property: all or nothing ------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), n=st.integers(1, 5), seed=st.integers(0, 3))
def test_batches_are_all_or_nothing(data: st.DataObject, n: int, seed: int) -> None:
    fail_at = data.draw(st.none() | st.integers(0, n - 1), label="fail_at")
    kind = data.draw(st.sampled_from(["refuse", "unavailable", "ignore", "lost_answer"]))
    restore_fail = data.draw(st.none() | st.integers(0, n - 1), label="restore_fail")

    async def run() -> None:
        node = make_node(seed)
        changes = await make_changes(node, n)
        ids = [c.channel_id for c in changes]
        faults = []
        if fail_at is not None:
            faults.append(Fault(kind, ids[fail_at], times=100))
        broken_restore = fail_at is not None and restore_fail is not None and restore_fail < fail_at
        if broken_restore:
            faults.append(Fault("refuse", ids[restore_fail], call=2, times=100))
        journal = MemoryJournal()
        retry, _ = retry_policy(attempts=2)
        result = await apply_batch(FaultyNode(node, *faults), "b", changes, journal, retry)
        got = await node_policies(node, changes)
        if fail_at is None:
            assert result.status == BatchStatus.SUCCESS
            assert got == [c.after for c in changes]
        elif broken_restore:
            assert result.status == BatchStatus.PARTIAL
            assert result.unsettled_channels == [ids[restore_fail]]
            differ = [c.channel_id for c, p in zip(changes, got, strict=True) if p != c.before]
            assert differ == [ids[restore_fail]]
        else:
            want = BatchStatus.FAILED if fail_at == 0 else BatchStatus.ROLLED_BACK
            assert result.status == want
            assert got == [c.before for c in changes]
        assert journal.batch_status("b")[0] == result.status
        for item, change, policy in zip(
            journal.batches["b"].items.values(), changes, got, strict=True
        ):
            on_after = item.status in (
                ItemStatus.APPLIED,
                ItemStatus.SKIPPED,
                ItemStatus.RESTORE_FAILED,
            )
            assert policy == (change.after if on_after else change.before)

    asyncio.run(run())
