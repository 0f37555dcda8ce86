"""Core Lightning adapter: `NodeSource` over lightningd's JSON-RPC.

The adapter receives a plain synchronous caller `call(method, params) -> result` (in
production LNbits' `CoreLightningWallet.ln.call`, a pyln-client `LightningRpc`), so this
module imports neither LNbits nor pyln. Field names follow Core Lightning's JSON schemas
(doc/schemas/*.json in ElementsProject/lightning); msat amounts are plain integers there
since v23.x, but "123msat" strings from older nodes are accepted too.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from ..node_source import (
    Capabilities,
    Channel,
    CloseResult,
    ForwardEvent,
    ForwardPage,
    GraphEdge,
    GraphNode,
    NetworkGraph,
    NodeInfo,
    NodeRequestError,
    NodeUnavailable,
    NotSupported,
    PolicyUpdate,
    RebalanceResult,
    RoutingPolicy,
    normalize_channel_id,
)

RpcCall = Callable[[str, dict], dict]
T = TypeVar("T")

# CLN can add HTLCs in both states (lightningd/channel.h channel_state_can_add_htlc):
# a channel being spliced keeps forwarding on its current funding output.
USABLE_STATES = frozenset({"CHANNELD_NORMAL", "CHANNELD_AWAITING_SPLICE"})
RESOLVED_FORWARD_STATUSES = frozenset({"settled", "failed", "local_failed"})
SYNC_WARNINGS = ("warning_bitcoind_sync", "warning_lightningd_sync")
# Rebalancing: the min_final_cltv_expiry of our own invoice and so the last hop's delay
# (CLN's default cltv-final is 18); getroute's riskfactor; how long waitsendpay waits.
FINAL_CLTV = 18
ROUTE_RISKFACTOR = 10
WAITSENDPAY_TIMEOUT_S = 60
INVOICE_EXPIRY_S = 600
# JSON-RPC 2.0 codes lightningd uses for an unknown command and for bad parameters.
JSONRPC2_METHOD_NOT_FOUND = -32601
JSONRPC2_INVALID_PARAMS = -32602
# How long close_channel waits for lightningd to answer `close` (it answers once the
# closing transaction is broadcast); after that the negotiation goes on without us.
CLOSE_WAIT_S = 60.0


class _MalformedError(Exception):
    """Raised by parsers when a response lacks what the schema promises."""


class _RpcRefusedError(NodeRequestError):
    """lightningd answered with a JSON-RPC error; `code` tells unknown commands apart."""

    def __init__(self, message: str, code: Any) -> None:
        super().__init__(message)
        self.code = code


def msat(value: Any) -> int:
    """An msat amount as CLN sends it: an integer (current) or "123msat" (before v23)."""
    if isinstance(value, bool):
        raise _MalformedError(f"expected an msat amount, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("msat") and value[:-4].isdigit():
        return int(value[:-4])
    if hasattr(value, "millisatoshis"):  # pyln Millisatoshi from old client versions
        return int(value.millisatoshis)
    raise _MalformedError(f"expected an msat amount, got {value!r}")


def seconds_to_ns(value: Any) -> int:
    """CLN timestamps are float seconds; go through the decimal text so
    1738000000.123 becomes ...123000000 ns exactly instead of a float artefact."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _MalformedError(f"expected a timestamp, got {value!r}")
    return int(Decimal(str(value)) * 1_000_000_000)


def policy_from_update(update: dict, *, disabled: bool = False) -> RoutingPolicy:
    """`updates.local` / `updates.remote` of listpeerchannels (BOLT #7 names)."""
    return RoutingPolicy(
        base_fee_msat=msat(update["fee_base_msat"]),
        fee_rate_ppm=int(update["fee_proportional_millionths"]),
        cltv_delta=int(update["cltv_expiry_delta"]),
        htlc_min_msat=msat(update["htlc_minimum_msat"]),
        htlc_max_msat=msat(update["htlc_maximum_msat"]),
        disabled=disabled,
    )


def legacy_local_policy(raw: dict, cltv_delta: int) -> RoutingPolicy:
    """Before v24.02 there is no `updates`: our side lives in top-level fields and the
    CLTV delta is the node-wide `cltv-delta` option."""
    return RoutingPolicy(
        base_fee_msat=msat(raw["fee_base_msat"]),
        fee_rate_ppm=int(raw["fee_proportional_millionths"]),
        cltv_delta=cltv_delta,
        htlc_min_msat=msat(raw["minimum_htlc_out_msat"]),
        htlc_max_msat=msat(raw["maximum_htlc_out_msat"]),
    )


def policy_from_gossip(direction: dict) -> RoutingPolicy:
    """One listchannels entry: what `source` charges to forward towards `destination`."""
    capacity_msat = msat(direction["amount_msat"])
    htlc_max = direction.get("htlc_maximum_msat")
    return RoutingPolicy(
        base_fee_msat=int(direction["base_fee_millisatoshi"]),
        fee_rate_ppm=int(direction["fee_per_millionth"]),
        cltv_delta=int(direction["delay"]),
        htlc_min_msat=msat(direction["htlc_minimum_msat"]),
        # htlc_maximum_msat is optional in the schema; capacity is the effective cap
        htlc_max_msat=capacity_msat if htlc_max is None else msat(htlc_max),
        disabled=not direction["active"],
    )


def listed_cltv_delta(result: dict) -> int:
    """`listconfigs config=cltv-delta`: v23.08+ nests it under `configs`."""
    configs = result.get("configs")
    if isinstance(configs, dict):
        return int(configs["cltv-delta"]["value_int"])
    return int(result["cltv-delta"])


def forward_event(raw: dict) -> ForwardEvent:
    status = raw["status"]
    settled = status == "settled"
    return ForwardEvent(
        index=int(raw["created_index"]),
        timestamp_ns=seconds_to_ns(raw["received_time"]),
        chan_in=raw["in_channel"],
        # out_channel is absent when CLN failed before it could pick a channel
        chan_out=raw.get("out_channel") or "",
        amt_in_msat=msat(raw["in_msat"]),
        amt_out_msat=msat(raw.get("out_msat", 0)),
        # CLN reports the fee a failed forward would have earned; only settled ones earn
        fee_msat=msat(raw.get("fee_msat", 0)) if settled else 0,
        status=status,
        fail_reason=None if settled else raw.get("failreason"),
    )


def forward_page(raw_forwards: list[dict], cursor: int, limit: int) -> ForwardPage:
    """Keep the resolved prefix: the cursor must never pass a forward still in flight,
    or its outcome would be skipped forever."""
    events: list[ForwardEvent] = []
    withheld = False
    for raw in raw_forwards:
        if raw["status"] not in RESOLVED_FORWARD_STATUSES:
            withheld = True
            break
        events.append(forward_event(raw))
    next_cursor = events[-1].index if events else cursor
    has_more = len(raw_forwards) >= limit and not withheld
    return ForwardPage(events=events, next_cursor=next_cursor, has_more=has_more)


def merge_graph_edges(directions: Iterable[dict]) -> list[GraphEdge]:
    """listchannels has one entry per direction; BOLT #7 orders the pair so node_1 is
    the lexicographically smaller pubkey (equal-length lowercase hex compares alike)."""
    by_scid: dict[str, list[dict]] = {}
    for direction in directions:
        by_scid.setdefault(direction["short_channel_id"], []).append(direction)
    return [_edge(scid, halves) for scid, halves in by_scid.items()]


def _edge(scid: str, halves: list[dict]) -> GraphEdge:
    first = halves[0]
    node1, node2 = sorted((first["source"], first["destination"]))
    policies = {half["source"]: policy_from_gossip(half) for half in halves}
    return GraphEdge(
        channel_id=scid,
        node1=node1,
        node2=node2,
        capacity_sat=msat(first["amount_msat"]) // 1000,
        node1_policy=policies.get(node1),
        node2_policy=policies.get(node2),
        last_update=max(int(half.get("last_update", 0)) for half in halves),
    )


def graph_nodes(raw_nodes: list[dict], edges: list[GraphEdge]) -> list[GraphNode]:
    """listnodes, plus edge endpoints it does not know so every edge resolves."""
    nodes = {
        raw["nodeid"]: GraphNode(
            pubkey=raw["nodeid"],
            alias=raw.get("alias") or "",
            last_update=int(raw.get("last_timestamp", 0)),
        )
        for raw in raw_nodes
    }
    for edge in edges:
        for pubkey in (edge.node1, edge.node2):
            nodes.setdefault(pubkey, GraphNode(pubkey=pubkey))
    return list(nodes.values())


@dataclass
class _AliasCache:
    """Peer aliases cost one listnodes(id) call each, so remember them for a while and
    look up only a bounded number of unknown peers per list_channels."""

    ttl_s: float
    entries: dict[str, tuple[float, str]]

    def get(self, peer_id: str) -> str | None:
        entry = self.entries.get(peer_id)
        if entry is None or time.monotonic() - entry[0] > self.ttl_s:
            return None
        return entry[1]

    def put(self, peer_id: str, alias: str) -> None:
        self.entries[peer_id] = (time.monotonic(), alias)


class ClnRpcSource:
    """NodeSource for Core Lightning through a synchronous JSON-RPC caller."""

    kind = "cln"
    # CLN has one node-wide cltv-delta and no inbound fees; listforwards reports
    # failed and local_failed forwards as well as settled ones.
    capabilities = Capabilities(
        inbound_fees=False, per_channel_cltv=False, forward_failures=True, rebalance=True
    )

    def __init__(
        self,
        call: RpcCall,
        *,
        timeout: float = 30.0,
        graph_timeout: float = 120.0,
        alias_lookups_per_call: int = 32,
        alias_ttl_s: float = 3600.0,
        close_wait: float = CLOSE_WAIT_S,
    ) -> None:
        self._call = call
        self._timeout = timeout
        self._close_wait = close_wait
        # the whole gossip view of mainnet is tens of MB of JSON: give it longer
        self._graph_timeout = max(timeout, graph_timeout)
        self._alias_lookups_per_call = alias_lookups_per_call
        self._aliases = _AliasCache(ttl_s=alias_ttl_s, entries={})
        self._cltv_delta: int | None = None  # node-wide, only needed before v24.02

    # -- transport -------------------------------------------------------------------

    async def _rpc(
        self, method: str, params: dict | None = None, timeout: float | None = None
    ) -> dict:
        """One call off the event loop; every failure becomes a NodeSourceError.
        On timeout the worker thread is abandoned (a blocking socket read cannot be
        cancelled); it ends when lightningd answers or closes the socket."""
        payload = dict(params or {})
        limit = self._timeout if timeout is None else timeout
        try:
            result = await asyncio.wait_for(
                asyncio.to_thread(self._call, method, payload), timeout=limit
            )
        except Exception as exc:
            raise _translate_error(method, exc, limit) from exc
        if not isinstance(result, dict):
            raise _unexpected(method, f"result is {type(result).__name__}, not an object")
        return result

    async def _rpc_detached(self, method: str, params: dict, wait: float) -> dict | None:
        """A call that may block for a long time (`close` waits for the peer): run in a
        daemon thread of its own, not in asyncio's default executor, and return None when
        no answer came within `wait`.

        The thread is then left to finish on its own: pyln opens one socket per call, so it
        blocks on that socket alone until lightningd answers, and lightningd keeps a command
        running when its caller goes away (jsonrpc.c detaches commands from a closed
        connection). A pooled worker would instead be held for as long as the peer takes,
        and would make interpreter exit wait for it (concurrent.futures joins its workers);
        a daemon thread does neither."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()

        def settle(result: Any, error: BaseException | None) -> None:
            if answer.done():  # we stopped waiting
                return
            if error is not None:
                answer.set_exception(error)
            else:
                answer.set_result(result)

        def work() -> None:
            result, error = None, None
            try:
                result = self._call(method, params)
            except BaseException as exc:  # handed to the waiting coroutine
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(settle, result, error)

        threading.Thread(target=work, name=f"cln-{method}", daemon=True).start()
        try:
            result = await asyncio.wait_for(answer, timeout=wait)
        except Exception as exc:
            if answer.cancelled():  # wait_for gave up on it: no answer in time
                return None
            raise _translate_error(method, exc, wait) from exc
        if not isinstance(result, dict):
            raise _unexpected(method, f"result is {type(result).__name__}, not an object")
        return result

    async def _fetch(
        self,
        method: str,
        params: dict | None,
        parse: Callable[[dict], T],
        timeout: float | None = None,
    ) -> T:
        result = await self._rpc(method, params, timeout)
        try:
            return parse(result)
        except (_MalformedError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _unexpected(method, f"{type(exc).__name__}: {exc}") from exc

    # -- NodeSource ------------------------------------------------------------------

    async def get_info(self) -> NodeInfo:
        return await self._fetch("getinfo", None, _node_info)

    async def list_channels(self) -> list[Channel]:
        raw_channels = await self._peer_channels()
        usable = [raw for raw in raw_channels if _is_listed(raw)]
        cltv = await self._legacy_cltv_delta(usable)
        aliases = await self._peer_aliases({str(raw.get("peer_id", "")) for raw in usable})
        try:
            return [_channel(raw, aliases.get(raw["peer_id"], ""), cltv) for raw in usable]
        except (_MalformedError, KeyError, TypeError, ValueError) as exc:
            raise _unexpected("listpeerchannels", f"{type(exc).__name__}: {exc}") from exc

    async def forwards_since(self, cursor: int, limit: int) -> ForwardPage:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        # `start` is inclusive (rowid >= start) and created_index starts at 1.
        params = {"index": "created", "start": cursor + 1, "limit": limit}
        return await self._fetch(
            "listforwards", params, lambda r: forward_page(r["forwards"], cursor, limit)
        )

    async def get_policy(self, channel_id: str) -> RoutingPolicy:
        scid = _scid(channel_id)
        raw = _find_channel(await self._peer_channels(), scid)
        cltv = await self._legacy_cltv_delta([raw])
        try:
            return _local_policy(raw, cltv)
        except (_MalformedError, KeyError, TypeError, ValueError) as exc:
            raise _unexpected("listpeerchannels", f"{type(exc).__name__}: {exc}") from exc

    async def set_policy(self, channel_id: str, update: PolicyUpdate) -> RoutingPolicy:
        _reject_unsupported(update)
        scid = _scid(channel_id)
        params = _setchannel_params(update)
        if params:
            # Always a short channel id: setchannel also takes a peer id or "all",
            # which would change every channel with that peer.
            await self._fetch("setchannel", {"id": scid, **params}, _check_setchannel)
        return await self.get_policy(scid)

    async def rebalance(
        self, out_channel: str, in_channel: str, amount_msat: int, max_fee_msat: int
    ) -> RebalanceResult:
        """Route built by hand (getroutes, or getroute on older nodes, for the middle; our
        two channels at the ends) and paid with sendpay to an invoice of our own. The
        route is priced before anything is created, so a refused rebalance leaves neither
        an invoice nor a payment."""
        out_scid, in_scid = _scid(out_channel), _scid(in_channel)
        if out_scid == in_scid:
            raise NodeRequestError("a rebalance needs two different channels")
        if amount_msat <= 0 or max_fee_msat < 0:
            raise NodeRequestError("rebalance amount must be positive and max fee not negative")

        def failed(detail: str) -> RebalanceResult:
            return RebalanceResult(False, out_scid, in_scid, amount_msat, 0, detail)

        raw_channels = await self._peer_channels()
        out_raw = _usable_channel(raw_channels, out_scid)
        in_raw = _usable_channel(raw_channels, in_scid)
        our_id = await self._fetch("getinfo", None, lambda r: str(r["id"]))
        peer_a, peer_b = str(out_raw["peer_id"]), str(in_raw["peer_id"])

        last_policy = _remote_policy(in_raw) or await self._gossip_policy(in_scid, peer_b)
        if last_policy is None:
            return failed(f"no routing policy known for {peer_b}'s side of {in_scid}")
        # hops after the first, as (source node, channel, destination node)
        middle: list[tuple[str, str, str]] = []
        if peer_a != peer_b:
            to_b = amount_msat + last_policy.fee_msat(amount_msat)  # what B must receive
            last_fee = to_b - amount_msat
            if last_fee > max_fee_msat:
                return failed(
                    f"route too expensive: the last hop alone costs {last_fee} msat, "
                    f"max {max_fee_msat} msat"
                )
            try:
                middle = await self._middle_route(
                    _Leg(peer_a, peer_b, our_id, to_b),
                    maxfee_msat=max_fee_msat - last_fee,
                    final_cltv=FINAL_CLTV + last_policy.cltv_delta,
                )
            except _NoRouteError as exc:
                return failed(str(exc))

        policies = [last_policy]
        for source, scid, _ in middle:
            policy = await self._gossip_policy(scid, source)
            if policy is None:
                return failed(f"no routing policy known for {source}'s side of {scid}")
            policies.insert(len(policies) - 1, policy)
        # (source, channel, destination) for every hop, and what each source charges;
        # the first hop is ours and free
        links = [(our_id, out_scid, peer_a), *middle, (peer_b, in_scid, our_id)]
        route = build_route(links, policies, amount_msat, FINAL_CLTV)
        fee_msat = msat(route[0]["amount_msat"]) - amount_msat
        if fee_msat > max_fee_msat:
            return failed(
                f"route too expensive: {fee_msat} msat in fees over {len(route)} hops, "
                f"max {max_fee_msat} msat"
            )
        return await self._pay_route(route, out_scid, in_scid, amount_msat)

    async def _middle_route(
        self, leg: _Leg, *, maxfee_msat: int, final_cltv: int
    ) -> list[tuple[str, str, str]]:
        """The hops from A to B, avoiding our node, as (source, channel, destination).

        askrene's getroutes (CLN v24.08+) replaces getroute, deprecated in v26.06. It has
        no "exclude": our node is disabled in a throwaway, non-persistent layer
        (askrene-create-layer / askrene-disable-node, v24.11+), and `maxparts` 1 (v25.09+)
        asks for the single path sendpay needs. So this needs CLN v25.09 or newer; older
        nodes, and nodes without the askrene plugin, answer "Unknown command" (or unknown
        parameter maxparts) and get getroute, which they have without deprecation."""
        try:
            return await self._getroutes_middle(leg, maxfee_msat, final_cltv)
        except _RpcRefusedError as exc:
            if not _askrene_missing(exc):
                raise _NoRouteError(str(exc)) from exc  # 205 no route, 206 too expensive
        try:
            result = await self._rpc(
                "getroute",
                {
                    "id": leg.peer_b,
                    "amount_msat": leg.amount_msat,
                    "riskfactor": ROUTE_RISKFACTOR,
                    "fromid": leg.peer_a,
                    "exclude": [leg.our_id],  # the middle must not come back through us
                },
            )
        except NodeRequestError as exc:  # 205 "Could not find a route", ...
            raise _NoRouteError(str(exc)) from exc
        try:
            return _middle_hops(result, leg)
        except (_MalformedError, KeyError, TypeError, ValueError) as exc:
            raise _unexpected("getroute", f"{type(exc).__name__}: {exc}") from exc

    async def _getroutes_middle(
        self, leg: _Leg, maxfee_msat: int, final_cltv: int
    ) -> list[tuple[str, str, str]]:
        layer = f"daznode-rebalance-{secrets.token_hex(8)}"
        await self._rpc("askrene-create-layer", {"layer": layer})  # persistent: false
        try:
            await self._rpc("askrene-disable-node", {"layer": layer, "node": leg.our_id})
            result = await self._rpc(
                "getroutes",
                {
                    "source": leg.peer_a,
                    "destination": leg.peer_b,
                    "amount_msat": leg.amount_msat,
                    "layers": [layer],
                    "maxfee_msat": maxfee_msat,
                    "final_cltv": final_cltv,
                    "maxparts": 1,
                },
            )
        finally:
            # Best effort: a non-persistent layer also goes when askrene restarts.
            with contextlib.suppress(NodeRequestError, NodeUnavailable):
                await self._rpc("askrene-remove-layer", {"layer": layer})
        try:
            return _getroutes_hops(result, leg)
        except (_MalformedError, KeyError, TypeError, ValueError) as exc:
            raise _unexpected("getroutes", f"{type(exc).__name__}: {exc}") from exc

    async def _pay_route(
        self, route: list[dict], out_scid: str, in_scid: str, amount_msat: int
    ) -> RebalanceResult:
        label = f"daznode-rebalance-{secrets.token_hex(16)}"
        invoice = await self._fetch(
            "invoice",
            {
                "amount_msat": amount_msat,
                "label": label,
                "description": f"Daznode rebalance {out_scid} -> {in_scid}",
                "expiry": INVOICE_EXPIRY_S,
                "cltv": FINAL_CLTV,  # what the last hop's delay was built for
            },
            lambda r: (str(r["payment_hash"]), str(r["payment_secret"])),
        )
        payment_hash, payment_secret = invoice
        try:
            await self._rpc(
                "sendpay",
                {
                    "route": route,
                    "payment_hash": payment_hash,
                    "payment_secret": payment_secret,
                    "amount_msat": amount_msat,
                },
            )
            done = await self._rpc(
                "waitsendpay",
                {"payment_hash": payment_hash, "timeout": WAITSENDPAY_TIMEOUT_S},
                timeout=self._timeout + WAITSENDPAY_TIMEOUT_S,
            )
        except NodeUnavailable:
            # Outcome unknown. An unpaid invoice that is gone makes a late HTLC fail
            # back to us instead of completing; a paid one refuses to be deleted.
            await self._delete_unpaid_invoice(label, quiet=True)
            raise
        except NodeRequestError as exc:
            await self._delete_unpaid_invoice(label, reason=str(exc))
            return RebalanceResult(False, out_scid, in_scid, amount_msat, 0, str(exc))
        try:
            if done["status"] != "complete":
                raise _MalformedError(f"status {done['status']!r}")
            sent = msat(done["amount_sent_msat"])
            received = msat(done.get("amount_msat", amount_msat))
        except (_MalformedError, KeyError, TypeError) as exc:
            raise _unexpected("waitsendpay", f"{type(exc).__name__}: {exc}") from exc
        return RebalanceResult(True, out_scid, in_scid, amount_msat, sent - received, payment_hash)

    async def _delete_unpaid_invoice(
        self, label: str, *, reason: str = "", quiet: bool = False
    ) -> None:
        try:
            await self._rpc("delinvoice", {"label": label, "status": "unpaid"})
        except NodeRequestError as exc:
            if quiet:
                return
            # 906: no longer unpaid, so the payment went through after all
            raise NodeRequestError(
                f"rebalance payment reported a failure ({reason}) but its invoice "
                f"{label} could not be deleted ({exc}); check listsendpays"
            ) from exc
        except NodeUnavailable:
            if not quiet:
                raise

    async def _gossip_policy(self, scid: str, source: str) -> RoutingPolicy | None:
        """What `source` charges to forward over `scid`, from gossip (listchannels takes
        only one of short_channel_id / source / destination, so filter here)."""
        entries = await self._fetch(
            "listchannels", {"short_channel_id": scid}, lambda r: list(r["channels"])
        )
        try:
            return next((policy_from_gossip(e) for e in entries if e.get("source") == source), None)
        except (_MalformedError, KeyError, TypeError, ValueError) as exc:
            raise _unexpected("listchannels", f"{type(exc).__name__}: {exc}") from exc

    async def close_channel(self, channel_id: str) -> CloseResult:
        """`close` with `unilateraltimeout` 0: lightningd waits for a mutual close however
        long the peer takes and never falls back to a unilateral (force) close, which any
        other value would do once it expires.

        lightningd does not refuse a peer that is offline: it moves the channel to
        CHANNELD_SHUTTING_DOWN at once (no more forwarding) and negotiates on reconnection.
        So an offline peer or a channel not in normal operation is refused here, before
        anything changes. With the peer online, `close` answers once the closing
        transaction is broadcast; waiting stops after `close_wait` seconds and the result
        then says the negotiation is under way (the node completes it on its own)."""
        scid = _scid(channel_id)
        raw = _find_channel(await self._peer_channels(), scid)
        state = raw.get("state")
        if state in ("CHANNELD_SHUTTING_DOWN", "CLOSINGD_SIGEXCHANGE", "CLOSINGD_COMPLETE"):
            raise NodeRequestError(f"channel {scid} is already closing (state {state})")
        if state not in USABLE_STATES:
            raise NodeRequestError(
                f"channel {scid} cannot be closed cooperatively in state {state}"
            )
        if not raw.get("peer_connected"):
            raise NodeRequestError(
                f"the peer of channel {scid} is offline: a cooperative close needs it online "
                "(Core Lightning would stop the channel and wait), and Daznode never force "
                "closes"
            )
        # Always the short channel id: `close` also takes a peer id, which would pick
        # whichever channel with that peer lightningd finds first.
        result = await self._rpc_detached(
            "close", {"id": scid, "unilateraltimeout": 0}, self._close_wait
        )
        if result is None:
            return CloseResult(
                channel_id=scid,
                closing_txid=None,
                detail="negotiation under way; the node completes it when the peer answers",
            )
        try:
            return _close_result(scid, result)
        except (_MalformedError, KeyError, TypeError, ValueError) as exc:
            raise _unexpected("close", f"{type(exc).__name__}: {exc}") from exc

    async def describe_graph(self) -> NetworkGraph:
        raw_nodes = await self._fetch(
            "listnodes", None, lambda r: list(r["nodes"]), self._graph_timeout
        )
        edges = await self._fetch(
            "listchannels",
            None,
            lambda r: merge_graph_edges(r["channels"]),
            self._graph_timeout,
        )
        try:
            return NetworkGraph(nodes=graph_nodes(raw_nodes, edges), edges=edges)
        except (KeyError, TypeError, ValueError) as exc:
            raise _unexpected("listnodes", f"{type(exc).__name__}: {exc}") from exc

    # -- helpers needing the node ----------------------------------------------------

    async def _peer_channels(self) -> list[dict]:
        # No short_channel_id filter: that parameter only exists from v25.05.
        return await self._fetch("listpeerchannels", None, _channel_list)

    async def _legacy_cltv_delta(self, raw_channels: list[dict]) -> int:
        """Only nodes older than v24.02 (no `updates`) need the node-wide option."""
        if all("updates" in raw for raw in raw_channels):
            return 0
        if self._cltv_delta is None:
            self._cltv_delta = await self._fetch(
                "listconfigs", {"config": "cltv-delta"}, listed_cltv_delta
            )
        return self._cltv_delta

    async def _peer_aliases(self, peer_ids: set[str]) -> dict[str, str]:
        """Best effort: a missing alias must never cost us the channel list."""
        aliases: dict[str, str] = {}
        budget = self._alias_lookups_per_call
        for peer_id in sorted(peer_ids):
            cached = self._aliases.get(peer_id)
            if cached is not None:
                aliases[peer_id] = cached
            elif budget > 0:
                alias = await self._lookup_alias(peer_id)
                # unavailable: stop rather than wait out a timeout per peer
                budget = budget - 1 if alias is not None else 0
                aliases[peer_id] = alias or ""
        return aliases

    async def _lookup_alias(self, peer_id: str) -> str | None:
        try:
            nodes = await self._fetch("listnodes", {"id": peer_id}, lambda r: r["nodes"])
        except NodeUnavailable:
            return None  # not cached: try again next time
        except NodeRequestError:
            nodes = []
        alias = next((n.get("alias") or "" for n in nodes if n.get("nodeid") == peer_id), "")
        self._aliases.put(peer_id, alias)
        return alias


# -- pure helpers ------------------------------------------------------------------------


def _translate_error(method: str, exc: BaseException, timeout: float) -> Exception:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return NodeUnavailable(f"Core Lightning did not answer {method} within {timeout:g}s")
    error = getattr(exc, "error", None)  # pyln's RpcError, recognised without importing it
    if isinstance(error, dict) and "message" in error:
        code = error.get("code")
        return _RpcRefusedError(
            f"Core Lightning {method} failed ({code}): {error['message']}", code
        )
    if isinstance(error, str):
        # pyln reports a socket closed mid-call as RpcError with a plain string
        return NodeUnavailable(f"Core Lightning {method}: {error}")
    if isinstance(exc, OSError):  # includes ConnectionError and FileNotFoundError
        return NodeUnavailable(f"cannot reach Core Lightning ({method}): {exc}")
    if isinstance(exc, ValueError | TypeError):  # pyln's "Malformed response", bad JSON
        return _unexpected(method, str(exc))
    return NodeRequestError(f"Core Lightning {method} failed: {type(exc).__name__}: {exc}")


def _unexpected(method: str, detail: str) -> NodeRequestError:
    return NodeRequestError(f"unexpected response from Core Lightning: {method}: {detail}")


def _scid(channel_id: str) -> str:
    try:
        return normalize_channel_id(channel_id)
    except ValueError as exc:
        raise NodeRequestError(str(exc)) from exc


def _node_info(raw: dict) -> NodeInfo:
    return NodeInfo(
        pubkey=raw["id"],
        alias=raw.get("alias", ""),
        block_height=int(raw["blockheight"]),
        num_active_channels=int(raw["num_active_channels"]),
        num_peers=int(raw["num_peers"]),
        synced_to_chain=not any(key in raw for key in SYNC_WARNINGS),
        version=raw["version"],
        network=raw["network"],
    )


def _channel_list(raw: dict) -> list[dict]:
    channels = raw["channels"]
    if not isinstance(channels, list) or not all(isinstance(c, dict) for c in channels):
        raise _MalformedError("channels is not a list of objects")
    return channels


def _is_listed(raw: dict) -> bool:
    return raw.get("state") in USABLE_STATES and bool(raw.get("short_channel_id"))


def _find_channel(raw_channels: list[dict], scid: str) -> dict:
    matches = [raw for raw in raw_channels if raw.get("short_channel_id") == scid]
    if not matches:
        raise NodeRequestError(f"unknown channel {scid}")
    # a closed channel may linger next to nothing else with this scid; prefer usable
    return next((raw for raw in matches if raw.get("state") in USABLE_STATES), matches[0])


def _usable_channel(raw_channels: list[dict], scid: str) -> dict:
    raw = _find_channel(raw_channels, scid)
    if raw.get("state") not in USABLE_STATES or "peer_id" not in raw:
        raise NodeRequestError(f"channel {scid} cannot carry payments (state {raw.get('state')})")
    return raw


def _close_result(scid: str, raw: dict) -> CloseResult:
    """`close`'s answer (doc/schemas/close.json): `type` mutual | unilateral | unopened;
    `txids` since v24.11, the single `txid` before (deprecated v24.11, gone in v25.12)."""
    kind = raw["type"]
    if kind not in ("mutual", "unilateral", "unopened"):
        raise _MalformedError(f"unknown close type {kind!r}")
    txids = raw.get("txids")
    if txids is None:
        txids = [raw["txid"]] if raw.get("txid") else []
    if not isinstance(txids, list):
        raise _MalformedError("txids is not a list")
    # "INVALID_TXID" stands for a commitment lightningd could not sign (ancient channel)
    valid = [str(t) for t in txids if t != "INVALID_TXID"]
    txid = valid[0] if valid else None
    if kind == "mutual":
        detail = f"mutual close broadcast, closing transaction {txid}"
    elif kind == "unilateral":
        # only when the peer misbehaved during the negotiation: lightningd had to
        detail = "the peer broke off the negotiation and the channel closed unilaterally"
        detail += f", transaction {txid}" if txid else ""
    else:
        detail = "the channel was not open yet: Core Lightning discarded it"
    return CloseResult(channel_id=scid, closing_txid=txid, detail=detail)


@dataclass(frozen=True)
class _Leg:
    """The middle of a circular route: from A (out channel's peer) to B (in channel's
    peer), B receiving `amount_msat`, never through our node."""

    peer_a: str
    peer_b: str
    our_id: str
    amount_msat: int


class _NoRouteError(Exception):
    """The node found no acceptable middle route; the message says why."""


def _askrene_missing(exc: _RpcRefusedError) -> bool:
    """Older than v25.09, or askrene disabled: the getroutes path is not available."""
    if exc.code == JSONRPC2_METHOD_NOT_FOUND:
        return True
    return exc.code == JSONRPC2_INVALID_PARAMS and "maxparts" in str(exc)


def _middle_hops(result: dict, leg: _Leg) -> list[tuple[str, str, str]]:
    """getroute's hops from A to B as (source, channel, destination)."""
    hops = result["route"]
    if not isinstance(hops, list):
        raise _MalformedError("route is not a list")
    return _chain(leg, [(str(hop["channel"]), None, str(hop["id"])) for hop in hops])


def _getroutes_hops(result: dict, leg: _Leg) -> list[tuple[str, str, str]]:
    """getroutes' single path from A to B as (source, channel, destination). Each hop has
    `short_channel_id_dir` and its far node: `next_node_id` until v26.06 (deprecated then,
    removed in v27.06), `node_id_out` (with `node_id_in`) from v26.06."""
    routes = result["routes"]
    if not isinstance(routes, list) or len(routes) != 1:
        count = len(routes) if isinstance(routes, list) else routes
        raise _MalformedError(f"expected one route (maxparts 1), got {count}")
    path = routes[0]["path"]
    if not isinstance(path, list):
        raise _MalformedError("path is not a list")
    hops = []
    for hop in path:
        scid, sep, direction = str(hop["short_channel_id_dir"]).partition("/")
        if not sep or direction not in ("0", "1"):
            raise _MalformedError(f"bad short_channel_id_dir {hop['short_channel_id_dir']!r}")
        far = hop.get("node_id_out") or hop["next_node_id"]
        hops.append((scid, int(direction), str(far), hop.get("node_id_in")))
    links = _chain(leg, [(scid, direction, far) for scid, direction, far, _ in hops])
    for (source, _, _), (*_, node_in) in zip(links, hops, strict=True):
        if node_in is not None and node_in != source:
            raise _MalformedError(f"hop starts at {node_in}, not {source}")
    return links


def _chain(leg: _Leg, hops: list[tuple[str, int | None, str]]) -> list[tuple[str, str, str]]:
    """(channel, BOLT #7 direction if given, far node) hops -> links from A that end at B
    and never touch our node."""
    if not hops:
        raise _MalformedError("empty route")
    links = []
    source = leg.peer_a
    for raw_scid, direction, destination in hops:
        if destination == leg.our_id:
            raise _MalformedError("route goes through our own node")
        if direction is not None and direction != (0 if source < destination else 1):
            raise _MalformedError(
                f"direction {direction} of {raw_scid} does not lead to {destination}"
            )
        links.append((source, normalize_channel_id(raw_scid), destination))
        source = destination
    if source != leg.peer_b:
        raise _MalformedError(f"route ends at {source}, not {leg.peer_b}")
    return links


def build_route(
    links: list[tuple[str, str, str]],
    policies: list[RoutingPolicy],
    amount_msat: int,
    final_cltv: int,
) -> list[dict]:
    """sendpay's route from (source, channel, destination) links. Each hop says what its
    destination must receive (`amount_msat`) and the total CLTV it expects (`delay`);
    working backwards from the last hop, each earlier hop adds the fee and CLTV delta
    the next hop's source charges. `policies[i]` is that of links[i + 1]'s source."""
    if len(policies) != len(links) - 1:
        raise ValueError("one policy per hop after the first")
    route: list[dict] = []
    amount, delay = amount_msat, final_cltv
    for index in range(len(links) - 1, -1, -1):
        source, scid, destination = links[index]
        route.append(
            {
                "id": destination,
                "channel": scid,
                "direction": 0 if source < destination else 1,  # BOLT #7 node_1 first
                "amount_msat": amount,
                "delay": delay,
                "style": "tlv",
            }
        )
        if index:
            charged_by = policies[index - 1]
            amount += charged_by.fee_msat(amount)
            delay += charged_by.cltv_delta
    route.reverse()
    return route


def _local_policy(raw: dict, legacy_cltv_delta: int) -> RoutingPolicy:
    updates = raw.get("updates")
    if updates is None:
        return legacy_local_policy(raw, legacy_cltv_delta)
    return policy_from_update(updates["local"])


def _remote_policy(raw: dict) -> RoutingPolicy | None:
    # absent before v24.02 and until the peer's channel_update has arrived
    remote = (raw.get("updates") or {}).get("remote")
    return None if remote is None else policy_from_update(remote)


def _channel(raw: dict, peer_alias: str, legacy_cltv_delta: int) -> Channel:
    total_msat = msat(raw["total_msat"])
    to_us_msat = msat(raw["to_us_msat"])
    return Channel(
        channel_id=raw["short_channel_id"],
        native_id=raw["channel_id"],
        channel_point=f"{raw['funding_txid']}:{int(raw['funding_outnum'])}",
        peer_id=raw["peer_id"],
        peer_alias=peer_alias,
        capacity_sat=total_msat // 1000,
        # Commitment balances, not spendable_msat/receivable_msat: the same quantity as
        # LND's local_balance/remote_balance, so ratios mean the same on both backends
        # (spendable also subtracts reserve and fees for the next HTLC).
        local_balance_msat=to_us_msat,
        remote_balance_msat=total_msat - to_us_msat,
        active=raw["state"] in USABLE_STATES and bool(raw["peer_connected"]),
        private=bool(raw.get("private", False)),
        local_policy=_local_policy(raw, legacy_cltv_delta),
        remote_policy=_remote_policy(raw),
    )


def _reject_unsupported(update: PolicyUpdate) -> None:
    if update.cltv_delta is not None:
        raise NotSupported(
            "Core Lightning has no per-channel CLTV delta (only the node-wide "
            "cltv-delta option); setchannel cannot change it"
        )
    if update.inbound_base_fee_msat is not None or update.inbound_fee_rate_ppm is not None:
        raise NotSupported("Core Lightning does not support inbound fees")


def _setchannel_params(update: PolicyUpdate) -> dict[str, int]:
    """Only the fields being changed: setchannel leaves omitted ones as they are."""
    fields = {
        "feebase": update.base_fee_msat,
        "feeppm": update.fee_rate_ppm,
        "htlcmin": update.htlc_min_msat,
        "htlcmax": update.htlc_max_msat,
    }
    return {name: value for name, value in fields.items() if value is not None}


def _check_setchannel(raw: dict) -> None:
    if not raw["channels"]:
        raise _MalformedError("setchannel changed no channel")
