"""Core Lightning adapter: `NodeSource` over lightningd's JSON-RPC.

The adapter receives a plain synchronous caller `call(method, params) -> result` (in
production LNbits' `CoreLightningWallet.ln.call`, a pyln-client `LightningRpc`), so this
module imports neither LNbits nor pyln. Field names follow Core Lightning's JSON schemas
(doc/schemas/*.json in ElementsProject/lightning); msat amounts are plain integers there
since v23.x, but "123msat" strings from older nodes are accepted too.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from ..node_source import (
    Capabilities,
    Channel,
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


class _MalformedError(Exception):
    """Raised by parsers when a response lacks what the schema promises."""


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
    ) -> None:
        self._call = call
        self._timeout = timeout
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
        """Route built by hand (getroute for the middle, our two channels at the ends) and
        paid with sendpay to an invoice of our own. The route is priced before anything
        is created, so a refused rebalance leaves neither an invoice nor a payment."""
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
            try:
                result = await self._rpc(
                    "getroute",
                    {
                        "id": peer_b,
                        "amount_msat": amount_msat + last_policy.fee_msat(amount_msat),
                        "riskfactor": ROUTE_RISKFACTOR,
                        "fromid": peer_a,
                        "exclude": [our_id],  # the middle must not come back through us
                    },
                )
            except NodeRequestError as exc:  # 205 "Could not find a route", ...
                return failed(str(exc))
            try:
                middle = _middle_hops(result, peer_a, peer_b, our_id)
            except (_MalformedError, KeyError, TypeError, ValueError) as exc:
                raise _unexpected("getroute", f"{type(exc).__name__}: {exc}") from exc

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
        return NodeRequestError(f"Core Lightning {method} failed ({code}): {error['message']}")
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


def _middle_hops(result: dict, peer_a: str, peer_b: str, our_id: str) -> list[tuple[str, str, str]]:
    """getroute's hops from A to B as (source, channel, destination)."""
    hops = result["route"]
    if not isinstance(hops, list) or not hops:
        raise _MalformedError("empty route")
    links = []
    source = peer_a
    for hop in hops:
        destination, scid = str(hop["id"]), normalize_channel_id(str(hop["channel"]))
        if destination == our_id:
            raise _MalformedError("route goes through our own node")
        links.append((source, scid, destination))
        source = destination
    if source != peer_b:
        raise _MalformedError(f"route ends at {source}, not {peer_b}")
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
