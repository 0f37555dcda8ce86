"""NodeSource for LND over its REST gateway (the same client LNbits' LndRestWallet uses).

JSON shapes follow LND's REST proxy (protojson with UseProtoNames + EmitUnpopulated):
64-bit integers arrive as strings, 32-bit ones as numbers, absent sub-messages as null.
The macaroon lives in the client's default headers; nothing here ever prints headers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

import httpx

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
    PolicyUpdate,
    RebalanceResult,
    RoutingPolicy,
    normalize_channel_id,
    scid_from_int,
    scid_to_int,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 15.0
EDGE_LOOKUP_CONCURRENCY = 8
# About 50k events fit in one gRPC message (channeldb.MaxResponseEvents); LND does not
# enforce it, but bigger pages could exceed the proxy's message size limit.
MAX_FORWARDS_PER_CALL = 50_000
# index_offset is a uint32 in ForwardingHistoryRequest.
MAX_FORWARD_CURSOR = (1 << 32) - 1

REBALANCE_MEMO = "daznode rebalance"
REBALANCE_INVOICE_EXPIRY_S = 600
# SendPaymentV2's pathfinding budget (until the first HTLC is sent); required in LND 0.18.
REBALANCE_TIMEOUT_S = 60
FINAL_PAYMENT_STATUSES = frozenset({"SUCCEEDED", "FAILED"})
# How long CloseChannel may take to negotiate with the peer and broadcast the closing
# transaction: its stream sends nothing (not even HTTP headers) before that.
CLOSE_TIMEOUT_S = 60

# gRPC codes meaning "try later": DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, UNAVAILABLE.
TRANSIENT_GRPC_CODES = frozenset({4, 8, 14})
# LND reports its start-up states with code 2 (UNKNOWN) and these texts (rpcperms).
TRANSIENT_MESSAGES = (
    "waiting to start",
    "wallet locked",
    "in the process of starting up",
    "server is still in the process of starting",
    "server exiting",
)


class _LndRefusedError(NodeRequestError):
    """LND answered with its own error body (e.g. "edge not found"), not garbage."""


class _MalformedError(ValueError):
    """A response that does not have the shape LND documents."""


@contextlib.contextmanager
def _stream_errors(what: str, unknown: str) -> Iterator[None]:
    """How a streamed call that may have changed the node fails: refused before sending is
    retryable; anything after may have paid or closed already, so `unknown` says what to
    check and it is never retried."""
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        # never sent: nothing is under way
        raise NodeUnavailable(f"LND {what} unreachable: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise NodeUnavailable(f"LND {what} timed out: {unknown}", transient=False) from exc
    except httpx.TransportError as exc:
        raise NodeUnavailable(
            f"LND {what} connection lost: {exc}; {unknown}", transient=False
        ) from exc
    except httpx.RequestError as exc:
        raise NodeRequestError(f"unexpected response from LND: {what}: {exc}") from exc


class LndRestSource:
    """NodeSource backed by LND's REST API."""

    kind = "lnd"
    capabilities = Capabilities(
        inbound_fees=True, per_channel_cltv=True, forward_failures=False, rebalance=True
    )

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        edge_concurrency: int = EDGE_LOOKUP_CONCURRENCY,
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._edge_concurrency = edge_concurrency
        self._pubkey: str | None = None  # our identity never changes, so fetch it once

    # ----------------------------------------------------------------- NodeSource

    async def get_info(self) -> NodeInfo:
        data = await self._call("GET", "/v1/getinfo")
        info = _parse("getinfo", _node_info, data)
        self._pubkey = info.pubkey
        return info

    async def list_channels(self) -> list[Channel]:
        raw = await self._raw_channels()
        ids = [_parse("listchannels", _int, item, "chan_id") for item in raw]
        ours = await self._our_pubkey()
        sem = asyncio.Semaphore(self._edge_concurrency)

        async def policies(chan_id: int) -> _PolicyPair:
            async with sem:
                try:
                    return await self._edge_policies(chan_id, ours)
                except _LndRefusedError as exc:
                    # Unannounced or brand-new channels may have no graph edge yet.
                    log.info("no graph edge for channel %s: %s", chan_id, exc)
                    return None, None

        pairs = await _gather_or_cancel(policies(chan_id) for chan_id in ids)
        return [
            _parse("listchannels", _channel, item, pair)
            for item, pair in zip(raw, pairs, strict=True)
        ]

    async def forwards_since(self, cursor: int, limit: int) -> ForwardPage:
        if cursor < 0 or cursor > MAX_FORWARD_CURSOR:
            raise NodeRequestError(f"forward cursor out of range: {cursor}")
        if limit <= 0:
            raise NodeRequestError(f"forward page limit must be positive: {limit}")
        wanted = min(limit, MAX_FORWARDS_PER_CALL)
        # index_offset counts records inside the [start_time, end_time] window, so the
        # window must start at the epoch for the cursor to be an absolute log position.
        # end_time is omitted: LND then uses "now", after flushing pending events; a
        # far-future value would overflow LND's nanosecond conversion past year 2262.
        body = {
            "start_time": "0",
            "index_offset": cursor,
            "num_max_events": wanted,
            "peer_alias_lookup": False,
        }
        data = await self._call("POST", "/v1/switch", json_body=body)
        events, last_offset = _parse("forwardinghistory", _forward_events, data, cursor)
        if last_offset != cursor + len(events):
            raise NodeRequestError(
                "unexpected response from LND: forwardinghistory last_offset_index "
                f"{last_offset} != cursor {cursor} + {len(events)} events"
            )
        return ForwardPage(events=events, next_cursor=last_offset, has_more=len(events) == wanted)

    async def get_policy(self, channel_id: str) -> RoutingPolicy:
        scid = _scid(channel_id)
        ours, _ = await self._edge_policies(scid_to_int(scid), await self._our_pubkey())
        if ours is None:
            raise NodeRequestError(f"LND has no policy of ours for channel {scid} yet")
        return ours

    async def set_policy(self, channel_id: str, update: PolicyUpdate) -> RoutingPolicy:
        scid = _scid(channel_id)
        txid, vout = await self._channel_point(scid)
        # UpdateChannelPolicy always overwrites base fee, fee rate and CLTV delta (omitted
        # means 0), so send the current policy merged with the update, every field set.
        wanted = update.apply_to(await self.get_policy(scid))
        data = await self._call(
            "POST", "/v1/chanpolicy", json_body=_policy_request(txid, vout, wanted)
        )
        failures = _parse("updatechanpolicy", _failed_updates, data)
        if failures:
            raise NodeRequestError(f"LND refused the policy for {scid}: {'; '.join(failures)}")
        applied = await self.get_policy(scid)
        if applied != wanted:
            log.warning("LND policy for %s reads back %s, wanted %s", scid, applied, wanted)
        return applied

    async def rebalance(
        self, out_channel: str, in_channel: str, amount_msat: int, max_fee_msat: int
    ) -> RebalanceResult:
        """Pay an invoice of our own, first hop pinned to `out_channel`, last hop to the peer
        of `in_channel` (SendPaymentV2 with allow_self_payment).

        LND pins the last hop's node, not its channel: with several channels to that peer
        the payment may come back through any of them.
        """
        out_scid, in_scid = _scid(out_channel), _scid(in_channel)
        if out_scid == in_scid:
            raise NodeRequestError(f"rebalance needs two different channels, got {out_scid} twice")
        if amount_msat <= 0:
            raise NodeRequestError(f"rebalance amount must be positive: {amount_msat} msat")
        if max_fee_msat < 0:
            raise NodeRequestError(f"rebalance fee limit must not be negative: {max_fee_msat}")
        out_item, in_item = await self._our_channels(out_scid, in_scid)
        if _parse("listchannels", _str, out_item, "remote_pubkey") == _parse(
            "listchannels", _str, in_item, "remote_pubkey"
        ):
            # The payment could come back over the out channel itself: a paid no-op.
            raise NodeRequestError(
                f"rebalance from {out_scid} to {in_scid}: both channels are with the same "
                "peer, and LND can pin the last hop's node but not its channel"
            )
        last_hop = _parse("listchannels", _pubkey_b64, in_item)

        invoice = await self._call(
            "POST",
            "/v1/invoices",
            json_body={
                "value_msat": str(amount_msat),
                "memo": REBALANCE_MEMO,
                "expiry": str(REBALANCE_INVOICE_EXPIRY_S),
            },
        )
        payment_request, payment_hash = _parse("addinvoice", _added_invoice, invoice)
        body = {
            "payment_request": payment_request,
            "outgoing_chan_ids": [str(scid_to_int(out_scid))],
            "last_hop_pubkey": last_hop,
            "fee_limit_msat": str(max_fee_msat),
            "timeout_seconds": REBALANCE_TIMEOUT_S,
            "allow_self_payment": True,
            "no_inflight_updates": True,
        }
        payment = await self._send_payment(body, payment_hash)
        status = payment["status"]
        if status == "SUCCEEDED":
            return RebalanceResult(
                ok=True,
                out_channel=out_scid,
                in_channel=in_scid,
                amount_msat=amount_msat,
                fee_msat=_parse("payment", _int, payment, "fee_msat"),
                detail=str(payment.get("payment_hash") or payment_hash),
            )
        reason = payment.get("failure_reason")
        return RebalanceResult(
            ok=False,
            out_channel=out_scid,
            in_channel=in_scid,
            amount_msat=amount_msat,
            fee_msat=0,
            detail=str(reason) if reason else "FAILED",
        )

    async def describe_graph(self) -> NetworkGraph:
        data = await self._call("GET", "/v1/graph", params={"include_unannounced": "false"})
        return _parse("describegraph", _graph, data)

    async def close_channel(self, channel_id: str) -> CloseResult:
        """Cooperative close through CloseChannel (DELETE /v1/channels/{txid}/{vout},
        force=false). LND answers the stream's first update, close_pending, once the peers
        have agreed and the closing transaction is broadcast; chan_close only follows after
        confirmations, so reading stops at the first of the two.

        Refusals (peer offline, pending HTLCs, frozen channel) arrive before anything is
        done and raise NodeRequestError. No answer within CLOSE_TIMEOUT_S raises a
        non-transient NodeUnavailable: the shutdown may already be under way, and dropping
        the request does not stop LND's negotiation.
        """
        scid = _scid(channel_id)
        (item,) = await self._our_channels(scid)
        if not _parse("listchannels", _bool, item, "active"):
            raise NodeRequestError(
                f"channel {scid} is inactive (peer offline or link down): a cooperative "
                "close needs the peer online, and Daznode never force closes"
            )
        txid, vout = _parse("listchannels", _split_channel_point, item)
        kind, closing_txid = await self._close_stream(f"/v1/channels/{txid}/{vout}", scid)
        if kind == "close_pending":
            detail = f"cooperative close broadcast, closing transaction {closing_txid}"
        else:
            detail = f"cooperative close confirmed, closing transaction {closing_txid}"
        return CloseResult(channel_id=scid, closing_txid=closing_txid, detail=detail)

    # ------------------------------------------------------------------- helpers

    async def _our_pubkey(self) -> str:
        if self._pubkey is None:
            await self.get_info()
        assert self._pubkey is not None
        return self._pubkey

    async def _raw_channels(self) -> list[dict[str, Any]]:
        data = await self._call("GET", "/v1/channels", params={"peer_alias_lookup": "true"})
        return _parse("listchannels", _channel_list, data)

    async def _channel_point(self, scid: str) -> tuple[str, int]:
        wanted = str(scid_to_int(scid))
        for item in await self._raw_channels():
            if str(item.get("chan_id")) == wanted:
                return _parse("listchannels", _split_channel_point, item)
        raise NodeRequestError(f"unknown channel {scid}: not an open channel of this node")

    async def _our_channels(self, *scids: str) -> list[dict[str, Any]]:
        """The listchannels entries of `scids`, in that order; unknown ones are refused."""
        by_id = {str(item.get("chan_id")): item for item in await self._raw_channels()}
        found = []
        for scid in scids:
            item = by_id.get(str(scid_to_int(scid)))
            if item is None:
                raise NodeRequestError(f"unknown channel {scid}: not an open channel of this node")
            found.append(item)
        return found

    async def _send_payment(self, body: dict[str, Any], payment_hash: str) -> dict[str, Any]:
        """POST /v2/router/send and read its stream of updates up to the final one.

        Once the request has reached LND the payment may be under way, so a failure to read
        its outcome is reported as not retryable: a retry would pay a second invoice.
        """
        path = "/v2/router/send"
        what = f"POST {path}"
        unknown = f"outcome unknown, check payment {payment_hash}"
        # Pathfinding may take up to timeout_seconds before the first (and, with
        # no_inflight_updates, only) line arrives.
        timeout = httpx.Timeout(self._timeout, read=REBALANCE_TIMEOUT_S + self._timeout)
        with _stream_errors(what, unknown):
            async with self._client.stream("POST", path, json=body, timeout=timeout) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    raise _http_error(what, resp)
                async for line in resp.aiter_lines():
                    if not line.strip():
                        continue
                    update = _parse("sendpaymentv2", _payment_update, line, payment_hash)
                    if update["status"] in FINAL_PAYMENT_STATUSES:
                        return update
        raise NodeRequestError(
            f"unexpected response from LND: {what} stream ended without a final status; {unknown}"
        )

    async def _close_stream(self, path: str, scid: str) -> tuple[str, str]:
        """DELETE `path` and read CloseChannel's stream up to the first update carrying a
        closing txid: ("close_pending" | "chan_close", txid in display order)."""
        what = f"DELETE {path}"
        unknown = f"outcome unknown, check LND's pending channels for {scid}"
        # No byte arrives before close_pending: the read timeout covers the negotiation;
        # the overall deadline also bounds a stream that trickles other updates.
        timeout = httpx.Timeout(self._timeout, read=CLOSE_TIMEOUT_S)
        deadline = CLOSE_TIMEOUT_S + self._timeout

        async def first_txid() -> tuple[str, str]:
            async with self._client.stream(
                "DELETE", path, params={"force": "false"}, timeout=timeout
            ) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    raise _http_error(what, resp)
                async for line in resp.aiter_lines():
                    if not line.strip():
                        continue
                    update = _parse("closechannel", _close_update, line, what)
                    if update is not None:
                        return update  # leaving the block drops the connection
            raise NodeRequestError(
                f"unexpected response from LND: {what} stream ended without a closing "
                f"transaction; {unknown}"
            )

        try:
            with _stream_errors(what, unknown):
                # wait_for, not asyncio.timeout: Python 3.10 is supported
                return await asyncio.wait_for(first_txid(), deadline)
        except asyncio.TimeoutError as exc:  # the overall deadline (3.10: not TimeoutError)
            raise NodeUnavailable(
                f"LND {what} gave no closing transaction within {deadline:g}s: {unknown}",
                transient=False,
            ) from exc

    async def _edge_policies(self, chan_id: int, ours: str) -> _PolicyPair:
        """(our policy, peer's policy) from LND's graph edge of the channel."""
        data = await self._call("GET", f"/v1/graph/edge/{chan_id}")
        return _parse("getchaninfo", _pick_sides, data, ours)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
    ) -> Any:
        what = f"{method} {path}"
        try:
            resp = await self._client.request(
                method, path, params=params, json=json_body, timeout=self._timeout
            )
        except httpx.TimeoutException as exc:
            raise NodeUnavailable(f"LND {what} timed out after {self._timeout:g}s") from exc
        except httpx.TransportError as exc:
            raise NodeUnavailable(f"LND {what} unreachable: {exc}") from exc
        except httpx.RequestError as exc:  # undecodable body, redirect loops
            raise NodeRequestError(f"unexpected response from LND: {what}: {exc}") from exc
        if resp.status_code >= 400:
            raise _http_error(what, resp)
        try:
            return resp.json()
        except ValueError as exc:
            raise NodeRequestError(
                f"unexpected response from LND: {what} returned invalid JSON"
            ) from exc


_PolicyPair = tuple[RoutingPolicy | None, RoutingPolicy | None]


async def _gather_or_cancel(coros: Iterable[Awaitable[T]]) -> list[T]:
    """gather() that cancels the siblings on the first failure instead of leaking them."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


# ----------------------------------------------------------------------- errors


def _http_error(what: str, resp: httpx.Response) -> Exception:
    code, message = _lnd_error(resp)
    status = resp.status_code
    if message is not None:
        text = f"LND {what} failed: {message} (code {code}, HTTP {status})"
        lowered = message.lower()
        if code in TRANSIENT_GRPC_CODES or any(m in lowered for m in TRANSIENT_MESSAGES):
            return NodeUnavailable(text)
        return _LndRefusedError(text)
    if status >= 500:
        return NodeUnavailable(f"LND {what} failed with HTTP {status}")
    snippet = resp.text[:200].strip()
    return NodeRequestError(f"LND {what} rejected with HTTP {status}: {snippet}")


def _lnd_error(resp: httpx.Response) -> tuple[int | None, str | None]:
    """The gRPC status in an LND error body: {"code", "message"}, maybe under "error"."""
    try:
        body = resp.json()
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    inner = body.get("error")
    if isinstance(inner, dict):
        body = inner
    message = body.get("message")
    if not isinstance(message, str) or not message:
        message = inner if isinstance(inner, str) and inner else None
    code = body.get("code")
    return (code if isinstance(code, int) else None), message


# ---------------------------------------------------------------------- parsing


def _parse(what: str, fn: Callable[..., T], *args: Any) -> T:
    try:
        return fn(*args)
    except (_MalformedError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise NodeRequestError(f"unexpected response from LND: {what}: {exc!r}") from exc


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _MalformedError(f"{key} is not an integer: {value!r}")
    return int(value)


def _opt_int(obj: dict[str, Any], key: str) -> int | None:
    return None if obj.get(key) is None else _int(obj, key)


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise _MalformedError(f"{key} is not a string: {value!r}")
    return value


def _bool(obj: dict[str, Any], key: str) -> bool:
    value = obj[key]
    if not isinstance(value, bool):
        raise _MalformedError(f"{key} is not a boolean: {value!r}")
    return value


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _MalformedError(f"{what} is not an object: {type(value).__name__}")
    return value


def _list(obj: dict[str, Any], key: str) -> list[Any]:
    value = obj[key]
    if value is None:  # protojson never does this, proxies might
        return []
    if not isinstance(value, list):
        raise _MalformedError(f"{key} is not a list")
    return value


def _scid(channel_id: str) -> str:
    try:
        return normalize_channel_id(channel_id)
    except ValueError as exc:
        raise NodeRequestError(str(exc)) from exc


def _node_info(data: Any) -> NodeInfo:
    data = _obj(data, "getinfo")
    chains = _list(data, "chains")
    return NodeInfo(
        pubkey=_str(data, "identity_pubkey"),
        alias=_str(data, "alias"),
        block_height=_int(data, "block_height"),
        num_active_channels=_int(data, "num_active_channels"),
        num_peers=_int(data, "num_peers"),
        synced_to_chain=_bool(data, "synced_to_chain"),
        version=_str(data, "version"),
        network=_str(_obj(chains[0], "chain"), "network") if chains else "",
    )


def _channel_list(data: Any) -> list[dict[str, Any]]:
    items = _list(_obj(data, "listchannels"), "channels")
    return [_obj(item, "channel") for item in items]


def _channel(item: dict[str, Any], policies: _PolicyPair) -> Channel:
    alias = str(item.get("peer_alias") or "")
    if alias.startswith("unable to lookup"):  # LND's text when the peer has no node ann.
        alias = ""
    return Channel(
        channel_id=scid_from_int(_int(item, "chan_id")),
        native_id=_str(item, "chan_id"),
        channel_point=_str(item, "channel_point"),
        peer_id=_str(item, "remote_pubkey"),
        peer_alias=alias,
        capacity_sat=_int(item, "capacity"),
        local_balance_msat=_int(item, "local_balance") * 1000,
        remote_balance_msat=_int(item, "remote_balance") * 1000,
        active=_bool(item, "active"),
        private=_bool(item, "private"),
        local_policy=policies[0],
        remote_policy=policies[1],
    )


def _split_channel_point(item: dict[str, Any]) -> tuple[str, int]:
    txid, sep, vout = _str(item, "channel_point").rpartition(":")
    if not sep or len(txid) != 64 or not vout.isdigit():
        raise _MalformedError(f"bad channel_point {item['channel_point']!r}")
    return txid, int(vout)


def _policy(value: Any) -> RoutingPolicy | None:
    if value is None:
        return None
    p = _obj(value, "routing policy")
    return RoutingPolicy(
        base_fee_msat=_int(p, "fee_base_msat"),
        fee_rate_ppm=_int(p, "fee_rate_milli_msat"),  # milli-msat per sat == ppm
        cltv_delta=_int(p, "time_lock_delta"),
        htlc_min_msat=_int(p, "min_htlc"),
        htlc_max_msat=_int(p, "max_htlc_msat"),
        # Inbound fees exist since LND 0.18; older nodes omit the fields.
        inbound_base_fee_msat=_opt_int(p, "inbound_fee_base_msat"),
        inbound_fee_rate_ppm=_opt_int(p, "inbound_fee_rate_milli_msat"),
        disabled=bool(p.get("disabled", False)),
    )


def _pick_sides(data: Any, ours: str) -> _PolicyPair:
    edge = _obj(data, "channel edge")
    node1, node2 = _str(edge, "node1_pub"), _str(edge, "node2_pub")
    p1, p2 = _policy(edge.get("node1_policy")), _policy(edge.get("node2_policy"))
    if node1 == ours:
        return p1, p2
    if node2 == ours:
        return p2, p1
    raise NodeRequestError(f"channel {edge.get('channel_id')} is not one of ours")


def _forward_events(data: Any, cursor: int) -> tuple[list[ForwardEvent], int]:
    data = _obj(data, "forwardinghistory")
    raw = _list(data, "forwarding_events")
    events = [_forward(_obj(e, "event"), cursor + i + 1) for i, e in enumerate(raw)]
    return events, _int(data, "last_offset_index")


def _forward(e: dict[str, Any], index: int) -> ForwardEvent:
    ts_ns = _opt_int(e, "timestamp_ns") or _int(e, "timestamp") * 1_000_000_000
    return ForwardEvent(
        index=index,
        timestamp_ns=ts_ns,
        chan_in=scid_from_int(_int(e, "chan_id_in")),
        chan_out=scid_from_int(_int(e, "chan_id_out")),
        amt_in_msat=_int(e, "amt_in_msat"),
        amt_out_msat=_int(e, "amt_out_msat"),
        fee_msat=_int(e, "fee_msat"),
    )


def _pubkey_b64(item: dict[str, Any]) -> str:
    """The channel peer's pubkey as protojson bytes: standard base64 of the 33 bytes."""
    raw = bytes.fromhex(_str(item, "remote_pubkey"))
    if len(raw) != 33:
        raise _MalformedError(f"remote_pubkey is not 33 bytes: {item['remote_pubkey']!r}")
    return base64.b64encode(raw).decode()


def _added_invoice(data: Any) -> tuple[str, str]:
    """(payment_request, payment hash in hex) from AddInvoice; r_hash is base64 bytes."""
    data = _obj(data, "addinvoice")
    r_hash = base64.b64decode(_str(data, "r_hash"), validate=True)
    if len(r_hash) != 32:
        raise _MalformedError(f"r_hash is not 32 bytes: {data['r_hash']!r}")
    payment_request = _str(data, "payment_request")
    if not payment_request:
        raise _MalformedError("empty payment_request")
    return payment_request, r_hash.hex()


def _payment_update(line: str, payment_hash: str) -> dict[str, Any]:
    """One line of the SendPaymentV2 stream: {"result": Payment} or {"error": Status}."""
    chunk = _obj(json.loads(line), "stream chunk")
    error = chunk.get("error")
    if error:
        if isinstance(error, dict):
            message, code = error.get("message"), error.get("code")
        else:
            message, code = error, None
        raise NodeRequestError(
            f"LND POST /v2/router/send failed: {message} (code {code}); payment {payment_hash}"
        )
    payment = _obj(chunk["result"], "payment")
    _str(payment, "status")
    return payment


def _close_update(line: str, what: str) -> tuple[str, str] | None:
    """One line of the CloseChannel stream: {"result": CloseStatusUpdate} or {"error":
    Status}. The update is a oneof: close_pending (PendingUpdate), chan_close
    (ChannelCloseUpdate) or close_instant (only with no_wait, no txid: keep reading)."""
    chunk = _obj(json.loads(line), "stream chunk")
    error = chunk.get("error")
    if error:
        if isinstance(error, dict):
            message, code = error.get("message"), error.get("code")
        else:
            message, code = error, None
        raise NodeRequestError(f"LND {what} failed: {message} (code {code})")
    update = _obj(chunk["result"], "close status update")
    pending = update.get("close_pending")
    if pending is not None:
        return "close_pending", _txid_from_bytes(_obj(pending, "close_pending"), "txid")
    done = update.get("chan_close")
    if done is not None:  # LND sends it once the closing transaction has confirmed
        return "chan_close", _txid_from_bytes(_obj(done, "chan_close"), "closing_txid")
    return None


def _txid_from_bytes(obj: dict[str, Any], key: str) -> str:
    """A txid LND sends as bytes (protojson: standard base64) in chainhash.Hash order, the
    reverse of the hex shown by explorers and in channel points."""
    raw = base64.b64decode(_str(obj, key), validate=True)
    if len(raw) != 32:
        raise _MalformedError(f"{key} is not 32 bytes: {obj[key]!r}")
    return raw[::-1].hex()


def _policy_request(txid: str, vout: int, p: RoutingPolicy) -> dict[str, Any]:
    body: dict[str, Any] = {
        "chan_point": {"funding_txid_str": txid, "output_index": vout},
        "base_fee_msat": str(p.base_fee_msat),
        "fee_rate_ppm": p.fee_rate_ppm,
        "time_lock_delta": p.cltv_delta,
        "min_htlc_msat": str(p.htlc_min_msat),
        "min_htlc_msat_specified": True,
        "max_htlc_msat": str(p.htlc_max_msat),
    }
    # Without inbound_fee LND keeps the previous inbound fee, which is what None means.
    if p.inbound_base_fee_msat is not None or p.inbound_fee_rate_ppm is not None:
        body["inbound_fee"] = {
            "base_fee_msat": p.inbound_base_fee_msat or 0,
            "fee_rate_ppm": p.inbound_fee_rate_ppm or 0,
        }
    return body


def _failed_updates(data: Any) -> list[str]:
    failures = _list(_obj(data, "updatechanpolicy"), "failed_updates")
    return [
        f"{f.get('reason', 'UPDATE_FAILURE_UNKNOWN')}: {f.get('update_error', '')}".strip()
        for f in (_obj(x, "failed update") for x in failures)
    ]


def _graph(data: Any) -> NetworkGraph:
    data = _obj(data, "describegraph")
    nodes = [
        GraphNode(
            pubkey=_str(n, "pub_key"),
            alias=n.get("alias") or "",
            last_update=_opt_int(n, "last_update") or 0,
        )
        for n in (_obj(x, "node") for x in _list(data, "nodes"))
    ]
    edges = [_graph_edge(_obj(x, "edge")) for x in _list(data, "edges")]
    return NetworkGraph(nodes=nodes, edges=edges)


def _graph_edge(e: dict[str, Any]) -> GraphEdge:
    return GraphEdge(
        channel_id=scid_from_int(_int(e, "channel_id")),
        node1=_str(e, "node1_pub"),
        node2=_str(e, "node2_pub"),
        capacity_sat=_int(e, "capacity"),
        node1_policy=_policy(e.get("node1_policy")),
        node2_policy=_policy(e.get("node2_policy")),
        last_update=_opt_int(e, "last_update") or 0,
    )
