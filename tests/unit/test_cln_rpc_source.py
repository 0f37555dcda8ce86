"""ClnRpcSource against the fake lightningd, through a real pyln-client LightningRpc."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pyln.client import LightningRpc, RpcError

from engine.node_source import (
    NodeRequestError,
    NodeSource,
    NodeUnavailable,
    NotSupported,
    PolicyUpdate,
    RoutingPolicy,
    scid_to_int,
)
from engine.sources import cln_rpc
from engine.sources.cln_rpc import ClnRpcSource
from tests.fakes.cln_server import (
    NODE_X,
    NODE_Y,
    NODE_Z,
    PEER_A,
    PEER_B,
    T0,
    US,
    FakeLightningd,
    _gossip,
    default_scenario,
)

A, B, C, E = "800000x1x0", "800100x2x1", "800200x3x0", "800300x4x0"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake() -> Iterator[FakeLightningd]:
    with FakeLightningd() as server:
        yield server


def make_source(socket_path: str, timeout: float = 5.0, **kw: float) -> ClnRpcSource:
    rpc = LightningRpc(socket_path)
    return ClnRpcSource(lambda method, params: rpc.call(method, params), timeout=timeout, **kw)


@pytest.fixture
def source(fake: FakeLightningd) -> ClnRpcSource:
    return make_source(fake.socket_path)


def calls(fake: FakeLightningd, method: str) -> list[dict]:
    return [params for name, params in fake.calls if name == method]


# -- shape ------------------------------------------------------------------------------


def test_implements_node_source(source: ClnRpcSource) -> None:
    assert isinstance(source, NodeSource)
    assert source.kind == "cln"
    caps = source.capabilities
    assert (caps.inbound_fees, caps.per_channel_cltv) == (False, False)
    assert (caps.forward_failures, caps.rebalance) == (True, True)


# -- getinfo ----------------------------------------------------------------------------


async def test_get_info(source: ClnRpcSource) -> None:
    info = await source.get_info()
    assert info.pubkey == US
    assert info.alias == "DAZFAKE"
    assert info.block_height == 800_500
    assert info.num_active_channels == 4
    assert info.num_peers == 5
    assert info.synced_to_chain is True
    assert info.version == "v25.12"
    assert info.network == "regtest"


async def test_get_info_not_synced_while_bitcoind_warns(
    fake: FakeLightningd, source: ClnRpcSource
) -> None:
    fake.scenario.warnings["warning_bitcoind_sync"] = "Bitcoind is not up-to-date"
    assert (await source.get_info()).synced_to_chain is False


# -- channels ---------------------------------------------------------------------------


async def test_lists_only_usable_channels_with_scid(source: ClnRpcSource) -> None:
    channels = await source.list_channels()
    # AWAITING_LOCKIN (no scid yet) and ONCHAIN are left out; a splice keeps forwarding
    assert sorted(ch.channel_id for ch in channels) == [A, B, C, E]


async def test_channel_fields_and_both_policies(fake: FakeLightningd, source: ClnRpcSource) -> None:
    ch = {c.channel_id: c for c in await source.list_channels()}[A]
    raw = fake.channel(A)
    assert ch.native_id == raw.channel_id and len(ch.native_id) == 64
    assert ch.channel_point == f"{raw.funding_txid}:0"
    assert (ch.peer_id, ch.peer_alias) == (PEER_A, "ALPHA")
    assert ch.capacity_sat == 5_000_000
    assert ch.local_balance_msat == 3_000_000_000
    assert ch.remote_balance_msat == 2_000_000_000
    assert ch.active is True and ch.private is False
    assert ch.local_policy == RoutingPolicy(1000, 100, 34, 1000, 4_950_000_000)
    assert ch.remote_policy == RoutingPolicy(500, 250, 40, 1, 4_950_000_000)


async def test_disconnected_peer_private_and_splicing_channels(
    source: ClnRpcSource,
) -> None:
    channels = {c.channel_id: c for c in await source.list_channels()}
    assert channels[B].active is False  # CHANNELD_NORMAL but peer_connected false
    assert channels[B].channel_point.endswith(":1")
    assert channels[C].private is True
    assert channels[C].remote_policy is None  # no channel_update from the peer yet
    assert channels[C].peer_alias == ""  # no node_announcement for a private peer
    assert channels[E].active is True


async def test_peer_aliases_are_cached_and_capped(fake: FakeLightningd) -> None:
    source = make_source(fake.socket_path, alias_lookups_per_call=2)
    first = await source.list_channels()
    assert len(calls(fake, "listnodes")) == 2
    assert sum(bool(c.peer_alias) for c in first) <= 2
    await source.list_channels()
    await source.list_channels()
    # the remaining peers are looked up once each, then everything comes from cache
    assert len(calls(fake, "listnodes")) == 4
    third = {c.channel_id: c.peer_alias for c in await source.list_channels()}
    assert len(calls(fake, "listnodes")) == 4
    assert third == {A: "ALPHA", B: "BRAVO", C: "", E: "ECHO"}


async def test_pre_v24_02_node_without_updates(fake: FakeLightningd) -> None:
    fake.scenario.legacy = True
    source = make_source(fake.socket_path)
    ch = {c.channel_id: c for c in await source.list_channels()}[A]
    # top-level fields for our side; the node-wide cltv-delta from listconfigs
    assert ch.local_policy == RoutingPolicy(1000, 100, 34, 1000, 4_950_000_000)
    assert ch.remote_policy is None
    assert calls(fake, "listconfigs") == [{"config": "cltv-delta"}]


# -- forwards ---------------------------------------------------------------------------


async def test_forward_event_fields(source: ClnRpcSource) -> None:
    page = await source.forwards_since(0, 3)
    settled, failed, local_failed = page.events
    assert settled.index == 1
    assert settled.timestamp_ns == (T0 + 60) * 10**9 + 123_000_000
    assert (settled.chan_in, settled.chan_out) == (A, B)
    assert (settled.amt_in_msat, settled.amt_out_msat, settled.fee_msat) == (
        1_000_500,
        1_000_000,
        500,
    )
    assert (settled.status, settled.fail_reason) == ("settled", None)
    assert (failed.status, failed.fee_msat, failed.amt_out_msat) == ("failed", 0, 2_000_000)
    assert failed.fail_reason == "WIRE_TEMPORARY_CHANNEL_FAILURE"
    assert local_failed.status == "local_failed"
    assert (local_failed.chan_out, local_failed.amt_out_msat) == ("", 0)
    assert local_failed.fail_reason == "WIRE_UNKNOWN_NEXT_PEER"


async def test_forward_paging_stops_before_offered(
    fake: FakeLightningd, source: ClnRpcSource
) -> None:
    page = await source.forwards_since(0, 2)
    assert [e.index for e in page.events] == [1, 2]
    assert (page.next_cursor, page.has_more) == (2, True)
    page = await source.forwards_since(page.next_cursor, 2)
    assert [e.index for e in page.events] == [3, 5]  # 4 was deleted: gaps are fine
    assert (page.next_cursor, page.has_more) == (5, True)
    page = await source.forwards_since(page.next_cursor, 2)
    assert [e.index for e in page.events] == [6]  # 7 is still offered
    assert (page.next_cursor, page.has_more) == (6, False)
    # CLN's `start` is inclusive, so each call asks for cursor + 1
    assert [p["start"] for p in calls(fake, "listforwards")] == [1, 3, 6]
    assert {p["index"] for p in calls(fake, "listforwards")} == {"created"}


async def test_offered_forward_appears_once_resolved(
    fake: FakeLightningd, source: ClnRpcSource
) -> None:
    waiting = await source.forwards_since(6, 10)
    assert waiting.events == [] and waiting.next_cursor == 6
    assert waiting.has_more is False
    fake.resolve_forward(7, "settled")
    page = await source.forwards_since(waiting.next_cursor, 10)
    assert [e.index for e in page.events] == [7, 8, 9]
    assert page.events[0].fee_msat == 70 and page.events[0].status == "settled"
    assert (page.next_cursor, page.has_more) == (9, False)


async def test_paging_visits_every_forward_once(fake: FakeLightningd, source: ClnRpcSource) -> None:
    fake.resolve_forward(7, "failed", failreason="WIRE_TEMPORARY_CHANNEL_FAILURE")
    for i in range(20):
        fake.add_forward("settled", A, B, in_msat=10_000 + i, out_msat=10_000)
    expected = [r["created_index"] for r in fake.scenario.forwards]
    seen: list[int] = []
    cursor, has_more = 0, True
    while has_more:
        page = await source.forwards_since(cursor, 3)
        seen += [e.index for e in page.events]
        cursor, has_more = page.next_cursor, page.has_more
    assert seen == sorted(set(expected))
    assert (await source.forwards_since(cursor, 3)).events == []


async def test_forwards_after_the_end(source: ClnRpcSource) -> None:
    page = await source.forwards_since(1000, 5)
    assert (page.events, page.next_cursor, page.has_more) == ([], 1000, False)


# -- policies ---------------------------------------------------------------------------


async def test_get_policy_accepts_scid_and_lnd_chan_id(source: ClnRpcSource) -> None:
    expected = RoutingPolicy(0, 500, 34, 0, 1_980_000_000)
    assert await source.get_policy(B) == expected
    assert await source.get_policy(str(scid_to_int(B))) == expected


async def test_set_policy_keeps_omitted_values(fake: FakeLightningd, source: ClnRpcSource) -> None:
    policy = await source.set_policy(A, PolicyUpdate(fee_rate_ppm=777))
    assert calls(fake, "setchannel") == [{"id": A, "feeppm": 777}]
    assert policy == RoutingPolicy(1000, 777, 34, 1000, 4_950_000_000)
    assert fake.channel(A).fee_ppm == 777
    assert await source.get_policy(A) == policy


async def test_set_policy_returns_what_cln_applied(
    fake: FakeLightningd, source: ClnRpcSource
) -> None:
    update = PolicyUpdate(base_fee_msat=0, htlc_min_msat=0, htlc_max_msat=10**12)
    policy = await source.set_policy(A, update)
    assert calls(fake, "setchannel") == [{"id": A, "feebase": 0, "htlcmin": 0, "htlcmax": 10**12}]
    # CLN clamps htlcmin to the peer's minimum and htlcmax to what can be sent
    assert policy == RoutingPolicy(0, 100, 34, 1, 4_950_000_000)


@pytest.mark.parametrize(
    "update",
    [
        PolicyUpdate(fee_rate_ppm=10, cltv_delta=80),
        PolicyUpdate(inbound_base_fee_msat=-100),
        PolicyUpdate(inbound_fee_rate_ppm=-50),
    ],
)
async def test_cltv_and_inbound_fees_not_supported(
    fake: FakeLightningd, source: ClnRpcSource, update: PolicyUpdate
) -> None:
    with pytest.raises(NotSupported):
        await source.set_policy(A, update)
    assert calls(fake, "setchannel") == []
    assert fake.channel(A).fee_ppm == 100


async def test_set_policy_unknown_channel(source: ClnRpcSource) -> None:
    with pytest.raises(NodeRequestError, match="Short channel id not found"):
        await source.set_policy("123x4x5", PolicyUpdate(fee_rate_ppm=1))
    with pytest.raises(NodeRequestError, match="unknown channel"):
        await source.get_policy("123x4x5")


async def test_set_policy_never_targets_a_peer_or_all(
    fake: FakeLightningd, source: ClnRpcSource
) -> None:
    for bad in (PEER_A, "all"):
        with pytest.raises(NodeRequestError):
            await source.set_policy(bad, PolicyUpdate(fee_rate_ppm=1))
    assert calls(fake, "setchannel") == []


# -- graph ------------------------------------------------------------------------------


async def test_describe_graph_merges_directions(source: ClnRpcSource) -> None:
    graph = await source.describe_graph()
    edges = {e.channel_id: e for e in graph.edges}
    assert set(edges) == {A, B, E, "750000x1x0", "750100x7x2", "760000x3x1"}  # no private C

    ours_a = edges[A]  # PEER_A (02aa..) sorts before us (0366..)
    assert (ours_a.node1, ours_a.node2, ours_a.capacity_sat) == (PEER_A, US, 5_000_000)
    assert ours_a.node1_policy == RoutingPolicy(500, 250, 40, 1, 4_950_000_000)
    assert ours_a.node2_policy == RoutingPolicy(1000, 100, 34, 1000, 4_950_000_000)
    assert (edges[B].node1, edges[B].node2) == (US, PEER_B)

    xy = edges["750000x1x0"]
    assert (xy.node1, xy.node2) == (NODE_X, NODE_Y)
    assert (xy.node1_policy.fee_rate_ppm, xy.node2_policy.fee_rate_ppm) == (10, 20)
    assert xy.last_update == T0 + 9

    one_way = edges["750100x7x2"]  # only Y -> Z is known; Z sorts first
    assert (one_way.node1, one_way.node2) == (NODE_Z, NODE_Y)
    assert one_way.node1_policy is None and one_way.node2_policy.fee_rate_ppm == 300

    xa = edges["760000x3x1"]
    assert (xa.node1, xa.node2) == (NODE_X, PEER_A)
    assert xa.node1_policy.disabled is False and xa.node2_policy.disabled is True


async def test_describe_graph_nodes(source: ClnRpcSource) -> None:
    graph = await source.describe_graph()
    nodes = {n.pubkey: n for n in graph.nodes}
    assert nodes[NODE_X].alias == "XRAY" and nodes[NODE_X].last_update == T0
    assert nodes[NODE_Y].alias == "" and nodes[NODE_Y].last_update == 0
    endpoints = {p for e in graph.edges for p in (e.node1, e.node2)}
    assert endpoints <= set(nodes)


# -- rebalance --------------------------------------------------------------------------

AB = "790000x5x0"  # a public channel between the two peers, in the fake's graph only


def link_peers(fake: FakeLightningd) -> None:
    """Let the route finders find A -> B; A charges 200 msat + 300 ppm, CLTV delta 40."""
    fake.scenario.gossip.append(
        _gossip(PEER_A, PEER_B, AB, 1_000_000_000, base=200, ppm=300, delay=40)
    )


def fake_with(**changes: object) -> FakeLightningd:
    scenario = default_scenario()
    for name, value in changes.items():
        setattr(scenario, name, value)
    return FakeLightningd(scenario=scenario)


def check_askrene_calls(fake: FakeLightningd, maxfee_msat: int) -> None:
    """A throwaway layer with our node disabled, one getroutes, the layer removed."""
    (created,) = calls(fake, "askrene-create-layer")
    layer = created["layer"]
    assert layer.startswith("daznode-rebalance-") and "persistent" not in created
    assert calls(fake, "askrene-disable-node") == [{"layer": layer, "node": US}]
    # B charges 1000 + 1 ppm on the last hop (updates.remote): B must receive 100_001_100
    assert calls(fake, "getroutes") == [
        {
            "source": PEER_A,
            "destination": PEER_B,
            "amount_msat": 100_001_100,
            "layers": [layer],
            "maxfee_msat": maxfee_msat,
            "final_cltv": 18 + 144,  # our invoice's, plus B's delta on the last hop
            "maxparts": 1,
        }
    ]
    assert calls(fake, "askrene-remove-layer") == [{"layer": layer}]
    assert fake.node.layers == {}


@pytest.mark.parametrize("version", ["v25.12", "v26.06", "v27.06"])
async def test_rebalance_pays_itself_in_a_circle(version: str) -> None:
    """getroutes' path fields changed in v26.06 (node_id_out...) and v27.06 (next_node_id
    gone); getroute itself is gone in v27.03."""
    with fake_with(version=version) as fake:
        link_peers(fake)
        result = await make_source(fake.socket_path).rebalance(A, B, 100_000_000, 50_000)
        check_paid_circle(fake, result)
        check_askrene_calls(fake, maxfee_msat=50_000 - 1_100)
        assert calls(fake, "getroute") == []


def check_paid_circle(fake: FakeLightningd, result: object) -> None:
    (sent,) = calls(fake, "sendpay")
    route = sent["route"]
    assert [(h["id"], h["channel"]) for h in route] == [(PEER_A, A), (PEER_B, AB), (US, B)]
    amounts = [h["amount_msat"] for h in route]
    delays = [h["delay"] for h in route]
    assert amounts == [100_031_300, 100_001_100, 100_000_000]
    assert amounts == sorted(amounts, reverse=True) and amounts[-1] == 100_000_000
    assert delays == [18 + 144 + 40, 18 + 144, 18]
    assert [h["direction"] for h in route] == [1, 0, 1]  # A < US < B
    assert {h["style"] for h in route} == {"tlv"}
    assert sent["amount_msat"] == 100_000_000

    (invoice,) = calls(fake, "invoice")
    assert invoice["label"].startswith("daznode-rebalance-")
    assert invoice["amount_msat"] == 100_000_000
    assert sent["payment_hash"] == fake.scenario.invoices[invoice["label"]]["payment_hash"]
    assert fake.scenario.invoices[invoice["label"]]["status"] == "paid"
    assert calls(fake, "waitsendpay") == [{"payment_hash": sent["payment_hash"], "timeout": 60}]

    assert result.ok is True  # type: ignore[attr-defined]
    assert (result.out_channel, result.in_channel) == (A, B)  # type: ignore[attr-defined]
    assert (result.amount_msat, result.fee_msat) == (100_000_000, 31_300)  # type: ignore[attr-defined]
    assert result.detail == sent["payment_hash"]  # type: ignore[attr-defined]
    assert fake.channel(A).to_us_msat == 3_000_000_000 - 100_031_300
    assert fake.channel(B).to_us_msat == 500_000_000 + 100_000_000
    assert calls(fake, "delinvoice") == []


@pytest.mark.parametrize(
    ("changes", "layers_created"),
    [
        ({"askrene": False}, 0),  # askrene disabled, or older than v24.08
        ({"version": "v25.05"}, 1),  # askrene without maxparts (before v25.09)
    ],
    ids=["no-askrene", "no-maxparts"],
)
async def test_rebalance_falls_back_to_getroute(changes: dict, layers_created: int) -> None:
    with fake_with(**changes) as fake:
        link_peers(fake)
        result = await make_source(fake.socket_path).rebalance(A, B, 100_000_000, 50_000)
        check_paid_circle(fake, result)
        assert calls(fake, "getroute") == [
            {
                "id": PEER_B,
                "amount_msat": 100_001_100,
                "riskfactor": 10,
                "fromid": PEER_A,
                "exclude": [US],
            }
        ]
        assert len(calls(fake, "askrene-create-layer")) == 1  # tried, maybe unknown
        assert len(calls(fake, "askrene-remove-layer")) == layers_created
        assert fake.node.layers == {}


async def test_rebalance_too_expensive_pays_nothing(
    fake: FakeLightningd, source: ClnRpcSource
) -> None:
    link_peers(fake)
    result = await source.rebalance(A, B, 100_000_000, 31_299)  # costs 31_300
    assert result.ok is False and result.fee_msat == 0
    assert "excessive cost" in result.detail and "206" in result.detail
    check_askrene_calls(fake, maxfee_msat=31_299 - 1_100)
    # the last hop alone is over the limit: no route is even looked for
    result = await source.rebalance(A, B, 100_000_000, 1_099)
    assert result.ok is False and "last hop alone costs 1100 msat" in result.detail
    assert len(calls(fake, "getroutes")) == 1
    assert calls(fake, "sendpay") == [] and calls(fake, "invoice") == []
    assert fake.channel(A).to_us_msat == 3_000_000_000


async def test_rebalance_too_expensive_with_getroute() -> None:
    with fake_with(askrene=False) as fake:
        link_peers(fake)
        result = await make_source(fake.socket_path).rebalance(A, B, 100_000_000, 31_299)
        assert result.ok is False and result.fee_msat == 0
        assert "too expensive" in result.detail and "31300" in result.detail
        assert calls(fake, "sendpay") == [] and calls(fake, "invoice") == []


async def test_rebalance_without_route(fake: FakeLightningd, source: ClnRpcSource) -> None:
    """Without A -> B the only way is A -> us -> B, which the layer rules out."""
    result = await source.rebalance(A, B, 100_000_000, 1_000_000)
    assert result.ok is False and result.fee_msat == 0
    assert "could not find a usable set of paths" in result.detail and "205" in result.detail
    assert calls(fake, "sendpay") == [] and fake.scenario.invoices == {}
    assert fake.node.layers == {}


async def test_rebalance_without_route_with_getroute() -> None:
    with fake_with(askrene=False) as fake:
        result = await make_source(fake.socket_path).rebalance(A, B, 100_000_000, 1_000_000)
        assert result.ok is False and result.fee_msat == 0
        assert "Could not find a route" in result.detail and "205" in result.detail


async def test_rebalance_malformed_getroutes_is_unexpected(
    fake: FakeLightningd, source: ClnRpcSource
) -> None:
    link_peers(fake)
    fake.inject("getroutes", malformed="shape")
    with pytest.raises(
        NodeRequestError, match="unexpected response from Core Lightning: getroutes"
    ):
        await source.rebalance(A, B, 100_000_000, 50_000)
    assert fake.node.layers == {}  # removed all the same
    assert calls(fake, "getroute") == [] and calls(fake, "invoice") == []


def _hop(scid_dir: str, far: str, near: str | None = None) -> dict:
    hop = {"short_channel_id_dir": scid_dir, "next_node_id": far}
    if near is not None:
        hop["node_id_in"] = near
    return hop


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ([_hop(f"{AB}/1", PEER_B)], "direction 1"),  # A < B: A -> B is direction 0
        ([_hop("1x1x1/1", US), _hop("1x1x2/0", PEER_B)], "our own node"),
        ([_hop(f"{AB}/1", NODE_X)], "ends at"),  # X < A
        ([_hop(f"{AB}/0", PEER_B, near=NODE_X)], "starts at"),
        ([_hop(AB, PEER_B)], "short_channel_id_dir"),
        ([], "empty route"),
    ],
)
def test_getroutes_paths_are_checked(path: list[dict], message: str) -> None:
    leg = cln_rpc._Leg(PEER_A, PEER_B, US, 1_000)
    good = {"routes": [{"path": [_hop(f"{AB}/0", PEER_B, near=PEER_A)]}]}
    assert cln_rpc._getroutes_hops(good, leg) == [(PEER_A, AB, PEER_B)]
    with pytest.raises(cln_rpc._MalformedError, match=message):
        cln_rpc._getroutes_hops({"routes": [{"path": path}]}, leg)
    with pytest.raises(cln_rpc._MalformedError, match="expected one route"):
        cln_rpc._getroutes_hops({"routes": good["routes"] * 2}, leg)


async def test_rebalance_payment_failure_deletes_invoice(
    fake: FakeLightningd, source: ClnRpcSource
) -> None:
    link_peers(fake)
    message = "failed: WIRE_TEMPORARY_CHANNEL_FAILURE (reply from remote)"
    fake.scenario.pay_failure = {"code": 204, "message": message}
    result = await source.rebalance(A, B, 100_000_000, 50_000)
    assert result.ok is False and result.fee_msat == 0
    assert message in result.detail and "204" in result.detail
    (invoice,) = calls(fake, "invoice")
    assert calls(fake, "delinvoice") == [{"label": invoice["label"], "status": "unpaid"}]
    assert fake.scenario.invoices == {}
    assert fake.channel(A).to_us_msat == 3_000_000_000
    assert fake.channel(B).to_us_msat == 500_000_000


@pytest.mark.parametrize(
    ("out_channel", "in_channel", "message"),
    [
        ("123x4x5", B, "unknown channel"),
        (A, "123x4x5", "unknown channel"),
        (A, A, "two different channels"),
        ("700000x9x1", B, "ONCHAIN"),  # closed
        (PEER_A, B, "short channel id"),
    ],
)
async def test_rebalance_refuses_bad_channels(
    fake: FakeLightningd,
    source: ClnRpcSource,
    out_channel: str,
    in_channel: str,
    message: str,
) -> None:
    link_peers(fake)
    with pytest.raises(NodeRequestError, match=message):
        await source.rebalance(out_channel, in_channel, 100_000_000, 50_000)
    assert calls(fake, "invoice") == [] and calls(fake, "sendpay") == []


# -- close ------------------------------------------------------------------------------


def mutual_txid(fake: FakeLightningd, scid: str) -> str:
    channel_id = fake.channel(scid).channel_id
    return hashlib.sha256(f"fake-cln-mutual-close:{channel_id}".encode()).hexdigest()


@pytest.mark.parametrize("version", ["v24.08", "v25.09", "v25.12"])
async def test_close_channel_mutually(version: str) -> None:
    """`txid` until v25.12, `txids` from v24.11: the same transaction either way."""
    with fake_with(version=version) as fake:
        source = make_source(fake.socket_path)
        result = await source.close_channel(str(scid_to_int(A)))  # LND-style ids too
        assert calls(fake, "close") == [{"id": A, "unilateraltimeout": 0}]
        assert result.channel_id == A
        assert result.closing_txid == mutual_txid(fake, A)
        assert "mutual" in result.detail and result.closing_txid in result.detail
        assert fake.channel(A).state == "CLOSINGD_COMPLETE"
        assert A not in {ch.channel_id for ch in await source.list_channels()}


async def test_close_waits_boundedly_then_reports_negotiation(fake: FakeLightningd) -> None:
    """A peer slow to agree: the answer stops being awaited, the node finishes alone."""
    fake.channel(A).close_negotiation_s = 1.0
    source = make_source(fake.socket_path, close_wait=0.2)
    result = await source.close_channel(A)
    assert result.channel_id == A and result.closing_txid is None
    assert result.detail == "negotiation under way; the node completes it when the peer answers"
    assert fake.channel(A).state == "CLOSINGD_SIGEXCHANGE"
    assert A not in {ch.channel_id for ch in await source.list_channels()}
    with pytest.raises(NodeRequestError, match="already closing"):
        await source.close_channel(A)
    for _ in range(100):  # lightningd completes the close on its own
        if fake.channel(A).state == "CLOSINGD_COMPLETE":
            break
        await asyncio.sleep(0.05)
    assert fake.channel(A).state == "CLOSINGD_COMPLETE"
    assert calls(fake, "close") == [{"id": A, "unilateraltimeout": 0}]


async def test_close_refuses_an_offline_peer_up_front(
    fake: FakeLightningd, source: ClnRpcSource
) -> None:
    with pytest.raises(NodeRequestError, match=r"offline.*never force closes"):
        await source.close_channel(B)  # peer_connected false
    assert calls(fake, "close") == []
    assert fake.channel(B).state == "CHANNELD_NORMAL"


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ("123x4x5", "unknown channel 123x4x5"),
        ("700000x9x1", "state ONCHAIN"),
        (PEER_A, "short channel id"),  # a peer id would let lightningd pick the channel
    ],
)
async def test_close_refuses_bad_channels(
    fake: FakeLightningd, source: ClnRpcSource, channel: str, message: str
) -> None:
    with pytest.raises(NodeRequestError, match=message):
        await source.close_channel(channel)
    assert calls(fake, "close") == []


async def test_close_rpc_error_keeps_cln_message(
    fake: FakeLightningd, source: ClnRpcSource
) -> None:
    message = "Peer leased this channel from us, we shouldn't close until lease has expired"
    fake.inject("close", error={"code": -1, "message": message})
    with pytest.raises(NodeRequestError, match="Peer leased this channel") as caught:
        await source.close_channel(A)
    assert not isinstance(caught.value, NodeUnavailable)


async def test_close_transport_failures(fake: FakeLightningd, source: ClnRpcSource) -> None:
    fake.inject("close", drop=True, times=1)
    with pytest.raises(NodeUnavailable):
        await source.close_channel(A)
    fake.inject("close", malformed="shape", times=1)
    with pytest.raises(NodeRequestError, match="unexpected response from Core Lightning: close"):
        await source.close_channel(A)


async def test_close_call_failing_in_time_is_not_pending(fake: FakeLightningd) -> None:
    """Only the wait running out means "under way"; the call's own errors still count."""
    rpc = LightningRpc(fake.socket_path)

    def call(method: str, params: dict) -> dict:
        if method == "close":
            raise TimeoutError("timed out")  # e.g. a socket timeout inside the client
        return rpc.call(method, params)

    with pytest.raises(NodeUnavailable):
        await ClnRpcSource(call, close_wait=5).close_channel(A)


@pytest.mark.parametrize(
    ("answer", "txid", "words"),
    [
        ({"type": "mutual", "txids": ["ab" * 32], "txs": ["02"]}, "ab" * 32, "mutual"),
        ({"type": "mutual", "txid": "cd" * 32, "tx": "02"}, "cd" * 32, "mutual"),  # < v24.11
        ({"type": "unilateral", "txids": ["INVALID_TXID", "ef" * 32]}, "ef" * 32, "unilateral"),
        ({"type": "unilateral", "txids": [], "txs": []}, None, "unilateral"),
        ({"type": "unopened"}, None, "not open yet"),
    ],
)
def test_close_answers_are_mapped(answer: dict, txid: str | None, words: str) -> None:
    result = cln_rpc._close_result(A, answer)
    assert (result.channel_id, result.closing_txid) == (A, txid)
    assert words in result.detail
    with pytest.raises(cln_rpc._MalformedError):
        cln_rpc._close_result(A, {"type": "sideways"})


def test_fake_close_with_offline_peer_shuts_down_and_waits(fake: FakeLightningd) -> None:
    """Why the adapter refuses offline peers: lightningd accepts the close, stops the
    channel at once and waits; a non-zero unilateraltimeout would then force close."""
    rpc = LightningRpc(fake.socket_path)
    answers: list[dict] = []
    waiting = threading.Thread(target=lambda: answers.append(rpc.close(B, unilateraltimeout=0)))
    waiting.start()
    for _ in range(100):
        if fake.channel(B).state == "CHANNELD_SHUTTING_DOWN":
            break
        time.sleep(0.02)
    assert fake.channel(B).state == "CHANNELD_SHUTTING_DOWN" and answers == []
    fake.channel(B).peer_connected = True  # the peer comes back: mutual close
    waiting.join(timeout=5)
    assert answers[0]["type"] == "mutual"
    assert answers[0]["txids"] == [mutual_txid(fake, B)]

    fake.channel(E).peer_connected = False
    forced = rpc.close(E, unilateraltimeout=1)
    assert forced["type"] == "unilateral"
    assert fake.channel(E).state == "AWAITING_UNILATERAL"
    with pytest.raises(RpcError, match="Short channel id not found"):
        rpc.close("1x2x3")


# -- errors -----------------------------------------------------------------------------


async def test_rpc_error_keeps_cln_message(fake: FakeLightningd, source: ClnRpcSource) -> None:
    fake.inject("getinfo", error={"code": -1, "message": "lightningd is grumpy"}, times=1)
    with pytest.raises(NodeRequestError, match="lightningd is grumpy") as caught:
        await source.get_info()
    assert caught.value.transient is False
    assert (await source.get_info()).pubkey == US  # the fault was one-shot


async def test_timeout_is_unavailable(fake: FakeLightningd) -> None:
    source = make_source(fake.socket_path, timeout=0.2)
    fake.inject("listpeerchannels", delay=2.0)
    with pytest.raises(NodeUnavailable, match="did not answer") as caught:
        await source.list_channels()
    assert caught.value.transient is True


async def test_missing_socket_is_unavailable() -> None:
    path = os.path.join(tempfile.gettempdir(), "no-such-dir-cln", "lightning-rpc")
    with pytest.raises(NodeUnavailable):
        await make_source(path).get_info()


async def test_stopped_node_is_unavailable(fake: FakeLightningd, source: ClnRpcSource) -> None:
    fake.stop()
    with pytest.raises(NodeUnavailable):
        await source.forwards_since(0, 10)


async def test_dropped_connection_is_unavailable(
    fake: FakeLightningd, source: ClnRpcSource
) -> None:
    fake.inject("getinfo", drop=True)
    with pytest.raises(NodeUnavailable):
        await source.get_info()


@pytest.mark.parametrize("kind", ["garbage", "shape"])
async def test_malformed_response(fake: FakeLightningd, source: ClnRpcSource, kind: str) -> None:
    fake.inject("*", malformed=kind)
    for call in (source.get_info(), source.list_channels(), source.forwards_since(0, 5)):
        with pytest.raises(NodeRequestError, match="unexpected response from Core Lightning"):
            await call


async def test_error_mapping_by_duck_typing() -> None:
    class LooksLikeRpcError(ValueError):
        def __init__(self, error: object) -> None:
            super().__init__("RPC call failed")
            self.error = error

    def raiser(exc: Exception) -> Callable[[str, dict], dict]:
        def call(method: str, params: dict) -> dict:
            raise exc

        return call

    with pytest.raises(NodeRequestError, match="no route"):
        await ClnRpcSource(
            raiser(LooksLikeRpcError({"code": 205, "message": "no route"}))
        ).get_info()
    with pytest.raises(NodeUnavailable):
        await ClnRpcSource(raiser(ConnectionRefusedError(111, "refused"))).get_info()
    with pytest.raises(NodeRequestError, match="unexpected response"):
        await ClnRpcSource(raiser(ValueError('Malformed response, "result" missing.'))).get_info()


# -- the fake as LNbits' CoreLightningWallet sees it --------------------------------------


def test_fake_answers_what_lnbits_wallet_calls(fake: FakeLightningd) -> None:
    rpc = LightningRpc(fake.socket_path)
    assert "deschashonly" in rpc.help("invoice")["help"][0]["command"]
    assert rpc.listinvoices() == {"invoices": []}
    funds = rpc.listfunds()
    assert sum(int(ch["our_amount_msat"]) for ch in funds["channels"]) > 0
    assert rpc.listpays(payment_hash="00" * 32) == {"pays": []}
    with pytest.raises(RpcError) as caught:
        rpc.waitanyinvoice(0, timeout=0.1)
    assert caught.value.error["code"] == 904
    with rpc.reply_filter({"channels": [{"short_channel_id": True}]}):
        filtered = rpc.listpeerchannels()
    assert filtered["channels"][0] == {"short_channel_id": A}


def test_fake_runs_as_a_script() -> None:
    sock_dir = tempfile.mkdtemp(prefix="fakecln-script-")
    path = os.path.join(sock_dir, "lightning-rpc")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "fakes" / "cln_server.py"), "--socket", path],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "listening" in proc.stdout.readline()
        assert LightningRpc(path).getinfo()["id"] == US
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0
    assert not os.path.exists(path)
    os.rmdir(sock_dir)
