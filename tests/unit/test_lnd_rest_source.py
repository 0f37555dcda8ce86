"""LndRestSource against the fake LND REST server, over real HTTP with httpx."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import httpx
import pytest

from engine.node_source import (
    NodeRequestError,
    NodeSource,
    NodeUnavailable,
    PolicyUpdate,
    RoutingPolicy,
    scid_from_int,
)
from engine.sources import lnd_rest
from engine.sources.lnd_rest import LndRestSource
from tests.fakes.lnd_server import (
    FAR_NODE,
    OUR_PUBKEY,
    PEER_HIGH,
    PEER_LOW,
    REBALANCE_HOP_FEE_MSAT,
    FakeForward,
    FakeLndServer,
    chan_id,
    default_scenario,
)

LOW = default_scenario().channels[0]  # peer is node1 of the edge
HIGH = default_scenario().channels[1]  # we are node1
PRIVATE = default_scenario().channels[2]  # unannounced, no graph edge
LOW_SCID = scid_from_int(LOW.chan_id)
HIGH_SCID = scid_from_int(HIGH.chan_id)


@pytest.fixture
def lnd() -> Iterator[FakeLndServer]:
    with FakeLndServer() as server:
        yield server


@pytest.fixture
async def client(lnd: FakeLndServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=lnd.url, headers=lnd.headers) as c:
        yield c


@pytest.fixture
def source(client: httpx.AsyncClient) -> LndRestSource:
    return LndRestSource(client, timeout=2.0)


def _policy(lnd: FakeLndServer, chan_id: int) -> RoutingPolicy:
    p = lnd.channel(chan_id).local_policy
    assert p is not None
    return RoutingPolicy(
        base_fee_msat=p.fee_base_msat,
        fee_rate_ppm=p.fee_rate_milli_msat,
        cltv_delta=p.time_lock_delta,
        htlc_min_msat=p.min_htlc,
        htlc_max_msat=p.max_htlc_msat,
        inbound_base_fee_msat=p.inbound_fee_base_msat,
        inbound_fee_rate_ppm=p.inbound_fee_rate_milli_msat,
        disabled=p.disabled,
    )


# ----------------------------------------------------------------------- basics


def test_kind_and_capabilities(source: LndRestSource) -> None:
    assert isinstance(source, NodeSource)
    assert source.kind == "lnd"
    caps = source.capabilities
    assert caps.inbound_fees and caps.per_channel_cltv and caps.rebalance
    assert not caps.forward_failures


async def test_get_info(source: LndRestSource) -> None:
    info = await source.get_info()
    assert info.pubkey == OUR_PUBKEY
    assert info.alias == "daznode-test"
    assert info.block_height == 850_000
    assert info.num_active_channels == 2
    assert info.num_peers == 3
    assert info.synced_to_chain is True
    assert info.network == "regtest"
    assert info.version.startswith("0.20.1-beta")


# --------------------------------------------------------------------- channels


async def test_list_channels_ids_balances_and_both_policies(
    source: LndRestSource,
) -> None:
    channels = {c.channel_id: c for c in await source.list_channels()}
    assert set(channels) == {LOW_SCID, HIGH_SCID, scid_from_int(PRIVATE.chan_id)}

    low = channels[LOW_SCID]
    assert low.channel_id == "800000x1200x1"
    assert low.native_id == str(LOW.chan_id)
    assert low.channel_point == f"{'a1' * 32}:1"
    assert low.peer_id == PEER_LOW
    assert low.peer_alias == "low-peer"
    assert low.capacity_sat == 5_000_000
    assert low.local_balance_msat == 3_000_000_000
    assert low.remote_balance_msat == 1_996_530_000
    assert low.active and not low.private
    # The peer is node1 here: ours must come from node2_policy.
    assert low.local_policy is not None and low.remote_policy is not None
    assert (low.local_policy.base_fee_msat, low.local_policy.fee_rate_ppm) == (1000, 250)
    assert (low.remote_policy.fee_rate_ppm, low.remote_policy.cltv_delta) == (10, 40)

    high = channels[HIGH_SCID]  # we are node1
    assert high.local_policy is not None and high.remote_policy is not None
    assert high.local_policy.fee_rate_ppm == 800
    assert high.local_policy.cltv_delta == 144
    assert high.local_policy.inbound_base_fee_msat == -100
    assert high.local_policy.inbound_fee_rate_ppm == -50
    assert high.remote_policy.fee_rate_ppm == 1500
    assert high.remote_policy.disabled is True


@pytest.mark.parametrize("legacy", [False, True], ids=["lnd-0.20-404", "lnd-0.19-500"])
async def test_channel_without_graph_edge_keeps_policies_none(
    lnd: FakeLndServer, source: LndRestSource, legacy: bool
) -> None:
    lnd.scenario.legacy_edge_not_found = legacy
    channels = {c.channel_id: c for c in await source.list_channels()}
    private = channels[scid_from_int(PRIVATE.chan_id)]
    assert private.private and not private.active
    assert private.local_policy is None and private.remote_policy is None
    assert private.peer_alias == ""  # LND's "unable to lookup peer alias: ..." dropped
    assert channels[LOW_SCID].local_policy is not None


async def test_list_channels_propagates_transient_edge_failure(
    lnd: FakeLndServer, source: LndRestSource
) -> None:
    lnd.inject_unavailable(f"/v1/graph/edge/{HIGH.chan_id}")
    with pytest.raises(NodeUnavailable):
        await source.list_channels()


async def test_edge_lookups_run_concurrently_but_capped() -> None:
    scenario = default_scenario()
    template = scenario.channels[0]
    for i in range(20):
        scenario.channels.append(
            replace(
                template,
                chan_id=chan_id(830_000 + i, i, 0),
                funding_txid=f"{i:064x}",
                peer_pubkey=f"02{i:064x}",
            )
        )
    with FakeLndServer(scenario) as lnd:
        lnd.inject_delay("/v1/graph/edge/*", 0.2)
        async with httpx.AsyncClient(base_url=lnd.url, headers=lnd.headers) as c:
            channels = await LndRestSource(c, edge_concurrency=8).list_channels()
    assert len(channels) == 23
    assert sum(ch.local_policy is not None for ch in channels) == 22
    # Concurrent, never above the cap (how many overlap exactly depends on scheduling).
    assert 1 < lnd.max_in_flight <= 8


# --------------------------------------------------------------------- forwards


async def test_forwards_paginate_without_gaps_or_repeats(
    lnd: FakeLndServer, source: LndRestSource
) -> None:
    events, cursor, pages = [], 0, 0
    while True:
        page = await source.forwards_since(cursor, 7)
        pages += 1
        events.extend(page.events)
        if page.events:
            assert page.next_cursor == page.events[-1].index
        cursor = page.next_cursor
        if not page.has_more:
            break
    assert pages == 4  # 7 + 7 + 7 + 4
    assert [e.index for e in events] == list(range(1, 26))
    assert cursor == 25

    log = lnd.scenario.forwards
    for event, fwd in zip(events, log, strict=True):
        assert event.timestamp_ns == fwd.timestamp_ns
        assert event.chan_in == scid_from_int(fwd.chan_id_in)
        assert event.chan_out == scid_from_int(fwd.chan_id_out)
        assert event.amt_in_msat == fwd.amt_in_msat
        assert event.amt_out_msat == fwd.amt_out_msat
        assert event.fee_msat == fwd.amt_in_msat - fwd.amt_out_msat
        assert event.status == "settled"

    empty = await source.forwards_since(cursor, 7)
    assert empty.events == [] and empty.next_cursor == 25 and not empty.has_more


async def test_forwards_exact_multiple_ends_with_empty_page(source: LndRestSource) -> None:
    page = await source.forwards_since(20, 5)
    assert [e.index for e in page.events] == [21, 22, 23, 24, 25]
    assert page.has_more  # a full page cannot know it was the last one
    last = await source.forwards_since(page.next_cursor, 5)
    assert last.events == [] and not last.has_more and last.next_cursor == 25


async def test_forwards_resume_from_cursor_and_see_new_events(
    lnd: FakeLndServer, source: LndRestSource
) -> None:
    everything = (await source.forwards_since(0, 100)).events
    middle = await source.forwards_since(10, 5)
    assert middle.events == everything[10:15]
    assert middle.next_cursor == 15

    newest = lnd.scenario.forwards[-1].timestamp_ns
    lnd.add_forwards(
        [
            FakeForward(newest + 10**9 * (i + 1), LOW.chan_id, HIGH.chan_id, 50_100, 50_000)
            for i in range(3)
        ]
    )
    fresh = await source.forwards_since(25, 100)
    assert [e.index for e in fresh.events] == [26, 27, 28]
    assert all(e.fee_msat == 100 for e in fresh.events)
    assert fresh.next_cursor == 28 and not fresh.has_more


async def test_forwards_request_uses_absolute_offsets(
    lnd: FakeLndServer, source: LndRestSource
) -> None:
    await source.forwards_since(3, 4)
    (request,) = lnd.requests_to("/v1/switch")
    assert request.body["start_time"] == "0"
    assert "end_time" not in request.body  # LND then uses "now"
    assert request.body["index_offset"] == 3
    assert request.body["num_max_events"] == 4


async def test_forward_timestamp_falls_back_to_seconds(
    lnd: FakeLndServer, source: LndRestSource
) -> None:
    event = {
        "timestamp": "1700000000",
        "chan_id_in": str(LOW.chan_id),
        "chan_id_out": str(HIGH.chan_id),
        "amt_in_msat": "1001000",
        "amt_out_msat": "1000000",
        "fee_msat": "1000",
    }
    body = {"forwarding_events": [event], "last_offset_index": 8}
    lnd.inject_body("/v1/switch", json.dumps(body).encode())
    page = await source.forwards_since(7, 10)
    assert page.events[0].timestamp_ns == 1_700_000_000 * 10**9
    assert page.events[0].index == 8 and page.next_cursor == 8


async def test_forwards_reject_inconsistent_offset(
    lnd: FakeLndServer, source: LndRestSource
) -> None:
    lnd.inject_body("/v1/switch", b'{"forwarding_events": [], "last_offset_index": 3}')
    with pytest.raises(NodeRequestError, match="last_offset_index"):
        await source.forwards_since(10, 10)


# ----------------------------------------------------------------------- policy


async def test_get_policy_picks_our_side_by_scid_or_native_id(
    lnd: FakeLndServer, source: LndRestSource
) -> None:
    assert await source.get_policy(LOW_SCID) == _policy(lnd, LOW.chan_id)
    assert await source.get_policy(str(HIGH.chan_id)) == _policy(lnd, HIGH.chan_id)


async def test_set_policy_base_fee_only_keeps_everything_else(
    lnd: FakeLndServer, source: LndRestSource
) -> None:
    before = _policy(lnd, HIGH.chan_id)
    result = await source.set_policy(HIGH_SCID, PolicyUpdate(base_fee_msat=0))

    stored = _policy(lnd, HIGH.chan_id)
    assert result == stored  # what we return is what LND now has
    assert stored.base_fee_msat == 0
    assert stored.fee_rate_ppm == before.fee_rate_ppm == 800  # not zeroed
    assert stored.cltv_delta == before.cltv_delta == 144  # not reset
    assert stored.htlc_min_msat == before.htlc_min_msat
    assert stored.htlc_max_msat == before.htlc_max_msat
    assert stored.inbound_base_fee_msat == -100
    assert stored.inbound_fee_rate_ppm == -50

    (request,) = lnd.requests_to("/v1/chanpolicy")
    assert request.body == {
        "chan_point": {"funding_txid_str": "b2" * 32, "output_index": 0},
        "base_fee_msat": "0",
        "fee_rate_ppm": 800,
        "time_lock_delta": 144,
        "min_htlc_msat": str(before.htlc_min_msat),
        "min_htlc_msat_specified": True,
        "max_htlc_msat": str(before.htlc_max_msat),
        "inbound_fee": {"base_fee_msat": -100, "fee_rate_ppm": -50},
    }


async def test_set_policy_cltv_and_inbound_fee(lnd: FakeLndServer, source: LndRestSource) -> None:
    update = PolicyUpdate(cltv_delta=40, inbound_fee_rate_ppm=-25, htlc_max_msat=500_000_000)
    result = await source.set_policy(LOW_SCID, update)
    assert result.cltv_delta == 40
    assert result.inbound_fee_rate_ppm == -25
    assert result.inbound_base_fee_msat == 0
    assert result.htlc_max_msat == 500_000_000
    assert (result.base_fee_msat, result.fee_rate_ppm) == (1000, 250)
    assert result == _policy(lnd, LOW.chan_id)
    # the peer's side is untouched
    assert lnd.channel(LOW.chan_id).remote_policy.fee_rate_milli_msat == 10  # type: ignore[union-attr]


async def test_fake_replaces_whole_policy_like_lnd(
    lnd: FakeLndServer, client: httpx.AsyncClient
) -> None:
    """Why the adapter merges: a bare update zeroes the fee rate on LND."""
    body = {
        "chan_point": {"funding_txid_str": "b2" * 32, "output_index": 0},
        "base_fee_msat": "1",
        "time_lock_delta": 40,
    }
    resp = await client.post("/v1/chanpolicy", json=body)
    assert resp.json() == {"failed_updates": []}
    assert lnd.channel(HIGH.chan_id).local_policy.fee_rate_milli_msat == 0  # type: ignore[union-attr]


async def test_set_policy_failed_update_raises(lnd: FakeLndServer, source: LndRestSource) -> None:
    before = _policy(lnd, LOW.chan_id)
    too_big = PolicyUpdate(htlc_max_msat=LOW.capacity * 1000 * 2)
    with pytest.raises(NodeRequestError, match="max htlc size") as excinfo:
        await source.set_policy(LOW_SCID, too_big)
    assert "UPDATE_FAILURE_INVALID_PARAMETER" in str(excinfo.value)
    assert not excinfo.value.transient
    assert _policy(lnd, LOW.chan_id) == before


async def test_set_policy_lnd_validation_error_keeps_message(source: LndRestSource) -> None:
    with pytest.raises(NodeRequestError, match="time lock delta of 5 is too small"):
        await source.set_policy(LOW_SCID, PolicyUpdate(cltv_delta=5))


async def test_unknown_channel(lnd: FakeLndServer, source: LndRestSource) -> None:
    unknown = "700000x1x0"
    with pytest.raises(NodeRequestError, match="unknown channel"):
        await source.set_policy(unknown, PolicyUpdate(base_fee_msat=1))
    assert lnd.requests_to("/v1/chanpolicy") == []
    with pytest.raises(NodeRequestError, match="edge not found"):
        await source.get_policy(unknown)


async def test_invalid_channel_id(source: LndRestSource) -> None:
    with pytest.raises(NodeRequestError, match="short channel id"):
        await source.get_policy("not-a-channel")


async def test_someone_elses_channel_is_not_ours(source: LndRestSource) -> None:
    with pytest.raises(NodeRequestError, match="not one of ours"):
        await source.get_policy("790000x5x1")


# ------------------------------------------------------------------------ graph


async def test_describe_graph(lnd: FakeLndServer, source: LndRestSource) -> None:
    graph = await source.describe_graph()
    assert {n.pubkey for n in graph.nodes} == {OUR_PUBKEY, PEER_LOW, PEER_HIGH, FAR_NODE}
    assert {n.alias for n in graph.nodes} >= {"daznode-test", "far-away"}
    edges = {e.channel_id: e for e in graph.edges}
    assert set(edges) == {LOW_SCID, HIGH_SCID, "790000x5x1"}  # private one excluded
    remote = edges["790000x5x1"]
    assert (remote.node1, remote.node2, remote.capacity_sat) == (PEER_LOW, FAR_NODE, 10**7)
    assert remote.node1_policy is not None and remote.node2_policy is None
    high = edges[HIGH_SCID]
    assert high.node1 == OUR_PUBKEY and high.node1_policy == _policy(lnd, HIGH.chan_id)
    assert high.last_update > 0
    (request,) = lnd.requests_to("/v1/graph")
    assert request.query == {"include_unannounced": ["false"]}


# -------------------------------------------------------------------- rebalance


def _balances(lnd: FakeLndServer) -> list[tuple[int, int]]:
    return [(c.local_msat, c.remote_msat) for c in lnd.scenario.channels]


async def test_rebalance_moves_liquidity_and_reports_fee(
    lnd: FakeLndServer, source: LndRestSource
) -> None:
    amount = 100_000_500  # not whole sat: the fake keeps msat
    # LOW's peer charges 0 + 10 ppm to forward to us; the hops in between a fixed fee.
    fee = amount * 10 // 1_000_000 + REBALANCE_HOP_FEE_MSAT
    high_before, low_before = lnd.channel(HIGH.chan_id), lnd.channel(LOW.chan_id)
    high_local, high_remote = high_before.local_msat, high_before.remote_msat
    low_local, low_remote = low_before.local_msat, low_before.remote_msat

    result = await source.rebalance(HIGH_SCID, LOW_SCID, amount, 5_000)

    assert result.ok
    assert (result.out_channel, result.in_channel) == (HIGH_SCID, LOW_SCID)
    assert result.amount_msat == amount
    assert result.fee_msat == fee == 2_000
    (invoice,) = lnd.scenario.invoices
    assert invoice.settled
    assert result.detail == invoice.r_hash.hex()

    high, low = lnd.channel(HIGH.chan_id), lnd.channel(LOW.chan_id)
    assert high.local_msat == high_local - amount - fee
    assert high.remote_msat == high_remote + amount + fee
    assert low.local_msat == low_local + amount
    assert low.remote_msat == low_remote - amount
    channels = {c.channel_id: c for c in await source.list_channels()}
    assert channels[HIGH_SCID].local_balance_msat == (high_local - amount - fee) // 1000 * 1000
    assert channels[LOW_SCID].local_balance_msat == low_local + amount // 1000 * 1000

    (add_invoice,) = lnd.requests_to("/v1/invoices")
    assert add_invoice.body == {
        "value_msat": str(amount),
        "memo": "daznode rebalance",
        "expiry": "600",
    }
    (send,) = lnd.requests_to("/v2/router/send")
    assert send.has_macaroon
    assert send.body == {
        "payment_request": invoice.payment_request,
        "outgoing_chan_ids": [str(HIGH.chan_id)],
        "last_hop_pubkey": base64.b64encode(bytes.fromhex(PEER_LOW)).decode(),
        "fee_limit_msat": "5000",
        "timeout_seconds": 60,
        "allow_self_payment": True,
        "no_inflight_updates": True,
    }


async def test_rebalance_reads_past_in_flight_updates(
    lnd: FakeLndServer, client: httpx.AsyncClient
) -> None:
    """Without no_inflight_updates the fake streams IN_FLIGHT first, like LND."""
    invoice = (await client.post("/v1/invoices", json={"value_msat": "1000000"})).json()
    body = {
        "payment_request": invoice["payment_request"],
        "fee_limit_msat": "10000",
        "allow_self_payment": True,
    }
    resp = await client.post("/v2/router/send", json=body)
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert [line["result"]["status"] for line in lines] == ["IN_FLIGHT", "SUCCEEDED"]
    assert lines[1]["result"]["payment_hash"] == base64.b64decode(invoice["r_hash"]).hex()


async def test_rebalance_too_expensive_fails_without_moving_funds(
    lnd: FakeLndServer, source: LndRestSource
) -> None:
    before = _balances(lnd)
    result = await source.rebalance(HIGH_SCID, LOW_SCID, 100_000_000, 1_999)  # costs 2000
    assert not result.ok
    assert result.fee_msat == 0
    assert result.detail == "FAILURE_REASON_NO_ROUTE"
    assert _balances(lnd) == before
    (request,) = lnd.requests_to("/v2/router/send")
    assert request.body["fee_limit_msat"] == "1999"


async def test_rebalance_beyond_the_balance_fails(
    lnd: FakeLndServer, source: LndRestSource
) -> None:
    before = _balances(lnd)
    result = await source.rebalance(HIGH_SCID, LOW_SCID, 190_000_000, 10**6)  # reserve!
    assert not result.ok and result.detail == "FAILURE_REASON_NO_ROUTE"
    assert _balances(lnd) == before


@pytest.mark.parametrize(
    ("out_channel", "in_channel", "match"),
    [
        ("700000x1x0", LOW_SCID, "unknown channel 700000x1x0"),
        (HIGH_SCID, "790000x5x1", "unknown channel 790000x5x1"),  # not ours
        (HIGH_SCID, str(HIGH.chan_id), "two different channels"),
        ("nope", LOW_SCID, "short channel id"),
    ],
)
async def test_rebalance_refuses_bad_channels(
    lnd: FakeLndServer, source: LndRestSource, out_channel: str, in_channel: str, match: str
) -> None:
    with pytest.raises(NodeRequestError, match=match):
        await source.rebalance(out_channel, in_channel, 1_000_000, 1_000)
    assert lnd.requests_to("/v1/invoices") == []
    assert lnd.requests_to("/v2/router/send") == []


async def test_rebalance_refuses_two_channels_with_one_peer() -> None:
    scenario = default_scenario()
    twin = replace(scenario.channels[0], chan_id=chan_id(840_000, 1, 0), funding_txid="d4" * 32)
    scenario.channels.append(twin)
    with FakeLndServer(scenario) as lnd:
        async with httpx.AsyncClient(base_url=lnd.url, headers=lnd.headers) as c:
            with pytest.raises(NodeRequestError, match="same peer"):
                await LndRestSource(c).rebalance(LOW_SCID, "840000x1x0", 1_000_000, 1_000)
        assert lnd.requests_to("/v1/invoices") == []


async def test_rebalance_stream_error_line_is_request_error(
    lnd: FakeLndServer, source: LndRestSource
) -> None:
    before = _balances(lnd)
    lnd.inject_stream_error("/v2/router/send", "payment attempt not completed: boom")
    with pytest.raises(NodeRequestError, match="payment attempt not completed: boom") as excinfo:
        await source.rebalance(HIGH_SCID, LOW_SCID, 1_000_000, 5_000)
    assert not isinstance(excinfo.value, NodeUnavailable)
    assert _balances(lnd) == before


async def test_rebalance_error_before_the_stream_keeps_lnd_message(
    lnd: FakeLndServer, source: LndRestSource
) -> None:
    lnd.inject_lnd_error("/v2/router/send", "invoice is already paid")
    with pytest.raises(NodeRequestError, match="invoice is already paid"):
        await source.rebalance(HIGH_SCID, LOW_SCID, 1_000_000, 5_000)


@pytest.mark.parametrize("path", ["/v1/invoices", "/v2/router/send"])
async def test_rebalance_503_is_transient(
    lnd: FakeLndServer, source: LndRestSource, path: str
) -> None:
    before = _balances(lnd)
    lnd.inject_unavailable(path)
    with pytest.raises(NodeUnavailable, match="HTTP 503") as excinfo:
        await source.rebalance(HIGH_SCID, LOW_SCID, 1_000_000, 5_000)
    assert excinfo.value.transient
    assert _balances(lnd) == before


async def test_rebalance_lost_answer_is_not_retryable(
    lnd: FakeLndServer, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once SendPaymentV2 has the request the payment may be under way: a retry would
    pay a second invoice, so a timeout then must not count as transient."""
    monkeypatch.setattr(lnd_rest, "REBALANCE_TIMEOUT_S", 0)
    lnd.inject_delay("/v2/router/send", 3.0)
    source = LndRestSource(client, timeout=0.2)
    with pytest.raises(NodeUnavailable, match="outcome unknown") as excinfo:
        await source.rebalance(HIGH_SCID, LOW_SCID, 1_000_000, 5_000)
    assert not excinfo.value.transient
    (invoice,) = lnd.scenario.invoices
    assert invoice.r_hash.hex() in str(excinfo.value)


async def test_fake_rebalance_needs_macaroon(lnd: FakeLndServer) -> None:
    async with httpx.AsyncClient(base_url=lnd.url) as bare:
        resp = await bare.post("/v2/router/send", json={"allow_self_payment": True})
        assert resp.status_code == 500
        assert resp.json()["message"] == "expected 1 macaroon, got 0"
        resp = await bare.post("/v1/invoices", json={"value_msat": "1000"})
        assert resp.status_code == 500
    assert lnd.scenario.invoices == []


# ------------------------------------------------------------------------ close

LOW_CLOSE_PATH = f"/v1/channels/{'a1' * 32}/1"
# A real txid (the genesis coinbase) as explorers show it, and as LND's PendingUpdate.txid
# carries it: the chainhash.Hash bytes, i.e. reversed, base64 in JSON.
GENESIS_TXID = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
GENESIS_TXID_B64 = base64.b64encode(bytes.fromhex(GENESIS_TXID)[::-1]).decode()


def _stream_body(*lines: dict) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


async def test_close_channel_cooperatively(lnd: FakeLndServer, source: LndRestSource) -> None:
    result = await source.close_channel(str(LOW.chan_id))  # LND's numeric id works too

    (closed,) = lnd.scenario.closed
    assert closed.channel.chan_id == LOW.chan_id and not closed.force
    assert result.channel_id == LOW_SCID
    assert result.closing_txid == closed.closing_txid
    # the fake derives the hash independently; LND shows it reversed
    digest = hashlib.sha256(f"fake-close:{'a1' * 32}:1".encode()).digest()
    assert result.closing_txid == digest[::-1].hex() != digest.hex()
    assert result.closing_txid in result.detail
    (request,) = lnd.requests_to("/v1/channels/*")
    assert (request.method, request.path) == ("DELETE", LOW_CLOSE_PATH)
    assert request.query == {"force": ["false"]}
    assert request.has_macaroon
    # LND lists only open channels: the closing one has left the list
    assert LOW_SCID not in {c.channel_id for c in await source.list_channels()}


async def test_close_returns_at_close_pending_while_lnd_keeps_the_stream_open(
    lnd: FakeLndServer, source: LndRestSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stream goes on until the closing transaction confirms; waiting for its end
    would run into the timeout instead of returning the txid."""
    assert lnd.scenario.close_confirms is False
    monkeypatch.setattr(lnd_rest, "CLOSE_TIMEOUT_S", 1)
    result = await source.close_channel(HIGH_SCID)
    assert result.closing_txid == lnd.scenario.closed[0].closing_txid


async def test_close_converts_the_txid_to_display_order(
    lnd: FakeLndServer, source: LndRestSource
) -> None:
    pending = {"txid": GENESIS_TXID_B64, "output_index": 0, "fee_per_vbyte": "0"}
    lnd.inject_body(LOW_CLOSE_PATH, _stream_body({"result": {"close_pending": pending}}))
    result = await source.close_channel(LOW_SCID)
    assert result.closing_txid == GENESIS_TXID
    assert "broadcast" in result.detail


async def test_close_skips_updates_without_txid_and_takes_chan_close(
    lnd: FakeLndServer, source: LndRestSource
) -> None:
    body = _stream_body(
        {"result": {"close_instant": {"num_pending_htlcs": 0}}},
        {"result": {"chan_close": {"closing_txid": GENESIS_TXID_B64, "success": True}}},
    )
    lnd.inject_body(LOW_CLOSE_PATH, body)
    result = await source.close_channel(LOW_SCID)
    assert result.closing_txid == GENESIS_TXID
    assert "confirmed" in result.detail


async def test_fake_close_confirms_with_chan_close(
    lnd: FakeLndServer, client: httpx.AsyncClient
) -> None:
    lnd.scenario.close_confirms = True
    resp = await client.delete(LOW_CLOSE_PATH, params={"force": "false"})
    lines = [json.loads(line) for line in resp.text.splitlines()]
    assert [next(iter(line["result"])) for line in lines] == ["close_pending", "chan_close"]
    assert (
        lines[0]["result"]["close_pending"]["txid"]
        == (lines[1]["result"]["chan_close"]["closing_txid"])
    )
    assert lines[1]["result"]["chan_close"]["local_close_output"]["amount_sat"] == "3000000"


async def test_close_refuses_an_inactive_channel_up_front(
    lnd: FakeLndServer, source: LndRestSource
) -> None:
    with pytest.raises(NodeRequestError, match=r"inactive.*never force closes"):
        await source.close_channel(scid_from_int(PRIVATE.chan_id))
    assert lnd.requests_to("/v1/channels/*") == []
    assert lnd.scenario.closed == []


async def test_close_peer_gone_offline_keeps_lnd_message(
    lnd: FakeLndServer, source: LndRestSource
) -> None:
    """Listed active, but the peer disconnected before the close: LND refuses."""
    message = (
        "unable to gracefully close channel while peer is offline (try force closing it "
        "instead): channel link not found"
    )
    body = json.dumps({"error": {"code": 2, "message": message, "details": []}}).encode()
    lnd.inject_body(LOW_CLOSE_PATH, body, status=500)
    with pytest.raises(NodeRequestError, match=r"peer is offline \(try force") as excinfo:
        await source.close_channel(LOW_SCID)
    assert not isinstance(excinfo.value, NodeUnavailable)
    assert lnd.requests_to("/v1/channels/*")[0].query == {"force": ["false"]}


async def test_close_refused_by_the_fake_like_lnd(
    lnd: FakeLndServer, source: LndRestSource
) -> None:
    lnd.channel(LOW.chan_id).active_htlcs = 2
    with pytest.raises(NodeRequestError, match=r"active htlcs \(number of active htlcs: 2\)"):
        await source.close_channel(LOW_SCID)
    assert lnd.scenario.closed == []
    assert LOW_SCID in {c.channel_id for c in await source.list_channels()}


async def test_fake_offline_refusal_and_no_force_close(
    lnd: FakeLndServer, client: httpx.AsyncClient
) -> None:
    private = f"/v1/channels/{PRIVATE.funding_txid}/{PRIVATE.output_index}"
    resp = await client.delete(private, params={"force": "false"})
    assert resp.status_code == 500
    assert "peer is offline" in resp.json()["error"]["message"]
    resp = await client.delete(LOW_CLOSE_PATH, params={"force": "true"})
    assert resp.status_code == 500 and "force" in resp.json()["error"]["message"]
    resp = await client.delete(f"/v1/channels/{'ff' * 32}/0")
    assert resp.json()["error"]["message"] == "channel not found"
    assert lnd.scenario.closed == []


@pytest.mark.parametrize(
    ("channel", "match"),
    [
        ("700000x1x0", "unknown channel 700000x1x0"),
        ("790000x5x1", "unknown channel"),
        ("x", "short channel id"),
    ],
)
async def test_close_refuses_unknown_channels(
    lnd: FakeLndServer, source: LndRestSource, channel: str, match: str
) -> None:
    with pytest.raises(NodeRequestError, match=match):
        await source.close_channel(channel)
    assert lnd.requests_to("/v1/channels/*") == []


async def test_close_stream_error_line_is_request_error(
    lnd: FakeLndServer, source: LndRestSource
) -> None:
    lnd.inject_stream_error("/v1/channels/*", "closing negotiation failed: boom")
    with pytest.raises(NodeRequestError, match="closing negotiation failed: boom") as excinfo:
        await source.close_channel(LOW_SCID)
    assert not isinstance(excinfo.value, NodeUnavailable)


async def test_close_503_before_lnd_is_transient(lnd: FakeLndServer, source: LndRestSource) -> None:
    lnd.inject_unavailable("/v1/channels/*")
    with pytest.raises(NodeUnavailable, match="HTTP 503") as excinfo:
        await source.close_channel(LOW_SCID)
    assert excinfo.value.transient


async def test_close_without_answer_is_not_retryable(
    lnd: FakeLndServer, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LND may be negotiating already: a timeout must not look like a refusal, nor like
    something to retry at once."""
    monkeypatch.setattr(lnd_rest, "CLOSE_TIMEOUT_S", 0.3)
    lnd.inject_delay(LOW_CLOSE_PATH, 3.0)
    with pytest.raises(NodeUnavailable, match="outcome unknown") as excinfo:
        await LndRestSource(client, timeout=0.2).close_channel(LOW_SCID)
    assert not excinfo.value.transient
    assert LOW_SCID in str(excinfo.value)


async def test_close_stream_that_never_names_a_txid_is_cut_off(
    lnd: FakeLndServer, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Updates keep coming (so no read times out), none with a txid: the overall
    deadline ends the wait."""
    monkeypatch.setattr(lnd_rest, "CLOSE_TIMEOUT_S", 0.3)

    async def trickle() -> AsyncIterator[bytes]:
        while True:
            yield _stream_body({"result": {"close_instant": {"num_pending_htlcs": 1}}})
            await asyncio.sleep(0.05)

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            return httpx.Response(200, content=trickle())
        return await client.send(client.build_request(request.method, request.url.path))

    async with httpx.AsyncClient(
        base_url=lnd.url, transport=httpx.MockTransport(handler)
    ) as mocked:
        with pytest.raises(NodeUnavailable, match="no closing transaction within") as excinfo:
            await LndRestSource(mocked, timeout=0.2).close_channel(LOW_SCID)
    assert not excinfo.value.transient


async def test_close_stream_without_txid_is_unexpected(
    lnd: FakeLndServer, source: LndRestSource
) -> None:
    lnd.inject_body(LOW_CLOSE_PATH, _stream_body({"result": {"close_instant": {}}}))
    with pytest.raises(NodeRequestError, match="without a closing transaction"):
        await source.close_channel(LOW_SCID)
    bad = {"result": {"close_pending": {"txid": "AAAA", "output_index": 0}}}
    lnd.inject_body(LOW_CLOSE_PATH, _stream_body(bad))
    with pytest.raises(NodeRequestError, match="unexpected response from LND: closechannel"):
        await source.close_channel(LOW_SCID)


# ----------------------------------------------------------------------- errors


async def test_missing_macaroon_is_a_request_error(lnd: FakeLndServer) -> None:
    async with httpx.AsyncClient(base_url=lnd.url) as bare:
        with pytest.raises(NodeRequestError, match="expected 1 macaroon, got 0") as excinfo:
            await LndRestSource(bare).get_info()
    assert not excinfo.value.transient
    assert "HTTP 500" in str(excinfo.value)


async def test_wrong_macaroon_keeps_lnd_message_and_hides_secret(
    lnd: FakeLndServer,
) -> None:
    secret = "deadbeef" * 8
    headers = {"Grpc-Metadata-macaroon": secret}
    async with httpx.AsyncClient(base_url=lnd.url, headers=headers) as c:
        with pytest.raises(NodeRequestError, match="verification failed") as excinfo:
            await LndRestSource(c).list_channels()
    assert secret not in str(excinfo.value)


async def test_timeout_is_transient(lnd: FakeLndServer, client: httpx.AsyncClient) -> None:
    lnd.inject_delay("/v1/getinfo", 3.0)
    with pytest.raises(NodeUnavailable, match="timed out") as excinfo:
        await LndRestSource(client, timeout=0.2).get_info()
    assert excinfo.value.transient


@pytest.mark.parametrize("body", [b"", b"<html>502 Bad Gateway</html>"], ids=["empty", "html"])
async def test_503_is_transient(lnd: FakeLndServer, source: LndRestSource, body: bytes) -> None:
    lnd.inject_unavailable("/v1/channels", body=body)
    with pytest.raises(NodeUnavailable, match="HTTP 503") as excinfo:
        await source.list_channels()
    assert excinfo.value.transient


@pytest.mark.parametrize(
    ("message", "code", "status"),
    [
        ("the RPC server is in the process of starting up, but not yet ready", 2, 500),
        ("wallet locked, unlock it to enable full RPC access", 2, 500),
        ("connection error: desc = transport is closing", 14, 503),
    ],
)
async def test_transient_lnd_errors(
    lnd: FakeLndServer, source: LndRestSource, message: str, code: int, status: int
) -> None:
    lnd.inject_lnd_error("/v1/getinfo", message, code=code, status=status)
    with pytest.raises(NodeUnavailable, match=message.split(",")[0]):
        await source.get_info()


async def test_lnd_error_body_is_request_error(lnd: FakeLndServer, source: LndRestSource) -> None:
    lnd.inject_lnd_error("/v1/switch", "unable to query forwarding log: boom")
    with pytest.raises(NodeRequestError, match="unable to query forwarding log: boom"):
        await source.forwards_since(0, 10)


async def test_wrapped_error_body(lnd: FakeLndServer, source: LndRestSource) -> None:
    body = {"error": {"code": 3, "message": "invalid argument: nope"}}
    lnd.inject_body("/v1/getinfo", json.dumps(body).encode(), status=400)
    with pytest.raises(NodeRequestError, match="invalid argument: nope"):
        await source.get_info()


async def test_plain_4xx_is_request_error(lnd: FakeLndServer, source: LndRestSource) -> None:
    lnd.inject_unavailable("/v1/graph", body=b"forbidden", status=403)
    with pytest.raises(NodeRequestError, match="HTTP 403") as excinfo:
        await source.describe_graph()
    assert not isinstance(excinfo.value, NodeUnavailable)


async def test_malformed_json(lnd: FakeLndServer, source: LndRestSource) -> None:
    lnd.inject_malformed_json("/v1/getinfo")
    with pytest.raises(NodeRequestError, match="unexpected response from LND"):
        await source.get_info()


async def test_missing_fields(lnd: FakeLndServer, source: LndRestSource) -> None:
    lnd.inject_body("/v1/channels", b'{"channels": [{"chan_id": "123"}]}')
    with pytest.raises(NodeRequestError, match="unexpected response from LND"):
        await source.list_channels()


async def test_connection_refused_is_transient() -> None:
    server = FakeLndServer()
    url = server.url
    server.stop()  # bound then closed: nothing listens on the port any more
    async with httpx.AsyncClient(base_url=url) as c:
        with pytest.raises(NodeUnavailable, match="unreachable"):
            await LndRestSource(c).get_info()


# ------------------------------------------------------------ fake for LNbits


async def test_fake_answers_lnbits_status_calls(client: httpx.AsyncClient) -> None:
    balance = (await client.get("/v1/balance/channels")).json()
    assert balance["balance"] == "3700000"
    assert balance["local_balance"] == {"sat": "3700000", "msat": "3700000000"}
    fees = (await client.get("/v1/fees")).json()
    # like LND, only channels with a graph edge are reported
    assert {f["chan_id"] for f in fees["channel_fees"]} == {
        str(LOW.chan_id),
        str(HIGH.chan_id),
    }
    assert fees["channel_fees"][1]["inbound_fee_per_mil"] == -50
