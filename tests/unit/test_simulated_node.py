"""SimulatedNode on a generated 500-node network, driven by an injected clock."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.network_gen import generate_network
from engine.node_source import (
    Channel,
    ForwardEvent,
    NetworkGraph,
    NodeRequestError,
    NodeSource,
    PolicyUpdate,
    parse_scid,
)
from engine.sources.simulated import SimConfig, SimulatedNode

T0 = 1_770_000_000.0  # 2026-02-02
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
BIG = 1_000_000


class Clock:
    def __init__(self, t: float = T0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@functools.cache
def network() -> NetworkGraph:
    return generate_network(500, seed=7)


def make(seed: int = 42, clock: Clock | None = None, **kw: object) -> tuple[SimulatedNode, Clock]:
    clock = clock or Clock()
    return SimulatedNode(network(), SimConfig(seed=seed), clock=clock, **kw), clock


async def all_forwards(node: SimulatedNode, cursor: int = 0, limit: int = 250) -> list:
    events: list[ForwardEvent] = []
    while True:
        page = await node.forwards_since(cursor, limit)
        events += page.events
        cursor = page.next_cursor
        if not page.has_more:
            return events


def check_balances(channels: list[Channel]) -> None:
    for ch in channels:
        assert ch.local_balance_msat + ch.remote_balance_msat == ch.capacity_sat * 1000
        assert 0 <= ch.local_balance_msat <= ch.capacity_sat * 1000


# -- shape and determinism --------------------------------------------------------------


async def test_is_a_node_source() -> None:
    node, _ = make()
    assert isinstance(node, NodeSource)
    channels = await node.list_channels()
    assert len(channels) == 12
    assert len({ch.channel_id for ch in channels}) == 12
    info = await node.get_info()
    for ch in channels:
        parse_scid(ch.channel_id)
        assert ch.funding_height < info.block_height - 14 * 144  # older than the history
        assert ch.local_policy == await node.get_policy(ch.channel_id)
        assert ch.remote_policy is not None
        assert re.fullmatch(r"[0-9a-f]{64}:[01]", ch.channel_point)
    check_balances(channels)
    history = await all_forwards(node)
    assert history, "14 days of history should hold forwards"
    assert all(T0 - 14 * DAY <= ev.timestamp_ns / 1e9 < T0 for ev in history)


async def test_deterministic() -> None:
    (a, ca), (b, cb) = make(seed=3), make(seed=3)
    for clock in (ca, cb):
        clock.t += 2 * DAY
    assert await all_forwards(a) == await all_forwards(b)
    assert await a.list_channels() == await b.list_channels()
    assert await a.get_info() == await b.get_info()
    assert await a.describe_graph() == await b.describe_graph()
    other, _ = make(seed=4, clock=Clock(ca.t))
    assert (await other.get_info()).pubkey != (await a.get_info()).pubkey
    assert await all_forwards(other) != await all_forwards(a)


async def test_independent_of_polling_pattern() -> None:
    (once, c1), (steps, c2), (jitter, c3) = make(), make(), make()
    c1.t += 10 * MINUTE
    await once.get_info()
    for _ in range(10):
        c2.t += MINUTE
        await steps.forwards_since(0, 1)
    for offset in (0.5, 7.5, 60, 60.001, 121, 240, 480, 599.999, 600):
        c3.t = T0 + offset
        await jitter.list_channels()
    assert c1.t == c2.t == c3.t
    for node in (steps, jitter):
        assert await all_forwards(node) == await all_forwards(once)
        assert await node.list_channels() == await once.list_channels()
    # The same over a longer stretch with more traffic: one day at once or hour by hour.
    c1.t += DAY
    for _ in range(24):
        c2.t += HOUR
        await steps.list_channels()
    assert await all_forwards(steps) == await all_forwards(once)
    assert await steps.list_channels() == await once.list_channels()


# -- forward log ------------------------------------------------------------------------


async def test_forwards_pagination() -> None:
    node, clock = make()
    clock.t += DAY
    page = await node.forwards_since(0, BIG)
    full = page.events
    assert not page.has_more
    assert len(full) > 50
    assert [ev.index for ev in full] == list(range(1, len(full) + 1))
    assert [ev.timestamp_ns for ev in full] == sorted(ev.timestamp_ns for ev in full)
    assert page.next_cursor == full[-1].index

    cursor, seen = 0, []
    while True:
        page = await node.forwards_since(cursor, 7)
        assert len(page.events) <= 7
        seen += page.events
        if page.events:
            assert page.events[0].index == cursor + 1  # no gap
            assert page.next_cursor == page.events[-1].index
        cursor = page.next_cursor
        if not page.has_more:
            break
        assert len(page.events) == 7
    assert seen == full

    for c in (0, 1, 17, len(full) - 8, len(full) - 1):
        page = await node.forwards_since(c, 8)
        assert page.events == full[c : c + 8]
        assert page.has_more == (c + 8 < len(full))
    last = full[-1].index
    for c in (last, last + 5):
        page = await node.forwards_since(c, 10)
        assert page.events == [] and not page.has_more
        assert page.next_cursor == c  # polling again from here misses nothing
    assert (await node.forwards_since(-3, 2)).events == full[:2]
    with pytest.raises(ValueError, match="limit"):
        await node.forwards_since(0, 0)

    clock.t += DAY
    new = await all_forwards(node, cursor=last, limit=9)
    assert new
    assert [ev.index for ev in new] == list(range(last + 1, last + 1 + len(new)))
    assert await all_forwards(node) == full + new
    assert all(ev.timestamp_ns >= (clock.t - DAY) * 1e9 for ev in new)


@functools.cache
def _frozen_node() -> tuple[SimulatedNode, list[ForwardEvent]]:
    node, _ = make(seed=11)  # its clock never moves: the log stays the same
    return node, asyncio.run(node.forwards_since(0, BIG)).events


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_resume_from_any_cursor(data: st.DataObject) -> None:
    node, full = _frozen_node()
    cursor = data.draw(st.integers(-5, len(full) + 5), label="cursor")
    got: list[ForwardEvent] = []

    async def run() -> None:
        nonlocal cursor
        while True:
            limit = data.draw(st.integers(1, 60), label="limit")
            page = await node.forwards_since(cursor, limit)
            got.extend(page.events)
            assert page.next_cursor >= cursor
            cursor = page.next_cursor
            if not page.has_more:
                return

    start = max(0, cursor)
    asyncio.run(run())
    assert got == full[start:]


# -- balances and failures --------------------------------------------------------------


async def test_balances_follow_the_forward_log() -> None:
    """Replaying the log from a balance snapshot reproduces the balances exactly: each
    settled forward moves amt_out out and amt_in in, so our total grows by the fee; a
    local_failed forward happened exactly when the outgoing side lacked amt_out."""
    node, clock = make(seed=2)
    before = {ch.channel_id: ch for ch in await node.list_channels()}
    cursor = (await node.forwards_since(0, BIG)).next_cursor
    clock.t += 7 * DAY
    events = await all_forwards(node, cursor)
    statuses = {ev.status for ev in events}
    assert statuses == {"settled", "local_failed"}

    local = {cid: ch.local_balance_msat for cid, ch in before.items()}
    capacity = {cid: ch.capacity_sat * 1000 for cid, ch in before.items()}
    for ev in events:
        assert ev.chan_in != ev.chan_out
        assert ev.chan_in in local and ev.chan_out in local
        assert ev.amt_in_msat >= ev.amt_out_msat > 0
        # The peer on the incoming side could pay amt_in.
        assert capacity[ev.chan_in] - local[ev.chan_in] >= ev.amt_in_msat
        total = sum(local.values())
        if ev.status == "settled":
            assert ev.fail_reason is None
            assert ev.fee_msat == ev.amt_in_msat - ev.amt_out_msat
            assert local[ev.chan_out] >= ev.amt_out_msat
            local[ev.chan_out] -= ev.amt_out_msat
            local[ev.chan_in] += ev.amt_in_msat
            assert sum(local.values()) == total + ev.fee_msat
        else:
            assert ev.status == "local_failed"
            assert ev.fee_msat == 0
            assert ev.fail_reason == "WIRE_TEMPORARY_CHANNEL_FAILURE"
            assert local[ev.chan_out] < ev.amt_out_msat  # failed only for lack of balance
    after = await node.list_channels()
    assert {ch.channel_id: ch.local_balance_msat for ch in after} == local
    check_balances(after)
    fees = sum(ev.fee_msat for ev in events)
    assert fees > 0
    assert sum(local.values()) == sum(ch.local_balance_msat for ch in before.values()) + fees


async def test_higher_fees_fewer_forwards() -> None:
    (raised, ca), (kept, cb) = make(seed=5), make(seed=5)
    cursor = (await raised.forwards_since(0, BIG)).next_cursor
    assert cursor == (await kept.forwards_since(0, BIG)).next_cursor
    for ch in await raised.list_channels():
        p = ch.local_policy
        assert p is not None
        await raised.set_policy(
            ch.channel_id,
            PolicyUpdate(fee_rate_ppm=p.fee_rate_ppm * 10, base_fee_msat=p.base_fee_msat * 10),
        )
    ca.t += 3 * DAY
    cb.t += 3 * DAY

    def settled(events: list[ForwardEvent]) -> int:
        return sum(ev.status == "settled" for ev in events)

    n_raised = settled(await all_forwards(raised, cursor))
    n_kept = settled(await all_forwards(kept, cursor))
    assert n_kept >= 50
    assert n_raised < n_kept / 3


# -- policies ---------------------------------------------------------------------------


async def test_set_policy_reads_back() -> None:
    node, _ = make()
    ch = (await node.list_channels())[0]
    old = ch.local_policy
    assert old is not None
    got = await node.set_policy(ch.channel_id, PolicyUpdate(fee_rate_ppm=321, cltv_delta=144))
    assert got == dataclasses.replace(old, fee_rate_ppm=321, cltv_delta=144)
    assert await node.get_policy(ch.channel_id) == got
    assert (await node.list_channels())[0].local_policy == got
    assert await node.set_policy(ch.channel_id, PolicyUpdate()) == got  # no-op
    top = ch.capacity_sat * 1000
    got = await node.set_policy(ch.channel_id, PolicyUpdate(htlc_max_msat=top, base_fee_msat=0))
    assert (got.htlc_max_msat, got.base_fee_msat, got.fee_rate_ppm) == (top, 0, 321)
    inbound = await node.set_policy(
        ch.channel_id, PolicyUpdate(inbound_base_fee_msat=-1000, inbound_fee_rate_ppm=-50)
    )
    assert (inbound.inbound_base_fee_msat, inbound.inbound_fee_rate_ppm) == (-1000, -50)
    assert inbound.fee_rate_ppm == 321


@pytest.mark.parametrize(
    "update",
    [
        PolicyUpdate(fee_rate_ppm=-1),
        PolicyUpdate(base_fee_msat=-1),
        PolicyUpdate(cltv_delta=0),
        PolicyUpdate(htlc_max_msat=10**15),
        PolicyUpdate(htlc_min_msat=10**15),
        PolicyUpdate(htlc_min_msat=5000, htlc_max_msat=4000),
    ],
)
async def test_set_policy_rejects(update: PolicyUpdate) -> None:
    node, _ = make()
    ch = (await node.list_channels())[1]
    with pytest.raises(NodeRequestError) as info:
        await node.set_policy(ch.channel_id, update)
    assert not info.value.transient
    assert await node.get_policy(ch.channel_id) == ch.local_policy


async def test_htlc_max_just_above_capacity() -> None:
    node, _ = make()
    ch = (await node.list_channels())[0]
    with pytest.raises(NodeRequestError, match="capacity"):
        await node.set_policy(ch.channel_id, PolicyUpdate(htlc_max_msat=ch.capacity_sat * 1000 + 1))


async def test_unknown_channel() -> None:
    node, _ = make()
    with pytest.raises(NodeRequestError, match="unknown channel 1x1x1"):
        await node.set_policy("1x1x1", PolicyUpdate(fee_rate_ppm=1))
    with pytest.raises(NodeRequestError, match="unknown channel"):
        await node.get_policy("1x1x1")


# -- persistence ------------------------------------------------------------------------


async def test_state_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "sim.json"
    first, clock = make(seed=9, state_path=path)
    reference, ref_clock = make(seed=9)  # the same node, never restarted
    assert path.is_file()
    cid = (await first.list_channels())[2].channel_id
    clock.t += DAY / 2
    ref_clock.t += DAY / 2
    for node in (first, reference):
        await node.set_policy(cid, PolicyUpdate(fee_rate_ppm=777))
    clock.t += DAY / 2
    ref_clock.t += DAY / 2
    before = await all_forwards(first)
    channels = await first.list_channels()
    del first

    second = SimulatedNode(network(), SimConfig(seed=9), clock=clock, state_path=path)
    assert await all_forwards(second) == before  # nothing lost, nothing re-simulated
    assert await second.list_channels() == channels
    assert (await second.get_policy(cid)).fee_rate_ppm == 777

    clock.t += DAY
    ref_clock.t += DAY
    after = await all_forwards(second, before[-1].index)
    assert after
    assert after[0].index == before[-1].index + 1
    indices = [ev.index for ev in before + after]
    assert indices == sorted(set(indices))
    assert before + after == await all_forwards(reference)
    assert await second.list_channels() == await reference.list_channels()

    # A restart without time passing adds nothing either.
    third = SimulatedNode(network(), SimConfig(seed=9), clock=clock, state_path=path)
    assert await all_forwards(third) == before + after


def test_state_file_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    node, clock = make(state_path=path)
    clock.t += HOUR
    cursor = asyncio.run(node.forwards_since(0, BIG)).next_cursor
    doc = json.loads(path.read_text())
    assert doc["version"] == 1
    assert doc["next_index"] == cursor + 1
    assert [p.name for p in tmp_path.iterdir()] == ["sim.json"]  # no temporary left over


@pytest.mark.parametrize(
    "content",
    [
        "",
        "{not json",
        '{"version": 1, "pubkey": "02',
        "[]",
        '{"version": 1}',
        '{"version": 1, "pubkey": "x", "config": {}, "processed_minute": 0, "next_index": 1,'
        ' "channels": [{"scid": "1x1x1"}], "forwards": []}',
        '{"version": 1, "pubkey": "x", "config": {"seed": 1}, "processed_minute": 0,'
        ' "next_index": 1, "channels": [], "forwards": [[1, 2]]}',
    ],
)
def test_corrupt_state_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "sim.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        make(state_path=path)
    assert path.read_text() == content  # left alone for the admin to look at


# -- close ------------------------------------------------------------------------------


async def _active_and_inactive(node: SimulatedNode, clock: Clock) -> tuple[Channel, Channel]:
    """Move the clock hour by hour until some peer is offline."""
    for _ in range(24 * 30):
        channels = await node.list_channels()
        down = [ch for ch in channels if not ch.active]
        if down:
            return next(ch for ch in channels if ch.active), down[0]
        clock.t += HOUR
    raise AssertionError("no peer went offline in 30 days")


async def test_close_channel(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    node, clock = make(state_path=path)
    twin, twin_clock = make()  # the same node without a state file
    up, down = await _active_and_inactive(node, clock)
    twin_clock.t = clock.t

    result = await node.close_channel(up.channel_id)
    assert result.channel_id == up.channel_id
    assert re.fullmatch(r"[0-9a-f]{64}", result.closing_txid or "")
    assert f"{up.local_balance_msat // 1000} sat" in result.detail
    assert (await twin.close_channel(up.channel_id)).closing_txid == result.closing_txid
    channels = await node.list_channels()
    assert up.channel_id not in {ch.channel_id for ch in channels}
    assert len(channels) == 11
    graph = await node.describe_graph()
    assert up.channel_id not in {e.channel_id for e in graph.edges}

    with pytest.raises(NodeRequestError, match="already closed"):
        await node.close_channel(up.channel_id)
    with pytest.raises(NodeRequestError, match="unknown channel 1x1x1"):
        await node.close_channel("1x1x1")
    with pytest.raises(NodeRequestError, match="short channel id"):
        await node.close_channel("nope")
    with pytest.raises(NodeRequestError, match="offline"):
        await node.close_channel(down.channel_id)
    assert down.channel_id in {ch.channel_id for ch in await node.list_channels()}

    # Persisted like the rest: a restart keeps the channel closed, and it forwards no more.
    before = await all_forwards(node)
    restarted = SimulatedNode(network(), SimConfig(seed=42), clock=clock, state_path=path)
    assert await restarted.list_channels() == await node.list_channels()
    doc = json.loads(path.read_text())
    assert [c["closing_txid"] for c in doc["closed"]] == [result.closing_txid]
    clock.t += 3 * DAY
    after = await all_forwards(restarted, before[-1].index)
    assert after
    assert all(up.channel_id not in (ev.chan_in, ev.chan_out) for ev in after)
    check_balances(await restarted.list_channels())


async def test_state_file_from_before_closes_loads(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    node, clock = make(state_path=path)
    channels = await node.list_channels()
    doc = json.loads(path.read_text())
    del doc["closed"]
    path.write_text(json.dumps(doc))
    again = SimulatedNode(network(), SimConfig(seed=42), clock=clock, state_path=path)
    assert await again.list_channels() == channels


# -- graph and chain --------------------------------------------------------------------


async def test_describe_graph_includes_us() -> None:
    node, _ = make()
    info = await node.get_info()
    graph = await node.describe_graph()
    base = network()
    assert len(graph.nodes) == len(base.nodes) + 1
    assert graph.nodes[: len(base.nodes)] == base.nodes
    assert graph.nodes[-1].pubkey == info.pubkey
    assert graph.nodes[-1].alias == info.alias == "daznode-demo"
    channels = await node.list_channels()
    assert len(graph.edges) == len(base.edges) + len(channels)
    ours = {e.channel_id: e for e in graph.edges if info.pubkey in (e.node1, e.node2)}
    assert ours.keys() == {ch.channel_id for ch in channels}
    for ch in channels:
        e = ours[ch.channel_id]
        assert {e.node1, e.node2} == {info.pubkey, ch.peer_id}
        assert e.node1 < e.node2
        assert e.capacity_sat == ch.capacity_sat
        mine, theirs = (
            (e.node1_policy, e.node2_policy)
            if e.node1 == info.pubkey
            else (e.node2_policy, e.node1_policy)
        )
        assert mine == ch.local_policy
        assert theirs == ch.remote_policy
    peers = {n.pubkey for n in base.nodes}
    assert all(ch.peer_id in peers for ch in channels)
    # A fee change shows up in the graph.
    ch = channels[0]
    await node.set_policy(ch.channel_id, PolicyUpdate(fee_rate_ppm=4321))
    edge = next(e for e in (await node.describe_graph()).edges if e.channel_id == ch.channel_id)
    assert 4321 in (edge.node1_policy.fee_rate_ppm, edge.node2_policy.fee_rate_ppm)


async def test_block_height_follows_clock() -> None:
    node, clock = make()
    info = await node.get_info()
    assert info.synced_to_chain and info.network == "simulated"
    assert 0 < info.num_active_channels <= 12
    h0 = info.block_height
    clock.t += 599
    assert (await node.get_info()).block_height in (h0, h0 + 1)
    clock.t = T0 + HOUR
    assert (await node.get_info()).block_height == h0 + 6
    clock.t = T0 + DAY
    assert (await node.get_info()).block_height == h0 + 144


# -- properties -------------------------------------------------------------------------

fee_change = st.tuples(
    st.floats(0, 12 * HOUR, allow_nan=False),  # wait this long first
    st.integers(0, 11),  # channel
    st.integers(0, 20_000),  # fee rate ppm
    st.integers(0, 5_000),  # base fee msat
)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 3), changes=st.lists(fee_change, min_size=1, max_size=6))
def test_invariants_under_random_fee_changes(
    seed: int, changes: list[tuple[float, int, int, int]]
) -> None:
    async def run() -> None:
        node, clock = make(seed=seed)
        last = 0
        for wait, idx, ppm, base in changes:
            clock.t += wait
            channels = await node.list_channels()
            check_balances(channels)
            cid = channels[idx].channel_id
            got = await node.set_policy(cid, PolicyUpdate(fee_rate_ppm=ppm, base_fee_msat=base))
            assert (got.fee_rate_ppm, got.base_fee_msat) == (ppm, base)
            page = await node.forwards_since(last, BIG)
            indices = [ev.index for ev in page.events]
            assert indices == list(range(last + 1, last + 1 + len(indices)))
            last = page.next_cursor
        clock.t += DAY
        check_balances(await node.list_channels())
        tail = await all_forwards(node, last)
        assert [ev.index for ev in tail] == list(range(last + 1, last + 1 + len(tail)))

    asyncio.run(run())


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    changes=st.lists(fee_change, min_size=1, max_size=4),
    polls=st.lists(st.floats(0, 1, allow_nan=False), max_size=6),
)
def test_extra_polls_change_nothing(
    changes: list[tuple[float, int, int, int]], polls: list[float]
) -> None:
    """Two identical nodes get the same fee changes at the same times; one is also polled
    at arbitrary moments in between. Their logs and balances end up identical."""

    async def run() -> None:
        (quiet, cq), (busy, cb) = make(seed=1), make(seed=1)
        for wait, idx, ppm, base in changes:
            for frac in sorted(polls):
                cb.t = cq.t + wait * frac
                await busy.forwards_since(0, 1)
            cq.t += wait
            cb.t = cq.t
            for node in (quiet, busy):
                cid = (await node.list_channels())[idx].channel_id
                await node.set_policy(cid, PolicyUpdate(fee_rate_ppm=ppm, base_fee_msat=base))
        assert await all_forwards(quiet) == await all_forwards(busy)
        assert await quiet.list_channels() == await busy.list_channels()

    asyncio.run(run())


async def test_rebalance_moves_liquidity_for_the_modelled_fee():
    from engine.node_source import NodeRequestError
    from engine.sources.simulated import REBALANCE_HOP_PPM

    t = [1_800_000_000.0]
    node = SimulatedNode(
        generate_network(300, 3),
        SimConfig(seed=5, num_channels=6, history_days=1),
        clock=lambda: t[0],
    )
    chans = sorted(await node.list_channels(), key=lambda c: c.local_ratio)
    low, high = chans[0], chans[-1]
    amount = min(high.local_balance_msat // 4, low.remote_balance_msat // 4)
    fee = low.remote_policy.fee_msat(amount) + amount * REBALANCE_HOP_PPM // 1_000_000
    too_cheap = await node.rebalance(high.channel_id, low.channel_id, amount, fee - 1)
    assert not too_cheap.ok and "too expensive" in too_cheap.detail and too_cheap.fee_msat == 0
    same = {c.channel_id: c.local_balance_msat for c in await node.list_channels()}
    assert same == {c.channel_id: c.local_balance_msat for c in chans}
    done = await node.rebalance(high.channel_id, low.channel_id, amount, fee)
    assert done.ok and done.fee_msat == fee
    after = {c.channel_id: c.local_balance_msat for c in await node.list_channels()}
    assert after[low.channel_id] == low.local_balance_msat + amount
    assert after[high.channel_id] == high.local_balance_msat - amount - fee
    with pytest.raises(NodeRequestError):
        await node.rebalance(low.channel_id, low.channel_id, amount, fee)
    with pytest.raises(NodeRequestError):
        await node.rebalance("1x1x1", low.channel_id, amount, fee)
