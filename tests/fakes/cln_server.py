"""A fake lightningd: Core Lightning's JSON-RPC 2.0 over a real Unix domain socket.

Speaks the same framing as lightningd, so pyln-client's `LightningRpc` (and LNbits'
`CoreLightningWallet` on top of it) connect to it unchanged: the client writes bare JSON
objects, the server answers each with a JSON object followed by "\\n\\n". Shapes follow
Core Lightning's doc/schemas/*.json (v24.02+: msat fields are plain integers).

State lives in memory (`Scenario`); `setchannel` really changes it and tests can resolve
or add forwards. `close` behaves like lightningd's: the channel goes to
CHANNELD_SHUTTING_DOWN at once and the command answers only when the closing transaction
is broadcast; with the peer offline it waits for the peer to reconnect (or, with a
non-zero `unilateraltimeout`, closes unilaterally when that expires). `getroutes` and
the askrene layer commands answer as the askrene plugin does, gated by
`Scenario.version` (maxparts from v25.09, path fields renamed in v26.06 and v27.06,
getroute gone in v27.03) and `Scenario.askrene`. Faults (delay, RPC error, malformed
answer, dropped connection) are injected per method. Stdlib only, so it also runs as a
script:

    python tests/fakes/cln_server.py --socket /tmp/cln/lightning-rpc
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import heapq
import json
import os
import re
import signal
import socketserver
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

JSONRPC2_INVALID_PARAMS = -32602
JSONRPC2_METHOD_NOT_FOUND = -32601
LIGHTNINGD = -1
INVOICE_WAIT_TIMED_OUT = 904
INVOICE_LABEL_ALREADY_EXISTS = 900
INVOICE_NOT_FOUND = 905
INVOICE_STATUS_UNEXPECTED = 906
PAY_TRY_OTHER_ROUTE = 204
PAY_ROUTE_NOT_FOUND = 205
PAY_ROUTE_TOO_EXPENSIVE = 206
PAY_NO_SUCH_PAYMENT = 208
DEFAULT_UNILATERAL_TIMEOUT = 48 * 3600
# channel_state_can_close() in lightningd/closing_control.c
CLOSABLE_STATES = {
    "CHANNELD_NORMAL",
    "CHANNELD_AWAITING_SPLICE",
    "CHANNELD_AWAITING_LOCKIN",
    "DUALOPEND_AWAITING_LOCKIN",
    "CLOSINGD_SIGEXCHANGE",
    "CHANNELD_SHUTTING_DOWN",
}
ASKRENE_METHODS = {
    "getroutes",
    "askrene-create-layer",
    "askrene-disable-node",
    "askrene-remove-layer",
    "askrene-listlayers",
}
DEFAULT_CLTV_FINAL = 18
MAX_REQUEST_BYTES = 1 << 20
SETCHANNEL_STATES = {
    "CHANNELD_NORMAL",
    "CHANNELD_AWAITING_SPLICE",
    "CHANNELD_AWAITING_LOCKIN",
}
GOSSIP_STATES = {"CHANNELD_NORMAL", "CHANNELD_AWAITING_SPLICE"}

# Fixed pubkeys so BOLT #7 ordering is known: A < US < B.
US = "03" + "66" * 32
PEER_A = "02" + "aa" * 32
PEER_B = "03" + "bb" * 32
PEER_C = "02" + "cc" * 32
PEER_D = "03" + "dd" * 32
PEER_E = "02" + "ee" * 32
NODE_X = "02" + "11" * 32
NODE_Y = "03" + "22" * 32
NODE_Z = "02" + "33" * 32
T0 = 1_738_000_000


class RpcFailureError(Exception):
    """An error answer, as lightningd sends it: {"code": ..., "message": ...}."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


# -- scenario --------------------------------------------------------------------------


@dataclass
class FakeChannel:
    peer_id: str
    state: str
    total_msat: int
    to_us_msat: int
    funding_txid: str
    funding_outnum: int = 0
    short_channel_id: str | None = None
    peer_connected: bool = True
    private: bool = False
    opener: str = "local"
    fee_base_msat: int = 1000
    fee_ppm: int = 100
    htlc_min_msat: int = 0
    htlc_max_msat: int = 0  # 0 = 99% of capacity, set in __post_init__
    their_htlc_minimum_msat: int = 0
    remote_update: dict | None = None  # peer's channel_update, BOLT #7 field names
    ignore_fee_limits: bool = False
    close_negotiation_s: float = 0.0  # how long the peer takes to agree on a close

    def __post_init__(self) -> None:
        if not self.htlc_max_msat:
            self.htlc_max_msat = self.max_possible_send()

    def max_possible_send(self) -> int:
        return self.total_msat * 99 // 100

    @property
    def channel_id(self) -> str:
        """BOLT #2: funding txid (internal byte order) XOR the output index."""
        raw = bytearray(bytes.fromhex(self.funding_txid)[::-1])
        raw[-2] ^= self.funding_outnum >> 8
        raw[-1] ^= self.funding_outnum & 0xFF
        return raw.hex()


@dataclass
class FakeNode:
    node_id: str
    alias: str | None = None  # None: no node_announcement seen
    last_timestamp: int = T0


@dataclass
class Scenario:
    node_id: str = US
    alias: str = "DAZFAKE"
    version: str = "v25.12"
    network: str = "regtest"
    blockheight: int = 800_500
    cltv_delta: int = 34  # node-wide: CLN has no per-channel CLTV delta
    warnings: dict[str, str] = field(default_factory=dict)
    legacy: bool = False  # answer like pre-v24.02 (no `updates` in listpeerchannels)
    channels: list[FakeChannel] = field(default_factory=list)
    forwards: list[dict] = field(default_factory=list)
    nodes: list[FakeNode] = field(default_factory=list)
    gossip: list[dict] = field(default_factory=list)  # listchannels entries not ours
    next_updated_index: int = 1
    invoices: dict[str, dict] = field(default_factory=dict)  # by label
    payments: dict[str, dict] = field(default_factory=dict)  # sendpay attempts by hash
    # waitsendpay answers this error ({"code", "message"}) instead of completing
    pay_failure: dict | None = None
    askrene: bool = True  # False: the askrene plugin is disabled (no getroutes)


def version_tuple(version: str) -> tuple[int, int]:
    """ "v25.09.1" or "v24.11-modded" -> (25, 9)."""
    match = re.match(r"v?(\d+)\.(\d+)", version)
    if match is None:
        raise ValueError(f"not a Core Lightning version: {version!r}")
    return int(match.group(1)), int(match.group(2))


# Parameters a method only accepts from some version on.
PARAMS_ADDED = {("getroutes", "maxdelay"): (25, 2), ("getroutes", "maxparts"): (25, 9)}


def _txid(tag: str) -> str:
    return (tag.encode().hex() * 64)[:64]


def _remote(base: int, ppm: int, cltv: int, hmin: int, hmax: int) -> dict:
    return {
        "htlc_minimum_msat": hmin,
        "htlc_maximum_msat": hmax,
        "cltv_expiry_delta": cltv,
        "fee_base_msat": base,
        "fee_proportional_millionths": ppm,
    }


def default_channels() -> list[FakeChannel]:
    return [
        FakeChannel(
            peer_id=PEER_A,
            state="CHANNELD_NORMAL",
            short_channel_id="800000x1x0",
            funding_txid=_txid("a1"),
            total_msat=5_000_000_000,
            to_us_msat=3_000_000_000,
            fee_base_msat=1000,
            fee_ppm=100,
            htlc_min_msat=1000,
            their_htlc_minimum_msat=1,
            remote_update=_remote(500, 250, 40, 1, 4_950_000_000),
        ),
        FakeChannel(
            peer_id=PEER_B,
            state="CHANNELD_NORMAL",
            short_channel_id="800100x2x1",
            funding_txid=_txid("b2"),
            funding_outnum=1,
            total_msat=2_000_000_000,
            to_us_msat=500_000_000,
            peer_connected=False,
            opener="remote",
            fee_base_msat=0,
            fee_ppm=500,
            remote_update=_remote(1000, 1, 144, 1000, 1_980_000_000),
        ),
        FakeChannel(
            peer_id=PEER_C,
            state="CHANNELD_NORMAL",
            short_channel_id="800200x3x0",
            funding_txid=_txid("c3"),
            total_msat=1_000_000_000,
            to_us_msat=1_000_000_000,
            private=True,
        ),
        FakeChannel(
            peer_id=PEER_E,
            state="CHANNELD_AWAITING_SPLICE",
            short_channel_id="800300x4x0",
            funding_txid=_txid("e4"),
            total_msat=3_000_000_000,
            to_us_msat=1_500_000_000,
            remote_update=_remote(0, 0, 80, 1, 2_970_000_000),
        ),
        FakeChannel(  # still opening: no short_channel_id yet
            peer_id=PEER_D,
            state="CHANNELD_AWAITING_LOCKIN",
            funding_txid=_txid("d5"),
            total_msat=1_000_000_000,
            to_us_msat=1_000_000_000,
        ),
        FakeChannel(  # closed, still listed by listpeerchannels
            peer_id=PEER_A,
            state="ONCHAIN",
            short_channel_id="700000x9x1",
            funding_txid=_txid("a6"),
            funding_outnum=1,
            total_msat=1_000_000_000,
            to_us_msat=0,
            peer_connected=True,
        ),
    ]


def _forward(index: int, status: str, chan_in: str, chan_out: str | None, **kw: Any) -> dict:
    """One forwards row; `out_msat` None means CLN failed before picking an amount."""
    row: dict[str, Any] = {
        "created_index": index,
        "in_channel": chan_in,
        "in_htlc_id": index,
        "in_msat": kw["in_msat"],
        "status": status,
        "style": "tlv",
        "received_time": T0 + index * 60 + 0.123,
    }
    if chan_out is not None:
        row["out_channel"] = chan_out
        row["out_htlc_id"] = index + 100
    if kw.get("out_msat") is not None:
        row["out_msat"] = kw["out_msat"]
        row["fee_msat"] = kw["in_msat"] - kw["out_msat"]
    if "failcode" in kw:
        row["failcode"], row["failreason"] = kw["failcode"], kw["failreason"]
    return row


def default_forwards() -> list[dict]:
    a, b, e = "800000x1x0", "800100x2x1", "800300x4x0"
    temp_fail = {"failcode": 4103, "failreason": "WIRE_TEMPORARY_CHANNEL_FAILURE"}
    return [
        _forward(1, "settled", a, b, in_msat=1_000_500, out_msat=1_000_000),
        _forward(2, "failed", a, b, in_msat=2_001_000, out_msat=2_000_000, **temp_fail),
        _forward(
            3,
            "local_failed",
            b,
            None,
            in_msat=10_001,
            failcode=16394,
            failreason="WIRE_UNKNOWN_NEXT_PEER",
        ),
        # created_index 4 was deleted (autoclean): indexes may have gaps
        _forward(5, "local_failed", e, a, in_msat=5_000, **temp_fail),
        _forward(6, "settled", b, a, in_msat=300_250, out_msat=300_000),
        _forward(7, "offered", a, e, in_msat=700_070, out_msat=700_000),
        _forward(8, "settled", e, a, in_msat=800_008, out_msat=800_000),
        _forward(9, "settled", a, b, in_msat=900_450, out_msat=900_000),
    ]


def default_nodes() -> list[FakeNode]:
    return [
        FakeNode(US, "DAZFAKE"),
        FakeNode(PEER_A, "ALPHA"),
        FakeNode(PEER_B, "BRAVO"),
        FakeNode(PEER_E, "ECHO"),
        FakeNode(NODE_X, "XRAY"),
        FakeNode(NODE_Y, None),  # known from channels only: no alias
        FakeNode(NODE_Z, "ZULU"),
    ]


def _gossip(src: str, dst: str, scid: str, amount_msat: int, **kw: Any) -> dict:
    direction = 0 if src < dst else 1
    active = kw.get("active", True)
    return {
        "source": src,
        "destination": dst,
        "short_channel_id": scid,
        "direction": direction,
        "public": True,
        "amount_msat": amount_msat,
        "message_flags": 1,
        "channel_flags": direction | (0 if active else 2),
        "active": active,
        "last_update": kw.get("last_update", T0),
        "base_fee_millisatoshi": kw.get("base", 1000),
        "fee_per_millionth": kw.get("ppm", 1),
        "delay": kw.get("delay", 40),
        "htlc_minimum_msat": kw.get("hmin", 1000),
        "htlc_maximum_msat": kw.get("hmax", amount_msat * 99 // 100),
        "features": "",
    }


def default_gossip() -> list[dict]:
    xy, yz, xa = "750000x1x0", "750100x7x2", "760000x3x1"
    return [
        _gossip(NODE_X, NODE_Y, xy, 4_000_000_000, base=0, ppm=10, last_update=T0 + 5),
        _gossip(NODE_Y, NODE_X, xy, 4_000_000_000, base=1, ppm=20, last_update=T0 + 9),
        _gossip(NODE_Y, NODE_Z, yz, 1_000_000_000, ppm=300),  # one direction known
        _gossip(NODE_X, PEER_A, xa, 2_000_000_000, ppm=50),
        _gossip(PEER_A, NODE_X, xa, 2_000_000_000, ppm=70, active=False),
    ]


def default_scenario() -> Scenario:
    scenario = Scenario(
        channels=default_channels(),
        forwards=default_forwards(),
        nodes=default_nodes(),
        gossip=default_gossip(),
    )
    for row in scenario.forwards:
        if row["status"] != "offered":
            _mark_updated(scenario, row)
    return scenario


def _mark_updated(scenario: Scenario, row: dict) -> None:
    row["updated_index"] = scenario.next_updated_index
    scenario.next_updated_index += 1
    if row["status"] in ("settled", "failed"):
        row["resolved_time"] = row["received_time"] + 1.5


# -- rendering (CLN response shapes) -------------------------------------------------------


def render_peer_channel(ch: FakeChannel, scenario: Scenario) -> dict:
    out: dict[str, Any] = {"peer_id": ch.peer_id, "peer_connected": ch.peer_connected}
    if ch.peer_connected:
        out["reestablished"] = True
    out["channel_type"] = {
        "bits": [12, 22],
        "names": ["static_remotekey/even", "anchors/even"],
    }
    if ch.ignore_fee_limits:
        out["ignore_fee_limits"] = True
    if not scenario.legacy:
        out["updates"] = {"local": _local_update(ch, scenario)}
        if ch.remote_update is not None:
            out["updates"]["remote"] = dict(ch.remote_update)
        out["last_stable_connection"] = T0
    out.update(
        state=ch.state,
        lost_state=False,
        feerate={"perkw": 3755, "perkb": 15020},
        owner="channeld" if ch.state in SETCHANNEL_STATES else "onchaind",
    )
    if ch.short_channel_id:
        out["short_channel_id"] = ch.short_channel_id
        out["direction"] = 0 if scenario.node_id < ch.peer_id else 1
    out.update(_channel_ids(ch))
    out.update(_channel_money(ch))
    out["state_changes"] = []
    out["status"] = [f"{ch.state}:Channel ready for use."]
    out["htlcs"] = []
    return out


def _local_update(ch: FakeChannel, scenario: Scenario) -> dict:
    return {
        "htlc_minimum_msat": ch.htlc_min_msat,
        "htlc_maximum_msat": ch.htlc_max_msat,
        "cltv_expiry_delta": scenario.cltv_delta,
        "fee_base_msat": ch.fee_base_msat,
        "fee_proportional_millionths": ch.fee_ppm,
    }


def _channel_ids(ch: FakeChannel) -> dict:
    return {
        "channel_id": ch.channel_id,
        "funding_txid": ch.funding_txid,
        "funding_outnum": ch.funding_outnum,
        "private": ch.private,
        "opener": ch.opener,
        "features": ["option_static_remotekey", "option_anchors"],
        "funding": {
            "local_funds_msat": ch.total_msat if ch.opener == "local" else 0,
            "remote_funds_msat": ch.total_msat if ch.opener == "remote" else 0,
            "pushed_msat": 0,
        },
    }


def _channel_money(ch: FakeChannel) -> dict:
    reserve = ch.total_msat // 100
    return {
        "to_us_msat": ch.to_us_msat,
        "min_to_us_msat": 0,
        "max_to_us_msat": ch.to_us_msat,
        "total_msat": ch.total_msat,
        "fee_base_msat": ch.fee_base_msat,
        "fee_proportional_millionths": ch.fee_ppm,
        "dust_limit_msat": 546_000,
        "their_max_htlc_value_in_flight_msat": 18446744073709551615,
        "our_max_htlc_value_in_flight_msat": 18446744073709551615,
        "their_reserve_msat": reserve,
        "our_reserve_msat": reserve,
        "spendable_msat": max(0, ch.to_us_msat - reserve),
        "receivable_msat": max(0, ch.total_msat - ch.to_us_msat - reserve),
        "minimum_htlc_in_msat": 0,
        "minimum_htlc_out_msat": ch.htlc_min_msat,
        "maximum_htlc_out_msat": ch.htlc_max_msat,
        "their_to_self_delay": 144,
        "our_to_self_delay": 144,
        "max_accepted_htlcs": 483,
    }


def our_gossip(scenario: Scenario) -> list[dict]:
    """listchannels entries for our public channels, from live channel state."""
    entries = []
    for ch in scenario.channels:
        if ch.private or ch.state not in GOSSIP_STATES or not ch.short_channel_id:
            continue
        scid, cap = ch.short_channel_id, ch.total_msat
        entries.append(
            _gossip(
                scenario.node_id,
                ch.peer_id,
                scid,
                cap,
                base=ch.fee_base_msat,
                ppm=ch.fee_ppm,
                delay=scenario.cltv_delta,
                hmin=ch.htlc_min_msat,
                hmax=ch.htlc_max_msat,
                # since v24.02 a disconnect no longer forces `active` false here
            )
        )
        if ch.remote_update is not None:
            ru = ch.remote_update
            entries.append(
                _gossip(
                    ch.peer_id,
                    scenario.node_id,
                    scid,
                    cap,
                    base=ru["fee_base_msat"],
                    ppm=ru["fee_proportional_millionths"],
                    delay=ru["cltv_expiry_delta"],
                    hmin=ru["htlc_minimum_msat"],
                    hmax=ru["htlc_maximum_msat"],
                )
            )
    return entries


def render_node(node: FakeNode) -> dict:
    if node.alias is None:
        return {"nodeid": node.node_id}
    return {
        "nodeid": node.node_id,
        "alias": node.alias,
        "color": node.node_id[2:8],
        "last_timestamp": node.last_timestamp,
        "features": "808898882a8a59a1",
        "addresses": [],
    }


def apply_filter(value: Any, spec: Any) -> Any:
    """lightningd's `filter`: keep only members named with true; a one-element list
    filters every array item."""
    if spec is True:
        return value
    if isinstance(spec, dict) and isinstance(value, dict):
        return {k: apply_filter(value[k], s) for k, s in spec.items() if k in value}
    if isinstance(spec, list) and spec and isinstance(value, list):
        return [apply_filter(item, spec[0]) for item in value]
    return value


# -- method handlers -------------------------------------------------------------------

PARAMS: dict[str, list[str]] = {
    "getinfo": [],
    "listpeerchannels": ["id", "short_channel_id", "channel_id"],
    "listforwards": ["status", "in_channel", "out_channel", "index", "start", "limit"],
    "listchannels": ["short_channel_id", "source", "destination"],
    "listnodes": ["id"],
    "setchannel": [
        "id",
        "feebase",
        "feeppm",
        "htlcmin",
        "htlcmax",
        "enforcedelay",
        "ignorefeelimits",
    ],
    "listconfigs": ["config"],
    "help": ["command"],
    "listinvoices": [
        "label",
        "invstring",
        "payment_hash",
        "offer_id",
        "index",
        "start",
        "limit",
    ],
    "listpays": ["bolt11", "payment_hash", "status", "index", "start", "limit"],
    "listfunds": ["spent"],
    "waitanyinvoice": ["lastpay_index", "timeout"],
    "notifications": ["enable"],
    "invoice": [
        "amount_msat",
        "label",
        "description",
        "expiry",
        "fallbacks",
        "preimage",
        "exposeprivatechannels",
        "cltv",
        "deschashonly",
    ],
    "delinvoice": ["label", "status", "desconly"],
    "close": [
        "id",
        "unilateraltimeout",
        "destination",
        "fee_negotiation_step",
        "wrong_funding",
        "force_lease_closed",
        "feerange",
    ],
    "askrene-create-layer": ["layer", "persistent"],
    "askrene-disable-node": ["layer", "node"],
    "askrene-remove-layer": ["layer"],
    "askrene-listlayers": ["layer"],
    "getroutes": [
        "source",
        "destination",
        "amount_msat",
        "layers",
        "maxfee_msat",
        "final_cltv",
        "maxdelay",
        "maxparts",
    ],
    "getroute": [
        "id",
        "amount_msat",
        "riskfactor",
        "cltv",
        "fromid",
        "fuzzpercent",
        "exclude",
        "maxhops",
    ],
    "sendpay": [
        "route",
        "payment_hash",
        "label",
        "amount_msat",
        "bolt11",
        "payment_secret",
        "partid",
        "localinvreqid",
        "groupid",
        "payment_metadata",
    ],
    "waitsendpay": ["payment_hash", "timeout", "partid", "groupid"],
}

HELP_USAGE = {
    "invoice": "invoice amount_msat label description [expiry] [fallbacks] [preimage] "
    "[exposeprivatechannels] [cltv] [deschashonly]",
}


def parse_msat_param(name: str, value: Any) -> int:
    """msat parameters take an integer or "N", "Nmsat", "Nsat" text."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        for suffix, factor in (("msat", 1), ("sat", 1000), ("", 1)):
            digits = value.removesuffix(suffix) if suffix else value
            if value.endswith(suffix) and digits.isdigit():
                return int(digits) * factor
    raise RpcFailureError(
        JSONRPC2_INVALID_PARAMS, f"{name}: should be a millisatoshi amount: invalid token"
    )


def parse_u64_param(name: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise RpcFailureError(JSONRPC2_INVALID_PARAMS, f"{name}: should be an unsigned 64 bit integer")


class Lightningd:
    """The RPC methods over a Scenario. Callers hold `lock` while calling `dispatch`."""

    def __init__(self, scenario: Scenario, socket_path: str, stopped: threading.Event):
        self.scenario = scenario
        self.socket_path = socket_path
        self.stopped = stopped
        self.lock = threading.RLock()
        self.layers: dict[str, dict] = {}  # askrene layers by name

    def knows(self, method: str) -> bool:
        version = version_tuple(self.scenario.version)
        if method in ASKRENE_METHODS:
            return self.scenario.askrene
        if method == "getroute":
            return version < (27, 3)  # deprecated in v26.06, removed in v27.03
        return method in PARAMS

    def dispatch(self, method: str, raw_params: Any) -> Any:
        if not self.knows(method):
            raise RpcFailureError(JSONRPC2_METHOD_NOT_FOUND, f"Unknown command '{method}'")
        params = self._named_params(method, raw_params)
        handler: Callable[[dict], Any] = getattr(self, "rpc_" + method.replace("-", "_"))
        if method in ("waitanyinvoice", "close"):
            return handler(params)  # blocks: must not hold the lock
        with self.lock:
            return copy.deepcopy(handler(params))

    def _named_params(self, method: str, raw: Any) -> dict:
        version = version_tuple(self.scenario.version)
        names = [
            name for name in PARAMS[method] if version >= PARAMS_ADDED.get((method, name), (0, 0))
        ]
        if raw is None:
            return {}
        if isinstance(raw, list):
            if len(raw) > len(names):
                raise RpcFailureError(JSONRPC2_INVALID_PARAMS, "too many parameters")
            return {k: v for k, v in zip(names, raw, strict=False) if v is not None}
        if not isinstance(raw, dict):
            raise RpcFailureError(JSONRPC2_INVALID_PARAMS, "Expected array or object for params")
        for key in raw:
            if key not in names:
                raise RpcFailureError(
                    JSONRPC2_INVALID_PARAMS,
                    f"unknown parameter: {key}, this may be caused by a failure to "
                    "autodetect key=value-style parameters. Please try using the -k "
                    "flag and explicit key=value pairs of parameters.",
                )
        return {k: v for k, v in raw.items() if v is not None}

    # getinfo -----------------------------------------------------------------------

    def rpc_getinfo(self, params: dict) -> dict:
        sc = self.scenario
        states = [ch.state for ch in sc.channels]
        settled = [f for f in sc.forwards if f["status"] == "settled"]
        info = {
            "id": sc.node_id,
            "alias": sc.alias,
            "color": sc.node_id[2:8],
            "num_peers": len({ch.peer_id for ch in sc.channels}),
            "num_pending_channels": states.count("CHANNELD_AWAITING_LOCKIN"),
            "num_active_channels": sum(s in GOSSIP_STATES for s in states),
            "num_inactive_channels": sum(s not in SETCHANNEL_STATES for s in states),
            "address": [],
            "binding": [{"type": "ipv4", "address": "127.0.0.1", "port": 9735}],
            "version": sc.version,
            "blockheight": sc.blockheight,
            "network": sc.network,
            "fees_collected_msat": sum(f["fee_msat"] for f in settled),
            "lightning-dir": os.path.dirname(self.socket_path),
            "our_features": {"init": "08a0000a8a5961", "node": "88a0000a8a5961"},
        }
        info.update(sc.warnings)
        return info

    # channels ----------------------------------------------------------------------

    def rpc_listpeerchannels(self, params: dict) -> dict:
        channels = [
            ch
            for ch in self.scenario.channels
            if params.get("id", ch.peer_id) == ch.peer_id
            and params.get("short_channel_id", ch.short_channel_id) == ch.short_channel_id
            and params.get("channel_id", ch.channel_id) == ch.channel_id
        ]
        return {"channels": [render_peer_channel(ch, self.scenario) for ch in channels]}

    def rpc_listfunds(self, params: dict) -> dict:
        output = {
            "txid": _txid("f0"),
            "output": 0,
            "amount_msat": 250_000_000,
            "scriptpubkey": "0014" + "ab" * 20,
            "address": "bcrt1q4w46h2at4w46h2at4w46h2at4w46h2at3ehcnl",
            "status": "confirmed",
            "blockheight": 700_000,
            "reserved": False,
        }
        return {
            "outputs": [output],
            "channels": [_fund(ch) for ch in self.scenario.channels],
        }

    def rpc_setchannel(self, params: dict) -> dict:
        if "id" not in params:
            raise RpcFailureError(JSONRPC2_INVALID_PARAMS, "missing required parameter: id")
        targets = self._setchannel_targets(str(params["id"]))
        values = {
            name: parse_msat_param(name, params[name])
            for name in ("feebase", "htlcmin", "htlcmax")
            if name in params
        }
        if "feeppm" in params:
            values["feeppm"] = parse_u64_param("feeppm", params["feeppm"])
        if values.get("htlcmax", 1 << 64) < values.get("htlcmin", 0):
            raise RpcFailureError(LIGHTNINGD, "htlcmax cannot be less than htlcmin")
        return {"channels": [_set_channel(ch, values) for ch in targets]}

    def _setchannel_targets(self, ident: str) -> list[FakeChannel]:
        channels = self.scenario.channels
        if ident == "all":
            return [ch for ch in channels if ch.state in SETCHANNEL_STATES]
        if any(ch.peer_id == ident for ch in channels):
            found = [ch for ch in channels if ch.peer_id == ident]
            found = [ch for ch in found if ch.state in SETCHANNEL_STATES]
            if not found:
                raise RpcFailureError(
                    LIGHTNINGD, "Could not find any active channels of peer with that id"
                )
            return found
        by_scid = [ch for ch in channels if ch.short_channel_id == ident]
        by_cid = [ch for ch in channels if ch.channel_id == ident]
        if not by_scid and not by_cid:
            what = "Channel id" if len(ident) == 64 else "Short channel id"
            raise RpcFailureError(
                JSONRPC2_INVALID_PARAMS,
                f"id: {what} not found: invalid token (see logs for details)",
            )
        channel = (by_scid or by_cid)[0]
        if channel.state not in SETCHANNEL_STATES:
            raise RpcFailureError(
                JSONRPC2_INVALID_PARAMS,
                f"id: Channel in state {channel.state}: invalid token (see logs for details)",
            )
        return [channel]

    def rpc_listchannels(self, params: dict) -> dict:
        entries = our_gossip(self.scenario) + self.scenario.gossip
        for key in ("short_channel_id", "source", "destination"):
            if key in params:
                entries = [e for e in entries if e[key] == params[key]]
        return {"channels": entries}

    def rpc_listnodes(self, params: dict) -> dict:
        nodes = [n for n in self.scenario.nodes if params.get("id", n.node_id) == n.node_id]
        return {"nodes": [render_node(n) for n in nodes]}

    def rpc_listconfigs(self, params: dict) -> dict:
        configs = {
            "cltv-delta": {"value_int": self.scenario.cltv_delta, "source": "default"},
            "network": {"value_str": self.scenario.network, "source": "cmdline"},
        }
        if "config" in params:
            name = params["config"]
            if name not in configs:
                raise RpcFailureError(JSONRPC2_INVALID_PARAMS, f"Unknown config option {name}")
            configs = {name: configs[name]}
        return {"configs": configs}

    # forwards ----------------------------------------------------------------------

    def rpc_listforwards(self, params: dict) -> dict:
        index = params.get("index")
        start = parse_u64_param("start", params.get("start", 0))
        limit = params.get("limit")
        if index not in (None, "created", "updated"):
            raise RpcFailureError(JSONRPC2_INVALID_PARAMS, "index: should be created or updated")
        if start and index is None:
            raise RpcFailureError(JSONRPC2_INVALID_PARAMS, "Can only specify {start} with {index}")
        if limit is not None and index is None:
            raise RpcFailureError(JSONRPC2_INVALID_PARAMS, "Can only specify {limit} with {index}")
        if start and ("in_channel" in params or "out_channel" in params):
            raise RpcFailureError(
                JSONRPC2_INVALID_PARAMS, "Cannot use start with in_channel or out_channel"
            )
        rows = [r for r in self.scenario.forwards if _forward_matches(r, params)]
        if index == "updated":
            rows = [r for r in rows if r.get("updated_index", 0) >= start]
            rows.sort(key=lambda r: r["updated_index"])
        else:
            rows = [r for r in rows if r["created_index"] >= start]
            rows.sort(key=lambda r: r["created_index"])
        if limit is not None:
            rows = rows[: parse_u64_param("limit", limit)]
        return {"forwards": rows}

    # LNbits' CoreLightningWallet ------------------------------------------------------

    def rpc_help(self, params: dict) -> dict:
        command = params.get("command")
        if command is None:
            usage = [{"command": HELP_USAGE.get(m, m)} for m in sorted(PARAMS)]
            return {"help": usage}
        if command not in PARAMS and command not in HELP_USAGE:
            raise RpcFailureError(JSONRPC2_METHOD_NOT_FOUND, f"Unknown command {command}")
        usage = HELP_USAGE.get(command) or " ".join([command, *PARAMS[command]])
        return {"help": [{"command": usage}], "format-hint": "simple"}

    def rpc_listinvoices(self, params: dict) -> dict:
        invoices = [
            inv
            for inv in self.scenario.invoices.values()
            if params.get("label", inv["label"]) == inv["label"]
            and params.get("payment_hash", inv["payment_hash"]) == inv["payment_hash"]
        ]
        return {"invoices": [_public_invoice(inv) for inv in invoices]}

    # payments (a self-payment: this node is both payer and payee) --------------------

    def rpc_invoice(self, params: dict) -> dict:
        for name in ("amount_msat", "label", "description"):
            if name not in params:
                raise RpcFailureError(
                    JSONRPC2_INVALID_PARAMS, f"missing required parameter: {name}"
                )
        label = str(params["label"])
        if label in self.scenario.invoices:
            raise RpcFailureError(INVOICE_LABEL_ALREADY_EXISTS, f"Duplicate label '{label}'")
        preimage = hashlib.sha256(f"preimage:{label}".encode()).hexdigest()
        payment_hash = hashlib.sha256(bytes.fromhex(preimage)).hexdigest()
        created_index = len(self.scenario.invoices) + 1
        invoice = {
            "label": label,
            "bolt11": f"lnbcrt{created_index}fake{payment_hash[:16]}",
            "payment_hash": payment_hash,
            "amount_msat": parse_msat_param("amount_msat", params["amount_msat"]),
            "status": "unpaid",
            "description": str(params["description"]),
            "expires_at": T0 + int(params.get("expiry", 604800)),
            "created_index": created_index,
            # not part of listinvoices: what the fake needs to accept a payment
            "_preimage": preimage,
            "_payment_secret": hashlib.sha256(f"secret:{label}".encode()).hexdigest(),
            "_cltv": int(params.get("cltv", DEFAULT_CLTV_FINAL)),
        }
        self.scenario.invoices[label] = invoice
        return {
            "payment_hash": payment_hash,
            "expires_at": invoice["expires_at"],
            "bolt11": invoice["bolt11"],
            "payment_secret": invoice["_payment_secret"],
            "created_index": created_index,
        }

    def rpc_delinvoice(self, params: dict) -> dict:
        for name in ("label", "status"):
            if name not in params:
                raise RpcFailureError(
                    JSONRPC2_INVALID_PARAMS, f"missing required parameter: {name}"
                )
        invoice = self.scenario.invoices.get(str(params["label"]))
        if invoice is None:
            raise RpcFailureError(INVOICE_NOT_FOUND, "Unknown invoice")
        if invoice["status"] != params["status"]:
            raise RpcFailureError(
                INVOICE_STATUS_UNEXPECTED,
                f"Invoice status is {invoice['status']} not {params['status']}",
            )
        del self.scenario.invoices[invoice["label"]]
        return _public_invoice(invoice)

    def rpc_getroute(self, params: dict) -> dict:
        """Only direct channels from `fromid` to `id`: a one-hop route or none."""
        for name in ("id", "amount_msat", "riskfactor"):
            if name not in params:
                raise RpcFailureError(
                    JSONRPC2_INVALID_PARAMS, f"missing required parameter: {name}"
                )
        amount = parse_msat_param("amount_msat", params["amount_msat"])
        source = params.get("fromid", self.scenario.node_id)
        excluded = set(params.get("exclude", []))
        for entry in our_gossip(self.scenario) + self.scenario.gossip:
            if (
                entry["source"] == source
                and entry["destination"] == params["id"]
                and entry["active"]
                and entry["htlc_minimum_msat"] <= amount <= entry["htlc_maximum_msat"]
                and not {entry["source"], entry["destination"]} & excluded
                and f"{entry['short_channel_id']}/{entry['direction']}" not in excluded
            ):
                hop = {
                    "id": entry["destination"],
                    "channel": entry["short_channel_id"],
                    "direction": entry["direction"],
                    "amount_msat": amount,  # the first hop is free: fromid sends it
                    "delay": int(params.get("cltv", 9)),
                    "style": "tlv",
                }
                return {"route": [hop]}
        raise RpcFailureError(PAY_ROUTE_NOT_FOUND, "Could not find a route")

    # closing ------------------------------------------------------------------------

    def rpc_close(self, params: dict) -> dict:
        """lightningd's json_close + close_command: shut down at once, answer when the
        closing transaction is broadcast. Called without the lock: it blocks."""
        if "id" not in params:
            raise RpcFailureError(JSONRPC2_INVALID_PARAMS, "missing required parameter: id")
        timeout = parse_u64_param(
            "unilateraltimeout", params.get("unilateraltimeout", DEFAULT_UNILATERAL_TIMEOUT)
        )
        with self.lock:
            ch = self._close_target(str(params["id"]))
            if ch.state in ("CHANNELD_NORMAL", "CHANNELD_AWAITING_SPLICE"):
                ch.state = "CHANNELD_SHUTTING_DOWN"  # no more HTLCs from here on
        deadline = time.monotonic() + timeout if timeout else None
        while True:  # peer offline: "will negotiate once they reconnect"
            with self.lock:
                if ch.peer_connected:
                    break
            if deadline is not None and time.monotonic() >= deadline:
                return self._closed(ch, "unilateral")  # close_command_timeout
            if self.stopped.wait(0.05):
                raise RpcFailureError(LIGHTNINGD, "lightningd is shutting down")
        with self.lock:
            ch.state = "CLOSINGD_SIGEXCHANGE"
        if ch.close_negotiation_s and self.stopped.wait(ch.close_negotiation_s):
            raise RpcFailureError(LIGHTNINGD, "lightningd is shutting down")
        return self._closed(ch, "mutual")

    def _close_target(self, ident: str) -> FakeChannel:
        """param_channel_or_peer: a peer id, or a (short) channel id."""
        channels = self.scenario.channels
        if any(ch.peer_id == ident for ch in channels):
            found = [ch for ch in channels if ch.peer_id == ident and ch.state in CLOSABLE_STATES]
            if not found:
                raise RpcFailureError(LIGHTNINGD, "Peer has no active channel")
            if len(found) > 1:
                raise RpcFailureError(
                    LIGHTNINGD, "Peer has multiple channels: use channel_id or short_channel_id"
                )
            return found[0]
        if len(ident) == 64:
            found = [ch for ch in channels if ch.channel_id == ident]
            what = "Channel id not found"
        elif re.fullmatch(r"\d+x\d+x\d+", ident):
            found = [ch for ch in channels if ch.short_channel_id == ident]
            what = "Short channel id not found"
        else:
            found, what = [], "should be a channel ID or short channel ID"
        if not found:
            raise RpcFailureError(
                JSONRPC2_INVALID_PARAMS, f"id: {what}: invalid token (see logs for details)"
            )
        channel = found[0]
        if channel.state not in CLOSABLE_STATES:
            raise RpcFailureError(
                JSONRPC2_INVALID_PARAMS,
                f"id: Channel in state {channel.state}: invalid token (see logs for details)",
            )
        return channel

    def _closed(self, ch: FakeChannel, kind: str) -> dict:
        """resolve_one_close_command: the broadcast transaction(s) and the close type."""
        with self.lock:
            ch.state = "CLOSINGD_COMPLETE" if kind == "mutual" else "AWAITING_UNILATERAL"
            txid = hashlib.sha256(f"fake-cln-{kind}-close:{ch.channel_id}".encode()).hexdigest()
            tx = "02000000000101" + ch.funding_txid + f"{ch.funding_outnum:08x}" + "00" * 40
            version = version_tuple(self.scenario.version)
            result: dict[str, Any] = {"type": kind}
            if version >= (24, 11):  # txs/txids added in v24.11
                result.update(txs=[tx], txids=[txid])
            if version < (25, 12):  # tx/txid deprecated in v24.11, removed in v25.12
                result.update(tx=tx, txid=txid)
            return result

    # askrene --------------------------------------------------------------------------

    def _layer(self, params: dict, name: str = "layer") -> dict:
        layer = self.layers.get(str(params.get(name)))
        if layer is None:
            raise RpcFailureError(
                JSONRPC2_INVALID_PARAMS,
                f"{name}: Unknown layer: invalid token (see logs for details)",
            )
        return layer

    def _layer_json(self, name: str) -> dict:
        layer = self.layers[name]
        return {
            "layer": name,
            "persistent": layer["persistent"],
            "disabled_nodes": list(layer["disabled_nodes"]),
            "created_channels": [],
            "channel_updates": [],
            "constraints": [],
            "impressions": [],
            "biases": [],
            "node_biases": [],
        }

    def rpc_askrene_create_layer(self, params: dict) -> dict:
        if "layer" not in params:
            raise RpcFailureError(JSONRPC2_INVALID_PARAMS, "missing required parameter: layer")
        name, persistent = str(params["layer"]), bool(params.get("persistent", False))
        if name.startswith("auto."):
            raise RpcFailureError(JSONRPC2_INVALID_PARAMS, "Cannot create auto layer")
        if name in self.layers and not persistent:
            raise RpcFailureError(JSONRPC2_INVALID_PARAMS, "Layer already exists")
        self.layers.setdefault(name, {"persistent": persistent, "disabled_nodes": []})
        return {"layers": [self._layer_json(name)]}

    def rpc_askrene_disable_node(self, params: dict) -> dict:
        layer = self._layer(params)
        if "node" not in params:
            raise RpcFailureError(JSONRPC2_INVALID_PARAMS, "missing required parameter: node")
        if params["node"] not in layer["disabled_nodes"]:
            layer["disabled_nodes"].append(params["node"])
        return {}

    def rpc_askrene_remove_layer(self, params: dict) -> dict:
        self._layer(params)
        del self.layers[str(params["layer"])]
        return {}

    def rpc_askrene_listlayers(self, params: dict) -> dict:
        names = [str(params["layer"])] if "layer" in params else sorted(self.layers)
        return {"layers": [self._layer_json(n) for n in names if n in self.layers]}

    def rpc_getroutes(self, params: dict) -> dict:
        """One path (the cheapest, by fees) over gossip minus the layers' disabled nodes,
        in the shape of the scenario's version. Every hop pays the fee of its channel's
        source, the source's own first hop included (no auto.sourcefree here)."""
        for name in ("source", "destination", "amount_msat", "layers", "maxfee_msat", "final_cltv"):
            if name not in params:
                raise RpcFailureError(
                    JSONRPC2_INVALID_PARAMS, f"missing required parameter: {name}"
                )
        amount = parse_msat_param("amount_msat", params["amount_msat"])
        maxfee = parse_msat_param("maxfee_msat", params["maxfee_msat"])
        final_cltv = parse_u64_param("final_cltv", params["final_cltv"])
        if params.get("maxparts") == 0:
            raise RpcFailureError(JSONRPC2_INVALID_PARAMS, "maxparts must be non-zero")
        disabled: set[str] = set()
        for name in params["layers"]:
            if name in ("auto.localchans", "auto.sourcefree", "auto.include_fees"):
                continue
            disabled.update(self._layer({"layers": name}, "layers")["disabled_nodes"])
        source, destination = params["source"], params["destination"]
        if source == destination:
            raise RpcFailureError(
                JSONRPC2_INVALID_PARAMS, "source and destination must be different"
            )
        hops = self._cheapest_path(source, destination, amount, disabled)
        if hops is None:
            raise RpcFailureError(PAY_ROUTE_NOT_FOUND, "We could not find a usable set of paths.")
        if hops[0][1] - amount > maxfee:
            raise RpcFailureError(
                PAY_ROUTE_TOO_EXPENSIVE, "Could not find route without excessive cost"
            )
        version = version_tuple(self.scenario.version)
        path, cltv_out, probability = [], final_cltv, 1.0
        cltvs = []  # (cltv_in, cltv_out) per hop, walking back from the destination
        for entry, _, _ in reversed(hops):
            cltvs.append((cltv_out + entry["delay"], cltv_out))
            cltv_out += entry["delay"]
        cltvs.reverse()
        for (entry, amount_in, amount_out), (cltv_in, cltv_o) in zip(hops, cltvs, strict=True):
            hop: dict[str, Any] = {
                "short_channel_id_dir": f"{entry['short_channel_id']}/{entry['direction']}"
            }
            if version >= (26, 6):
                hop.update(
                    node_id_in=entry["source"],
                    node_id_out=entry["destination"],
                    amount_in_msat=amount_in,
                    amount_out_msat=amount_out,
                    cltv_in=cltv_in,
                    cltv_out=cltv_o,
                )
            if version < (27, 6):  # deprecated in v26.06
                hop.update(next_node_id=entry["destination"], amount_msat=amount_in, delay=cltv_in)
            path.append(hop)
            capacity = entry["amount_msat"]
            probability *= (capacity + 1 - amount_out) / (capacity + 1)
        ppm = int(probability * 1_000_000)
        route = {
            "probability_ppm": ppm,
            "amount_msat": amount,
            "final_cltv": final_cltv,
            "path": path,
        }
        return {"probability_ppm": ppm, "routes": [route]}

    def _cheapest_path(
        self, source: str, destination: str, amount: int, disabled: set[str]
    ) -> list[tuple[dict, int, int]] | None:
        """Dijkstra backwards from the destination: (gossip entry, amount in, amount out)
        per hop, source first; None when no path carries the amount."""
        entries = [
            e
            for e in our_gossip(self.scenario) + self.scenario.gossip
            if e["active"] and not {e["source"], e["destination"]} & disabled
        ]
        best: dict[str, int] = {destination: amount}
        via: dict[str, tuple[dict, str]] = {}
        queue = [(amount, destination)]
        while queue:
            needed, node = heapq.heappop(queue)
            if needed > best.get(node, needed):
                continue
            if node == source:
                break
            for e in entries:
                if e["destination"] != node or not (
                    e["htlc_minimum_msat"] <= needed <= e["htlc_maximum_msat"]
                ):
                    continue
                into = (
                    needed
                    + e["base_fee_millisatoshi"]
                    + needed * e["fee_per_millionth"] // 1_000_000
                )
                if into < best.get(e["source"], into + 1):
                    best[e["source"]] = into
                    via[e["source"]] = (e, node)
                    heapq.heappush(queue, (into, e["source"]))
        if source not in via:
            return None
        hops, node = [], source
        while node != destination:
            entry, nxt = via[node]
            hops.append((entry, best[node], best[nxt]))
            node = nxt
        return hops

    def rpc_sendpay(self, params: dict) -> dict:
        """Checks the route as the nodes along it would, then settles at once (balances
        move) unless `scenario.pay_failure` is set."""
        for name in ("route", "payment_hash"):
            if name not in params:
                raise RpcFailureError(
                    JSONRPC2_INVALID_PARAMS, f"missing required parameter: {name}"
                )
        route = params["route"]
        invoice = next(
            (
                i
                for i in self.scenario.invoices.values()
                if i["payment_hash"] == params["payment_hash"]
            ),
            None,
        )
        if invoice is None:
            raise RpcFailureError(LIGHTNINGD, "fake lightningd only pays its own invoices")
        amount = parse_msat_param("amount_msat", params.get("amount_msat", invoice["amount_msat"]))
        out_ch, in_ch = self._check_route(route, invoice, amount, params.get("payment_secret"))
        if params["payment_hash"] in self.scenario.payments:
            raise RpcFailureError(LIGHTNINGD, "fake lightningd: payment already attempted")
        sent = route[0]["amount_msat"]
        payment = {
            "created_index": len(self.scenario.payments) + 1,
            "id": len(self.scenario.payments) + 1,
            "payment_hash": params["payment_hash"],
            "groupid": 1,
            "destination": self.scenario.node_id,
            "amount_msat": amount,
            "amount_sent_msat": sent,
            "created_at": T0,
            "status": "pending",
        }
        self.scenario.payments[params["payment_hash"]] = payment
        if self.scenario.pay_failure is None:
            out_ch.to_us_msat -= sent
            in_ch.to_us_msat += amount
            invoice["status"] = "paid"
            payment.update(
                completed_at=T0 + 1,
                _final_status="complete",
                payment_preimage=invoice["_preimage"],
            )
        else:
            payment["_final_status"] = "failed"
        answer = {k: v for k, v in payment.items() if not k.startswith("_")}
        answer.pop("payment_preimage", None)
        answer.pop("completed_at", None)
        answer["message"] = "Monitor status with listpays or waitsendpay"
        return answer

    def _check_route(
        self, route: Any, invoice: dict, amount: int, secret: Any
    ) -> tuple[FakeChannel, FakeChannel]:
        def bad(why: str) -> RpcFailureError:
            return RpcFailureError(JSONRPC2_INVALID_PARAMS, f"route: {why}")

        if not isinstance(route, list) or len(route) < 2:
            raise bad("a circular route needs at least two hops")
        if secret != invoice["_payment_secret"]:
            raise bad("wrong or missing payment_secret")
        us = self.scenario.node_id
        nodes = [us]
        for hop in route:
            if not {"id", "channel", "amount_msat", "delay"} <= set(hop):
                raise bad(f"hop lacks id/channel/amount_msat/delay: {hop}")
            if "direction" in hop and hop["direction"] != (0 if nodes[-1] < hop["id"] else 1):
                raise bad(f"wrong direction on {hop['channel']}")
            nodes.append(hop["id"])
        out_ch = self._our_channel(route[0]["channel"], route[0]["id"])
        in_ch = self._our_channel(route[-1]["channel"], nodes[-2])
        if out_ch is None or in_ch is None or nodes[-1] != us:
            raise bad("must leave over one of our channels and come back over another")
        if route[-1]["amount_msat"] != amount or amount != invoice["amount_msat"]:
            raise bad("last hop must deliver the invoice amount")
        if route[-1]["delay"] < invoice["_cltv"]:
            raise bad("last hop delay below the invoice's min_final_cltv_expiry")
        for index in range(1, len(route)):
            prev, hop = route[index - 1], route[index]
            policy = self._policy(hop["channel"], nodes[index])
            if policy is None:
                raise bad(f"no policy for {nodes[index]} on {hop['channel']}")
            fee = (
                policy["base_fee_millisatoshi"]
                + hop["amount_msat"] * policy["fee_per_millionth"] // 1_000_000
            )
            if prev["amount_msat"] < hop["amount_msat"] + fee:
                raise bad(f"WIRE_FEE_INSUFFICIENT at hop {index}")
            if prev["delay"] < hop["delay"] + policy["delay"]:
                raise bad(f"WIRE_INCORRECT_CLTV_EXPIRY at hop {index}")
        return out_ch, in_ch

    def _our_channel(self, scid: str, peer_id: str) -> FakeChannel | None:
        return next(
            (
                ch
                for ch in self.scenario.channels
                if ch.short_channel_id == scid
                and ch.peer_id == peer_id
                and ch.state in GOSSIP_STATES
            ),
            None,
        )

    def _policy(self, scid: str, source: str) -> dict | None:
        entries = our_gossip(self.scenario) + self.scenario.gossip
        if source != self.scenario.node_id:  # private channels: the peer's update
            for ch in self.scenario.channels:
                if ch.short_channel_id == scid and ch.peer_id == source and ch.remote_update:
                    ru = ch.remote_update
                    entries = [
                        _gossip(
                            source,
                            self.scenario.node_id,
                            scid,
                            ch.total_msat,
                            base=ru["fee_base_msat"],
                            ppm=ru["fee_proportional_millionths"],
                            delay=ru["cltv_expiry_delta"],
                        ),
                        *entries,
                    ]
        return next(
            (e for e in entries if e["short_channel_id"] == scid and e["source"] == source),
            None,
        )

    def rpc_waitsendpay(self, params: dict) -> dict:
        if "payment_hash" not in params:
            raise RpcFailureError(
                JSONRPC2_INVALID_PARAMS, "missing required parameter: payment_hash"
            )
        payment = self.scenario.payments.get(params["payment_hash"])
        if payment is None:
            raise RpcFailureError(
                PAY_NO_SUCH_PAYMENT,
                f"Never attempted payment part 0 for '{params['payment_hash']}'",
            )
        if payment["_final_status"] == "failed":
            failure = self.scenario.pay_failure or {}
            payment["status"] = "failed"
            raise RpcFailureError(
                int(failure.get("code", PAY_TRY_OTHER_ROUTE)),
                str(failure.get("message", "failed: WIRE_TEMPORARY_CHANNEL_FAILURE")),
            )
        payment["status"] = "complete"
        return {k: v for k, v in payment.items() if not k.startswith("_")}

    def rpc_listpays(self, params: dict) -> dict:
        return {"pays": []}

    def rpc_notifications(self, params: dict) -> dict:
        return {}

    def rpc_waitanyinvoice(self, params: dict) -> dict:
        """No invoice is ever paid: wait out `timeout` like lightningd, then fail 904."""
        timeout = params.get("timeout")
        self.stopped.wait(None if timeout is None else float(timeout))
        raise RpcFailureError(
            INVOICE_WAIT_TIMED_OUT, "Timed out while waiting for invoice to be paid"
        )


def _public_invoice(invoice: dict) -> dict:
    return {k: v for k, v in invoice.items() if not k.startswith("_")}


def _fund(ch: FakeChannel) -> dict:
    entry = {
        "peer_id": ch.peer_id,
        "connected": ch.peer_connected,
        "state": ch.state,
        "channel_id": ch.channel_id,
        "our_amount_msat": ch.to_us_msat,
        "amount_msat": ch.total_msat,
        "funding_txid": ch.funding_txid,
        "funding_output": ch.funding_outnum,
    }
    if ch.short_channel_id:
        entry["short_channel_id"] = ch.short_channel_id
    return entry


def _set_channel(ch: FakeChannel, values: dict[str, int]) -> dict:
    """Like lightningd's set_channel_config: omitted values stay, htlc bounds clamp."""
    if "feebase" in values:
        ch.fee_base_msat = values["feebase"]
    if "feeppm" in values:
        ch.fee_ppm = values["feeppm"]
    warnings = {}
    if "htlcmin" in values:
        ch.htlc_min_msat = max(values["htlcmin"], ch.their_htlc_minimum_msat)
        if values["htlcmin"] < ch.their_htlc_minimum_msat:
            warnings["warning_htlcmin_too_low"] = (
                "Set minimum_htlc_out_msat to minimum allowed by peer"
            )
    if "htlcmax" in values:
        ch.htlc_max_msat = min(values["htlcmax"], ch.max_possible_send())
        if values["htlcmax"] > ch.max_possible_send():
            warnings["warning_htlcmax_too_high"] = (
                "Set maximum_htlc_out_msat to maximum possible in channel"
            )
    entry: dict[str, Any] = {"peer_id": ch.peer_id, "channel_id": ch.channel_id}
    if ch.short_channel_id:
        entry["short_channel_id"] = ch.short_channel_id
    entry.update(
        fee_base_msat=ch.fee_base_msat,
        fee_proportional_millionths=ch.fee_ppm,
        minimum_htlc_out_msat=ch.htlc_min_msat,
        maximum_htlc_out_msat=ch.htlc_max_msat,
        ignore_fee_limits=ch.ignore_fee_limits,
    )
    entry.update(warnings)
    return entry


def _forward_matches(row: dict, params: dict) -> bool:
    return all(
        params.get(key, row.get(key)) == row.get(key)
        for key in ("status", "in_channel", "out_channel")
    )


# -- faults ----------------------------------------------------------------------------


@dataclass
class Fault:
    delay: float = 0.0
    error: dict | None = None  # {"code": ..., "message": ...}
    malformed: str | None = None  # "garbage" (not JSON) or "shape" (wrong result object)
    drop: bool = False  # close the connection without answering
    times: int | None = None  # None: every call until cleared


# -- socket server ---------------------------------------------------------------------


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        buffer = b""
        while not self.server.fake.stopped.is_set():
            request, buffer = self._read_request(buffer)
            if request is None:
                return
            answer = self.server.fake.answer(request)
            if answer is None:
                return  # dropped: the client sees the connection close
            self.request.sendall(answer)

    def _read_request(self, buffer: bytes) -> tuple[dict | None, bytes]:
        """Requests arrive as bare JSON objects, possibly split or back to back."""
        decoder = json.JSONDecoder()
        while True:
            with contextlib.suppress(ValueError):  # incomplete JSON or split UTF-8
                text = buffer.decode("utf-8").lstrip()
                if text:
                    obj, end = decoder.raw_decode(text)
                    return (obj if isinstance(obj, dict) else {}), text[end:].encode()
            if len(buffer) > MAX_REQUEST_BYTES:
                return None, b""
            chunk = self.request.recv(65536)
            if not chunk:
                return None, b""
            buffer += chunk


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    fake: FakeLightningd


class FakeLightningd:
    """Serve a Scenario on a Unix socket from a background thread.

    with FakeLightningd() as fake:
        rpc = LightningRpc(fake.socket_path)
    """

    def __init__(self, socket_path: str | None = None, scenario: Scenario | None = None):
        self._tmpdir: str | None = None
        if socket_path is None:
            # AF_UNIX paths are limited to ~108 bytes: keep it short
            self._tmpdir = tempfile.mkdtemp(prefix="fakecln-")
            socket_path = os.path.join(self._tmpdir, "lightning-rpc")
        self.socket_path = socket_path
        self.stopped = threading.Event()
        self.node = Lightningd(scenario or default_scenario(), socket_path, self.stopped)
        self.calls: list[tuple[str, dict]] = []
        self._faults: dict[str, Fault] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def scenario(self) -> Scenario:
        return self.node.scenario

    # lifecycle ---------------------------------------------------------------------

    def start(self) -> FakeLightningd:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)  # stale socket from an earlier run
        os.makedirs(os.path.dirname(self.socket_path) or ".", exist_ok=True)
        self._server = _Server(self.socket_path, _Handler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(0.05,),
            name="fake-lightningd",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        if self._tmpdir is not None:
            with contextlib.suppress(OSError):
                os.rmdir(self._tmpdir)

    def __enter__(self) -> FakeLightningd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # faults ------------------------------------------------------------------------

    def inject(self, method: str = "*", **fault: Any) -> None:
        """Make calls to `method` ("*" = any) misbehave; see `Fault` for the options."""
        with self.node.lock:
            self._faults[method] = Fault(**fault)

    def clear_faults(self) -> None:
        with self.node.lock:
            self._faults.clear()

    def _take_fault(self, method: str) -> Fault | None:
        with self.node.lock:
            key = method if method in self._faults else "*"
            fault = self._faults.get(key)
            if fault is not None and fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self._faults[key]
            return fault

    # state changes for tests -------------------------------------------------------

    def resolve_forward(
        self, created_index: int, status: str = "settled", failreason: str | None = None
    ) -> None:
        with self.node.lock:
            row = next(r for r in self.scenario.forwards if r["created_index"] == created_index)
            row["status"] = status
            if failreason is not None:
                row["failcode"], row["failreason"] = 4103, failreason
            _mark_updated(self.scenario, row)

    def add_forward(self, status: str, chan_in: str, chan_out: str | None, **kw: Any) -> int:
        """Append a forward (kw: in_msat, out_msat, failcode, failreason); returns its
        created_index, which like lightningd's rowid only grows."""
        with self.node.lock:
            index = max((r["created_index"] for r in self.scenario.forwards), default=0) + 1
            row = _forward(index, status, chan_in, chan_out, **kw)
            self.scenario.forwards.append(row)
            if status != "offered":
                _mark_updated(self.scenario, row)
            return index

    def channel(self, short_channel_id: str) -> FakeChannel:
        return next(ch for ch in self.scenario.channels if ch.short_channel_id == short_channel_id)

    # protocol ----------------------------------------------------------------------

    def answer(self, request: dict) -> bytes | None:
        """The bytes to send back for one request, or None to drop the connection."""
        method = str(request.get("method"))
        params = request.get("params") or {}
        self.calls.append((method, params if isinstance(params, dict) else {"_": params}))
        fault = self._take_fault(method)
        if fault is not None:
            faulty = self._faulty_answer(request, fault)
            if faulty is not None or fault.drop or self.stopped.is_set():
                return faulty
        try:
            result = self.node.dispatch(method, params)
        except RpcFailureError as failure:
            error = {"code": failure.code, "message": failure.message}
            return _frame({"jsonrpc": "2.0", "id": request.get("id"), "error": error})
        if "filter" in request:
            result = apply_filter(result, request["filter"])
        return _frame({"jsonrpc": "2.0", "id": request.get("id"), "result": result})

    def _faulty_answer(self, request: dict, fault: Fault) -> bytes | None:
        if fault.delay:
            self.stopped.wait(fault.delay)
        if fault.drop or self.stopped.is_set():
            return None
        if fault.error is not None:
            return _frame({"jsonrpc": "2.0", "id": request.get("id"), "error": fault.error})
        if fault.malformed == "garbage":
            return b"<html>502 Bad Gateway</html>\n\n"
        if fault.malformed == "shape":
            result = {"unexpected": True}
            return _frame({"jsonrpc": "2.0", "id": request.get("id"), "result": result})
        return None  # only delayed: answer normally


def _frame(obj: dict) -> bytes:
    # lightningd guarantees "\n\n" after each response; pyln splits on it
    return json.dumps(obj).encode("utf-8") + b"\n\n"


# -- script ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake Core Lightning JSON-RPC socket")
    parser.add_argument("--socket", required=True, help="path of the lightning-rpc socket")
    parser.add_argument(
        "--legacy", action="store_true", help="answer like CLN before v24.02 (no `updates`)"
    )
    args = parser.parse_args(argv)
    scenario = default_scenario()
    scenario.legacy = args.legacy
    fake = FakeLightningd(args.socket, scenario).start()
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    print(f"fake lightningd listening on {fake.socket_path}", flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
