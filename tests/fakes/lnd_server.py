"""A fake LND REST gateway: a real HTTP server answering in LND's JSON shapes.

Shapes follow LND's REST proxy (protojson, UseProtoNames + EmitUnpopulated): 64-bit
integers are strings, 32-bit ones numbers, every field is present. Behaviour mirrors
lnd's rpcserver.go for the calls Daznode and LNbits' LndRestWallet make:

- the macaroon header is required (LND answers HTTP 500 with gRPC code 2 otherwise);
- POST /v1/chanpolicy replaces the whole policy, validates it like routing/localchans
  and reports per-channel problems in `failed_updates`;
- POST /v1/switch pages like channeldb's ForwardingLog.Query (index_offset counts
  records inside [start_time, end_time], last_offset_index = index_offset + returned);
- POST /v1/invoices adds an invoice; POST /v2/router/send (SendPaymentV2) pays only the
  fake's own invoices, as a circular payment over our channels, and streams the updates
  as newline-delimited JSON ({"result": Payment} lines, {"error": Status} on failure);
- DELETE /v1/channels/{funding_txid_str}/{output_index} (CloseChannel) closes
  cooperatively: refusals as LND's rpcserver makes them (unknown channel, peer offline,
  active HTLCs) come back as a stream error before any update; otherwise the channel
  leaves /v1/channels and the stream sends close_pending, then stays open like LND's
  until the closing transaction would confirm (`Scenario.close_confirms`: chan_close at
  once). Force closes are refused: Daznode must never ask for one.

In tests:  `with FakeLndServer() as lnd: httpx.AsyncClient(base_url=lnd.url, ...)`.
Standalone (from the repository root): `python -m tests.fakes.lnd_server --port 8080` serves
the default scenario.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import json
import select
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.http_fake import HttpFake, TrackingHTTPServer, serve_until_stopped

DEFAULT_MACAROON = "0201036c6e6402f801030a10" + "ab" * 24  # hex, like a real one
MIN_CLTV_DELTA = 18  # routing.MinCLTVDelta in LND 0.18-0.20
MAX_CLTV_EXPIRY = 2016  # htlcswitch.DefaultMaxOutgoingCltvExpiry
NOW = 1_735_689_600  # 2025-01-01, fixed so scenarios are reproducible
# What the hops between the first and the last peer of a circular payment charge.
REBALANCE_HOP_FEE_MSAT = 1_000


def chan_id(block: int, tx: int, out: int) -> int:
    """LND's uint64 channel id of the short channel id BLOCKxTXxOUT."""
    return (block << 40) | (tx << 16) | out


def _msat(value: int) -> str:
    return f"{value} mSAT"  # how lnwire.MilliSatoshi prints in LND's error texts


# ------------------------------------------------------------------------ scenario


@dataclass
class FakePolicy:
    """One direction of a channel, in LND's RoutingPolicy terms."""

    fee_base_msat: int = 1000
    fee_rate_milli_msat: int = 100  # ppm
    time_lock_delta: int = 80
    min_htlc: int = 1000
    max_htlc_msat: int = 990_000_000
    disabled: bool = False
    inbound_fee_base_msat: int = 0
    inbound_fee_rate_milli_msat: int = 0
    last_update: int = NOW - 3600

    def to_json(self) -> dict[str, Any]:
        return {
            "time_lock_delta": self.time_lock_delta,
            "min_htlc": str(self.min_htlc),
            "fee_base_msat": str(self.fee_base_msat),
            "fee_rate_milli_msat": str(self.fee_rate_milli_msat),
            "disabled": self.disabled,
            "max_htlc_msat": str(self.max_htlc_msat),
            "last_update": self.last_update,
            "custom_records": {},
            "inbound_fee_base_msat": self.inbound_fee_base_msat,
            "inbound_fee_rate_milli_msat": self.inbound_fee_rate_milli_msat,
        }


@dataclass
class FakeChannel:
    """One of our open channels, with our policy and the peer's."""

    chan_id: int
    funding_txid: str
    output_index: int
    peer_pubkey: str
    peer_alias: str
    capacity: int  # sat
    local_balance: int  # sat
    remote_balance: int  # sat
    local_policy: FakePolicy | None = field(default_factory=FakePolicy)
    remote_policy: FakePolicy | None = field(default_factory=FakePolicy)
    active: bool = True
    private: bool = False
    in_graph: bool = True  # False: GetChanInfo says "edge not found"
    min_htlc_msat: int = 1  # negotiated channel minimum (LocalChanCfg.MinHTLC)
    max_pending_amt_msat: int | None = None  # max in flight; default 99% of capacity

    # sub-satoshi parts of the balances: LND reports balances in whole sat, rounded down
    local_extra_msat: int = 0
    remote_extra_msat: int = 0
    active_htlcs: int = 0  # HTLCs in flight: a cooperative close must wait for them

    @property
    def channel_point(self) -> str:
        return f"{self.funding_txid}:{self.output_index}"

    @property
    def local_msat(self) -> int:
        return self.local_balance * 1000 + self.local_extra_msat

    @property
    def remote_msat(self) -> int:
        return self.remote_balance * 1000 + self.remote_extra_msat

    @property
    def reserve_msat(self) -> int:
        return self.capacity // 100 * 1000  # chan_reserve_sat, as in _constraints

    def move_msat(self, to_local: int) -> None:
        """Shift `to_local` msat from the remote side to ours (negative: the other way)."""
        self.local_balance, self.local_extra_msat = divmod(self.local_msat + to_local, 1000)
        self.remote_balance, self.remote_extra_msat = divmod(self.remote_msat - to_local, 1000)

    @property
    def max_pending_msat(self) -> int:
        if self.max_pending_amt_msat is not None:
            return self.max_pending_amt_msat
        return self.capacity * 990


@dataclass
class ClosedChannel:
    """A channel CloseChannel took out of the open list (LND: waiting close)."""

    channel: FakeChannel
    closing_txid: str  # display order (as explorers show it)
    force: bool = False


@dataclass
class FakeForward:
    timestamp_ns: int
    chan_id_in: int
    chan_id_out: int
    amt_in_msat: int
    amt_out_msat: int


@dataclass
class FakeNode:
    pub_key: str
    alias: str
    last_update: int = NOW - 7200


@dataclass
class FakeEdge:
    """A channel between two other nodes, seen only in the graph."""

    chan_id: int
    node1_pub: str
    node2_pub: str
    capacity: int
    node1_policy: FakePolicy | None = field(default_factory=FakePolicy)
    node2_policy: FakePolicy | None = field(default_factory=FakePolicy)


@dataclass
class FakeInvoice:
    payment_request: str
    r_preimage: bytes
    value_msat: int
    memo: str
    expiry: int
    add_index: int
    settled: bool = False

    @property
    def r_hash(self) -> bytes:
        return hashlib.sha256(self.r_preimage).digest()


@dataclass
class FakePayment:
    """A payment SendPaymentV2 finished: what it cost and which channels it used."""

    payment_hash: str
    value_msat: int
    fee_msat: int
    status: str  # SUCCEEDED or FAILED
    failure_reason: str
    out_chan_id: int | None = None
    in_chan_id: int | None = None


@dataclass
class Scenario:
    pubkey: str
    alias: str
    channels: list[FakeChannel] = field(default_factory=list)
    forwards: list[FakeForward] = field(default_factory=list)
    nodes: list[FakeNode] = field(default_factory=list)
    edges: list[FakeEdge] = field(default_factory=list)
    invoices: list[FakeInvoice] = field(default_factory=list)
    payments: list[FakePayment] = field(default_factory=list)
    closed: list[ClosedChannel] = field(default_factory=list)
    # CloseChannel: False holds the stream open after close_pending (as LND does until
    # the closing transaction confirms); True sends chan_close at once and ends it.
    close_confirms: bool = False
    macaroon: str = DEFAULT_MACAROON
    version: str = "0.20.1-beta commit=v0.20.1-beta"
    network: str = "regtest"
    block_height: int = 850_000
    num_peers: int = 3
    synced_to_chain: bool = True
    # LND <= 0.19 answers an unknown edge with HTTP 500 code 2, 0.20+ with 404 code 5.
    legacy_edge_not_found: bool = False


OUR_PUBKEY = "03" + "77" * 32
PEER_LOW = "02" + "11" * 32  # sorts before us: the peer is node1 of the edge
PEER_HIGH = "03" + "ee" * 32  # sorts after us: we are node1
PEER_PRIVATE = "02" + "55" * 32
FAR_NODE = "02" + "99" * 32


def default_scenario(num_forwards: int = 25) -> Scenario:
    """Three channels (peer as node1, we as node1, private without an edge), a graph
    with one remote edge, and `num_forwards` settled forwards a minute apart."""
    low = FakeChannel(
        chan_id=chan_id(800_000, 1200, 1),
        funding_txid="a1" * 32,
        output_index=1,
        peer_pubkey=PEER_LOW,
        peer_alias="low-peer",
        capacity=5_000_000,
        local_balance=3_000_000,
        remote_balance=1_996_530,
        local_policy=FakePolicy(fee_base_msat=1000, fee_rate_milli_msat=250),
        remote_policy=FakePolicy(fee_base_msat=0, fee_rate_milli_msat=10, time_lock_delta=40),
    )
    high = FakeChannel(
        chan_id=chan_id(810_500, 33, 0),
        funding_txid="b2" * 32,
        output_index=0,
        peer_pubkey=PEER_HIGH,
        peer_alias="high-peer",
        capacity=2_000_000,
        local_balance=200_000,
        remote_balance=1_796_530,
        local_policy=FakePolicy(
            fee_base_msat=500,
            fee_rate_milli_msat=800,
            time_lock_delta=144,
            inbound_fee_base_msat=-100,
            inbound_fee_rate_milli_msat=-50,
        ),
        remote_policy=FakePolicy(fee_base_msat=2000, fee_rate_milli_msat=1500, disabled=True),
    )
    private = FakeChannel(
        chan_id=chan_id(820_000, 7, 2),
        funding_txid="c3" * 32,
        output_index=2,
        peer_pubkey=PEER_PRIVATE,
        peer_alias="",
        capacity=1_000_000,
        local_balance=500_000,
        remote_balance=496_530,
        private=True,
        active=False,
        in_graph=False,
    )
    remote_edge = FakeEdge(
        chan_id=chan_id(790_000, 5, 1),
        node1_pub=PEER_LOW,
        node2_pub=FAR_NODE,
        capacity=10_000_000,
        node2_policy=None,  # half-announced: only one direction known
    )
    nodes = [
        FakeNode(OUR_PUBKEY, "daznode-test"),
        FakeNode(PEER_LOW, "low-peer"),
        FakeNode(PEER_HIGH, "high-peer"),
        FakeNode(FAR_NODE, "far-away"),
    ]
    scenario = Scenario(
        pubkey=OUR_PUBKEY,
        alias="daznode-test",
        channels=[low, high, private],
        nodes=nodes,
        edges=[remote_edge],
    )
    scenario.forwards = make_forwards(scenario, num_forwards)
    return scenario


def make_forwards(
    scenario: Scenario, count: int, start_ns: int = (NOW - 86_400) * 10**9
) -> list[FakeForward]:
    """Forwards alternating between the first two channels, one minute apart."""
    a, b = scenario.channels[0].chan_id, scenario.channels[1].chan_id
    out = []
    for i in range(count):
        amt_out = 100_000 + 1_000 * i
        out.append(
            FakeForward(
                timestamp_ns=start_ns + i * 60 * 10**9 + i,
                chan_id_in=a if i % 2 == 0 else b,
                chan_id_out=b if i % 2 == 0 else a,
                amt_in_msat=amt_out + 1_000 + amt_out // 10_000,
                amt_out_msat=amt_out,
            )
        )
    return out


# -------------------------------------------------------------------------- faults


@dataclass
class Fault:
    delay: float = 0.0  # seconds to stall before answering (timeouts)
    # seconds to stall after serving the request and before answering: the node did the
    # work and the answer is late (or lost, if the client dies meanwhile)
    delay_after_apply: float = 0.0
    status: int | None = None  # answer with this status and `body` instead of serving
    body: bytes = b""
    content_type: str = "application/json"
    times: int | None = None  # None: until cleared
    # streaming calls: answer 200, send an in-flight update, then this {"code", "message"}
    # as an {"error": ...} line, without making the payment
    stream_error: dict[str, Any] | None = None


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    has_macaroon: bool


class LndError(Exception):
    """What the gRPC handler would return: sent as LND's error body. `wrapped`: the error of
    a server stream before its first message, which grpc-gateway sends as {"error": ...}."""

    def __init__(
        self, message: str, code: int = 2, status: int = 500, *, wrapped: bool = False
    ) -> None:
        super().__init__(message)
        self.message, self.code, self.status = message, code, status
        self.wrapped = wrapped


def _bad_request(message: str) -> LndError:
    return LndError(message, code=3, status=400)  # INVALID_ARGUMENT


def _req_int(body: dict[str, Any], key: str, default: int = 0) -> int:
    """protojson accepts numbers or decimal strings for every integer type."""
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _bad_request(f"proto: invalid value for integer field {key}: {value!r}")
    try:
        return int(value)
    except ValueError as exc:
        raise _bad_request(f"proto: invalid value for integer field {key}: {value!r}") from exc


def _req_bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise _bad_request(f"proto: invalid value for bool field {key}: {value!r}")
    return value


def _check_fields(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(body) - allowed
    if unknown:
        raise _bad_request(f"proto: unknown field {sorted(unknown)[0]!r}")


# -------------------------------------------------------------------------- server


class FakeLndServer(HttpFake):
    """The fake node: scenario state, fault table and the HTTP server thread."""

    def __init__(
        self, scenario: Scenario | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.scenario = scenario or default_scenario()
        self.lock = threading.RLock()
        self.faults: dict[str, Fault] = {}
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0  # most requests served at once (concurrency checks)
        self.listen(host, port, _Handler, "fake-lnd")

    @property
    def macaroon(self) -> str:
        return self.scenario.macaroon

    @property
    def headers(self) -> dict[str, str]:
        return {"Grpc-Metadata-macaroon": self.macaroon}

    # fault injection; `path` is a glob on the URL path, e.g. "/v1/graph/edge/*"
    def inject(self, path: str, fault: Fault) -> None:
        with self.lock:
            self.faults[path] = fault

    def inject_delay(self, path: str, seconds: float, times: int | None = None) -> None:
        self.inject(path, Fault(delay=seconds, times=times))

    def inject_apply_then_delay(self, path: str, seconds: float, times: int | None = None) -> None:
        """Serve the request (a POST changes the node's state), then stall before answering."""
        self.inject(path, Fault(delay_after_apply=seconds, times=times))

    def inject_unavailable(self, path: str, body: bytes = b"", status: int = 503) -> None:
        self.inject(path, Fault(status=status, body=body, content_type="text/plain"))

    def inject_lnd_error(self, path: str, message: str, code: int = 2, status: int = 500) -> None:
        body = json.dumps({"code": code, "message": message, "details": []}).encode()
        self.inject(path, Fault(status=status, body=body))

    def inject_stream_error(self, path: str, message: str, code: int = 2) -> None:
        self.inject(path, Fault(stream_error={"code": code, "message": message, "details": []}))

    def inject_body(self, path: str, body: bytes, status: int = 200) -> None:
        self.inject(path, Fault(status=status, body=body))

    def inject_malformed_json(self, path: str) -> None:
        self.inject_body(path, b'{"identity_pubkey": "02ab", "alias": ')

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for pattern, fault in list(self.faults.items()):
                if fnmatch.fnmatchcase(path, pattern):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            del self.faults[pattern]
                    return fault
        return None

    # state helpers for tests
    def channel(self, chan_id_: int) -> FakeChannel:
        with self.lock:
            return next(c for c in self.scenario.channels if c.chan_id == chan_id_)

    def add_forwards(self, forwards: list[FakeForward]) -> None:
        with self.lock:
            self.scenario.forwards.extend(forwards)
            self.scenario.forwards.sort(key=lambda f: f.timestamp_ns)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if fnmatch.fnmatchcase(r.path, path)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: TrackingHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet; requests are recorded on the fake instead

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        fake = self.server.fake
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        raw = self._read_body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = raw
        has_mac = self.headers.get("Grpc-Metadata-macaroon") is not None
        with fake.lock:
            fake.requests.append(RecordedRequest(method, url.path, query, body, has_mac))
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            self._serve(fake, method, url.path, query, body)
        finally:
            with fake.lock:
                fake.in_flight -= 1

    def _serve(
        self,
        fake: FakeLndServer,
        method: str,
        path: str,
        query: dict[str, list[str]],
        body: Any,
    ) -> None:
        try:
            fault = fake.take_fault(path)
            if fault is not None and fault.delay and fake.wait(fault.delay):
                return
            if fault is not None and fault.status is not None:
                self._send(fault.status, fault.body, fault.content_type)
                return
            if path == "/v1/invoices/subscribe" and method == "GET":
                self._check_macaroon()
                self._hold_stream()
                return
            self._check_macaroon()
            if isinstance(body, bytes):
                raise _bad_request("invalid character in request body")
            if path == "/v2/router/send" and method == "POST" and isinstance(body, dict):
                stream_error = fault.stream_error if fault is not None else None
                with fake.lock:
                    lines = _send_payment(fake.scenario, body, stream_error)
                self._send_lines(lines)
                return
            if method == "DELETE" and path.startswith(_CLOSE_PREFIX):
                stream_error = fault.stream_error if fault is not None else None
                with fake.lock:
                    lines, done = _close_channel(fake.scenario, path, query, stream_error)
                self._send_lines(lines, hold=not done)
                return
            result = _route(fake, method, path, query, body)
            if fault is not None and fault.delay_after_apply and fake.wait(fault.delay_after_apply):
                return
            self._send(200, json.dumps(result).encode())
        except LndError as err:
            payload: dict[str, Any] = {"code": err.code, "message": err.message, "details": []}
            if err.wrapped:
                payload = {"error": payload}
            self._send(err.status, json.dumps(payload).encode())
        except OSError:
            pass  # the client gave up (timeout tests) or the server is stopping

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _check_macaroon(self) -> None:
        values = self.headers.get_all("Grpc-Metadata-macaroon") or []
        if len(values) != 1:
            # macaroons.RawMacaroonFromContext
            raise LndError(f"expected 1 macaroon, got {len(values)}")
        if values[0] != self.server.fake.macaroon:
            raise LndError("verification failed: signature mismatch after caveat verification")

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_lines(self, lines: list[dict[str, Any]], hold: bool = False) -> None:
        """A grpc-gateway server stream: chunked, one JSON object and a newline per message.
        `hold`: keep the stream open afterwards until the client hangs up or the fake stops."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for line in lines:
            data = json.dumps(line).encode() + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        if hold and not self._wait_for_hangup():
            return
        self.wfile.write(b"0\r\n\r\n")

    def _wait_for_hangup(self) -> bool:
        """Hold a stream open; False once the client has closed its end (nothing left to
        answer), True when the fake stops first."""
        while not self.server.fake.wait(0.05):
            readable, _, _ = select.select([self.connection], [], [], 0)
            if readable and not self.connection.recv(1, socket.MSG_PEEK):
                self.close_connection = True
                return False
        self.close_connection = True
        return True

    def _hold_stream(self) -> None:
        """LNbits' invoice listener: keep the stream open (no invoices) until stop."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        while not self.server.fake.wait(1.0):
            pass
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True


# -------------------------------------------------------------------------- routes


def _route(
    fake: FakeLndServer, method: str, path: str, query: dict[str, list[str]], body: Any
) -> dict[str, Any]:
    with fake.lock:
        s = fake.scenario
        if method == "GET":
            if path == "/v1/getinfo":
                return _getinfo(s)
            if path == "/v1/channels":
                return _list_channels(s, _flag(query, "peer_alias_lookup"))
            if path.startswith("/v1/graph/edge/"):
                return _get_chan_info(s, path.removeprefix("/v1/graph/edge/"))
            if path == "/v1/graph":
                return _describe_graph(s, _flag(query, "include_unannounced"))
            if path == "/v1/balance/channels":
                return _channel_balance(s)
            if path == "/v1/fees":
                return _fee_report(s)
        if method == "POST" and isinstance(body, dict):
            if path == "/v1/switch":
                return _forwarding_history(s, body)
            if path == "/v1/chanpolicy":
                return _update_channel_policy(s, body)
            if path == "/v1/invoices":
                return _add_invoice(s, body)
    if path in _KNOWN_PATHS:
        raise LndError("Method Not Allowed", code=12, status=501)
    raise LndError("Not Found", code=5, status=404)


_CLOSE_PREFIX = "/v1/channels/"

_KNOWN_PATHS = {
    "/v1/getinfo",
    "/v1/channels",
    "/v1/graph",
    "/v1/balance/channels",
    "/v1/fees",
    "/v1/switch",
    "/v1/chanpolicy",
    "/v1/invoices",
    "/v2/router/send",
}


def _flag(query: dict[str, list[str]], key: str) -> bool:
    return query.get(key, ["false"])[-1].lower() in {"true", "1"}


def _getinfo(s: Scenario) -> dict[str, Any]:
    active = sum(1 for c in s.channels if c.active)
    return {
        "version": s.version,
        "commit_hash": "f" * 40,
        "identity_pubkey": s.pubkey,
        "alias": s.alias,
        "color": "#3399ff",
        "num_pending_channels": 0,
        "num_active_channels": active,
        "num_inactive_channels": len(s.channels) - active,
        "num_peers": s.num_peers,
        "block_height": s.block_height,
        "block_hash": "00" * 32,
        "best_header_timestamp": str(NOW),
        "synced_to_chain": s.synced_to_chain,
        "synced_to_graph": True,
        "testnet": False,
        "chains": [{"chain": "bitcoin", "network": s.network}],
        "uris": [f"{s.pubkey}@127.0.0.1:9735"],
        "features": {"0": {"name": "data-loss-protect", "is_required": True, "is_known": True}},
        "require_htlc_interceptor": False,
        "store_final_htlc_resolutions": False,
    }


def _constraints(c: FakeChannel) -> dict[str, Any]:
    return {
        "csv_delay": 144,
        "chan_reserve_sat": str(c.capacity // 100),
        "dust_limit_sat": "354",
        "max_pending_amt_msat": str(c.max_pending_msat),
        "min_htlc_msat": str(c.min_htlc_msat),
        "max_accepted_htlcs": 483,
    }


def _channel_json(c: FakeChannel, alias_lookup: bool) -> dict[str, Any]:
    return {
        "active": c.active,
        "remote_pubkey": c.peer_pubkey,
        "channel_point": c.channel_point,
        "chan_id": str(c.chan_id),
        "capacity": str(c.capacity),
        "local_balance": str(c.local_balance),
        "remote_balance": str(c.remote_balance),
        "commit_fee": "2810",
        "commit_weight": "1116",
        "fee_per_kw": "2500",
        "unsettled_balance": "0",
        "total_satoshis_sent": "0",
        "total_satoshis_received": "0",
        "num_updates": "12",
        "pending_htlcs": [],
        "csv_delay": 144,
        "private": c.private,
        "initiator": True,
        "chan_status_flags": "ChanStatusDefault",
        "local_chan_reserve_sat": str(c.capacity // 100),
        "remote_chan_reserve_sat": str(c.capacity // 100),
        "static_remote_key": False,
        "commitment_type": "ANCHORS",
        "lifetime": "86400",
        "uptime": "86000",
        "close_address": "",
        "push_amount_sat": "0",
        "thaw_height": 0,
        "local_constraints": _constraints(c),
        "remote_constraints": _constraints(c),
        "alias_scids": [],
        "zero_conf": False,
        "zero_conf_confirmed_scid": "0",
        "peer_alias": (c.peer_alias or "unable to lookup peer alias: alias for node not found")
        if alias_lookup
        else "",
        "peer_scid_alias": "0",
        "memo": "",
        "custom_channel_data": "",
    }


def _list_channels(s: Scenario, alias_lookup: bool) -> dict[str, Any]:
    return {"channels": [_channel_json(c, alias_lookup) for c in s.channels]}


def _our_edge(s: Scenario, c: FakeChannel) -> dict[str, Any]:
    # LND orders an edge's nodes by their compressed public keys.
    we_first = s.pubkey < c.peer_pubkey
    n1, n2 = (s.pubkey, c.peer_pubkey) if we_first else (c.peer_pubkey, s.pubkey)
    p1, p2 = (c.local_policy, c.remote_policy) if we_first else (c.remote_policy, c.local_policy)
    return _edge_json(c.chan_id, c.channel_point, n1, n2, c.capacity, p1, p2)


def _edge_json(
    cid: int,
    chan_point: str,
    node1: str,
    node2: str,
    capacity: int,
    p1: FakePolicy | None,
    p2: FakePolicy | None,
) -> dict[str, Any]:
    updates = [p.last_update for p in (p1, p2) if p is not None]
    return {
        "channel_id": str(cid),
        "chan_point": chan_point,
        "last_update": max(updates, default=0),
        "node1_pub": node1,
        "node2_pub": node2,
        "capacity": str(capacity),
        "node1_policy": p1.to_json() if p1 else None,
        "node2_policy": p2.to_json() if p2 else None,
        "custom_records": {},
    }


def _remote_edge_json(e: FakeEdge) -> dict[str, Any]:
    point = f"{e.chan_id:064x}:0"
    return _edge_json(
        e.chan_id,
        point,
        e.node1_pub,
        e.node2_pub,
        e.capacity,
        e.node1_policy,
        e.node2_policy,
    )


def _get_chan_info(s: Scenario, raw_id: str) -> dict[str, Any]:
    if not raw_id.isdigit() or int(raw_id) >= 1 << 64:
        raise _bad_request(
            "type mismatch, parameter: chan_id, error: strconv.ParseUint: "
            f'parsing "{raw_id}": invalid syntax'
        )
    cid = int(raw_id)
    if cid == 0:
        raise LndError("specify either chan_id or chan_point")
    for c in s.channels:
        if c.chan_id == cid and c.in_graph:
            return _our_edge(s, c)
    for e in s.edges:
        if e.chan_id == cid:
            return _remote_edge_json(e)
    if s.legacy_edge_not_found:
        raise LndError("edge not found")
    raise LndError("edge not found", code=5, status=404)


def _describe_graph(s: Scenario, include_unannounced: bool) -> dict[str, Any]:
    ours = [
        _our_edge(s, c) for c in s.channels if c.in_graph and (include_unannounced or not c.private)
    ]
    return {
        "nodes": [
            {
                "last_update": n.last_update,
                "pub_key": n.pub_key,
                "alias": n.alias,
                "addresses": [{"network": "tcp", "addr": "127.0.0.1:9735"}],
                "color": "#3399ff",
                "features": {},
                "custom_records": {},
            }
            for n in s.nodes
        ],
        "edges": ours + [_remote_edge_json(e) for e in s.edges],
    }


def _amount(sat: int) -> dict[str, str]:
    return {"sat": str(sat), "msat": str(sat * 1000)}


def _channel_balance(s: Scenario) -> dict[str, Any]:
    local = sum(c.local_balance for c in s.channels)
    remote = sum(c.remote_balance for c in s.channels)
    return {
        "balance": str(local),
        "pending_open_balance": "0",
        "local_balance": _amount(local),
        "remote_balance": _amount(remote),
        "unsettled_local_balance": _amount(0),
        "unsettled_remote_balance": _amount(0),
        "pending_open_local_balance": _amount(0),
        "pending_open_remote_balance": _amount(0),
        "custom_channel_data": "",
    }


def _fee_report(s: Scenario) -> dict[str, Any]:
    """FeeReport walks our channels in the graph and fails if one lacks our policy."""
    fees = []
    for c in s.channels:
        if not c.in_graph:
            continue
        p = c.local_policy
        if p is None:
            # LND's message really ends with a space
            raise LndError(f"no policy for outgoing channel {c.chan_id} ")
        fees.append(
            {
                "chan_id": str(c.chan_id),
                "channel_point": c.channel_point,
                "base_fee_msat": str(p.fee_base_msat),
                "fee_per_mil": str(p.fee_rate_milli_msat),
                "fee_rate": p.fee_rate_milli_msat / 1_000_000,
                "inbound_base_fee_msat": p.inbound_fee_base_msat,
                "inbound_fee_per_mil": p.inbound_fee_rate_milli_msat,
            }
        )
    day_ns = 86_400 * 10**9
    now_ns = time.time_ns()

    def fee_sum(window_ns: int) -> str:
        msat = sum(
            f.amt_in_msat - f.amt_out_msat
            for f in s.forwards
            if f.timestamp_ns >= now_ns - window_ns
        )
        return str(msat // 1000)

    return {
        "channel_fees": fees,
        "day_fee_sum": fee_sum(day_ns),
        "week_fee_sum": fee_sum(7 * day_ns),
        "month_fee_sum": fee_sum(30 * day_ns),
    }


_SWITCH_FIELDS = {
    "start_time",
    "end_time",
    "index_offset",
    "num_max_events",
    "peer_alias_lookup",
    "incoming_chan_ids",
    "outgoing_chan_ids",
}


def _forwarding_history(s: Scenario, body: dict[str, Any]) -> dict[str, Any]:
    _check_fields(body, _SWITCH_FIELDS)
    start_ns = _req_int(body, "start_time") * 10**9
    end_s = _req_int(body, "end_time")
    end_ns = end_s * 10**9 if end_s else time.time_ns()  # 0 means "now"
    to_skip = offset = _req_int(body, "index_offset")
    num_max = _req_int(body, "num_max_events") or 100
    alias_lookup = _req_bool(body, "peer_alias_lookup")
    events: list[dict[str, Any]] = []
    for f in s.forwards:  # kept sorted by timestamp, like the bbolt bucket keys
        if not start_ns <= f.timestamp_ns <= end_ns:
            continue
        if len(events) >= num_max:
            break
        if to_skip > 0:
            to_skip -= 1
            continue
        events.append(_forward_json(s, f, len(events), alias_lookup))
    return {"forwarding_events": events, "last_offset_index": offset + len(events)}


def _forward_json(s: Scenario, f: FakeForward, position: int, alias_lookup: bool) -> dict[str, Any]:
    fee = f.amt_in_msat - f.amt_out_msat
    aliases = {c.chan_id: c.peer_alias for c in s.channels} if alias_lookup else {}
    event: dict[str, Any] = {
        "timestamp": str(f.timestamp_ns // 10**9),
        "chan_id_in": str(f.chan_id_in),
        "chan_id_out": str(f.chan_id_out),
        "amt_in": str(f.amt_in_msat // 1000),
        "amt_out": str(f.amt_out_msat // 1000),
        "fee": str(fee // 1000),
        "fee_msat": str(fee),
        "amt_in_msat": str(f.amt_in_msat),
        "amt_out_msat": str(f.amt_out_msat),
        "timestamp_ns": str(f.timestamp_ns),
        "peer_alias_in": aliases.get(f.chan_id_in, ""),
        "peer_alias_out": aliases.get(f.chan_id_out, ""),
    }
    if position % 3 == 0:  # optional fields: absent for legacy events
        event["incoming_htlc_id"] = str(position)
        event["outgoing_htlc_id"] = str(position + 7)
    return event


_POLICY_FIELDS = {
    "global",
    "chan_point",
    "base_fee_msat",
    "fee_rate",
    "fee_rate_ppm",
    "time_lock_delta",
    "max_htlc_msat",
    "min_htlc_msat",
    "min_htlc_msat_specified",
    "inbound_fee",
    "create_missing_edge",
}


def _update_channel_policy(s: Scenario, body: dict[str, Any]) -> dict[str, Any]:
    """rpcServer.UpdateChannelPolicy + localchans.Manager.UpdatePolicy."""
    _check_fields(body, _POLICY_FIELDS)
    targets = _policy_targets(s, body)
    fee_rate_ppm = _policy_fee_rate(body)
    delta = _req_int(body, "time_lock_delta")
    if delta < MIN_CLTV_DELTA:
        raise LndError(
            f"time lock delta of {delta} is too small, minimum supported is {MIN_CLTV_DELTA}"
        )
    if delta > MAX_CLTV_EXPIRY:
        raise LndError(f"time lock delta of {delta} exceeds max-cltv-expiry of {MAX_CLTV_EXPIRY}")
    inbound = _policy_inbound(body)
    template = FakePolicy(
        fee_base_msat=_req_int(body, "base_fee_msat"),
        fee_rate_milli_msat=fee_rate_ppm,
        time_lock_delta=delta,
        min_htlc=_req_int(body, "min_htlc_msat"),
        max_htlc_msat=_req_int(body, "max_htlc_msat"),
    )
    min_specified = _req_bool(body, "min_htlc_msat_specified")
    failed = []
    for point in targets:
        failure = _apply_policy(s, point, template, min_specified, inbound)
        if failure is not None:
            failed.append(failure)
    return {"failed_updates": failed}


def _policy_targets(s: Scenario, body: dict[str, Any]) -> list[tuple[str, int]]:
    if _req_bool(body, "global"):
        return [(c.funding_txid, c.output_index) for c in s.channels]
    point = body.get("chan_point")
    if not isinstance(point, dict):
        raise LndError("unknown scope: <nil>")
    if point.get("funding_txid_str"):
        txid = str(point["funding_txid_str"])
    elif point.get("funding_txid_bytes"):
        txid = base64.b64decode(point["funding_txid_bytes"])[::-1].hex()
    else:
        raise LndError("unknown funding txid type")
    return [(txid, _req_int(point, "output_index"))]


def _policy_fee_rate(body: dict[str, Any]) -> int:
    fee_rate = body.get("fee_rate", 0) or 0
    ppm = _req_int(body, "fee_rate_ppm")
    if fee_rate and ppm:
        raise _bad_request("cannot set both FeeRate and FeeRatePpm at the same time")
    if fee_rate:
        return round(float(fee_rate) * 1_000_000)
    return ppm


def _policy_inbound(body: dict[str, Any]) -> tuple[int, int] | None:
    inbound = body.get("inbound_fee")
    if inbound is None:
        return None  # LND keeps the previous inbound fee
    base, rate = _req_int(inbound, "base_fee_msat"), _req_int(inbound, "fee_rate_ppm")
    if base > 0:
        raise LndError(f"positive values for inbound base fee msat are not supported: {base}")
    if rate > 0:
        raise LndError(f"positive values for inbound fee rate ppm are not supported: {rate}")
    return base, rate


def _failure(txid: str, vout: int, reason: str, error: str) -> dict[str, Any]:
    txid_bytes = base64.b64encode(bytes.fromhex(txid)[::-1]).decode()
    return {
        "outpoint": {"txid_bytes": txid_bytes, "txid_str": txid, "output_index": vout},
        "reason": reason,
        "update_error": error,
    }


def _apply_policy(
    s: Scenario,
    point: tuple[str, int],
    template: FakePolicy,
    min_specified: bool,
    inbound: tuple[int, int] | None,
) -> dict[str, Any] | None:
    txid, vout = point
    chan = next((c for c in s.channels if (c.funding_txid, c.output_index) == point), None)
    if chan is None:
        return _failure(txid, vout, "UPDATE_FAILURE_NOT_FOUND", "not found")
    if not chan.in_graph:
        return _failure(txid, vout, "UPDATE_FAILURE_UNKNOWN", "could not update policies")
    current = chan.local_policy or FakePolicy()
    new = replace(
        template,
        # zero max_htlc_msat and an unspecified min_htlc keep the current values
        max_htlc_msat=template.max_htlc_msat or current.max_htlc_msat,
        min_htlc=template.min_htlc if min_specified else current.min_htlc,
        inbound_fee_base_msat=inbound[0] if inbound else current.inbound_fee_base_msat,
        inbound_fee_rate_milli_msat=inbound[1] if inbound else current.inbound_fee_rate_milli_msat,
        disabled=current.disabled,
        last_update=max(int(time.time()), current.last_update + 1),
    )
    error = _htlc_limits_error(chan, new)
    if error is not None:
        return _failure(txid, vout, "UPDATE_FAILURE_INVALID_PARAMETER", error)
    chan.local_policy = new
    return None


def _htlc_limits_error(chan: FakeChannel, p: FakePolicy) -> str | None:
    if p.min_htlc < chan.min_htlc_msat:
        return (
            f"min htlc amount of {_msat(p.min_htlc)} is below min htlc parameter of "
            f"{_msat(chan.min_htlc_msat)}"
        )
    if p.max_htlc_msat > chan.max_pending_msat:
        return (
            f"max htlc size of {_msat(p.max_htlc_msat)} is above max pending amount of "
            f"{_msat(chan.max_pending_msat)}"
        )
    if p.min_htlc > p.max_htlc_msat:
        return f"min_htlc {_msat(p.min_htlc)} greater than max_htlc {_msat(p.max_htlc_msat)}"
    return None


# ------------------------------------------------------------------------- closing


def _close_channel(
    s: Scenario, path: str, query: dict[str, list[str]], stream_error: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], bool]:
    """rpcServer.CloseChannel, cooperative flow: (stream lines, whether the stream ends).

    Refusals happen before the first update, so grpc-gateway reports them as an error
    status with an {"error": Status} body and nothing changes."""
    txid, _, raw_index = path.removeprefix(_CLOSE_PREFIX).partition("/")
    if not raw_index.isdigit():
        raise _bad_request(
            "type mismatch, parameter: channel_point.output_index, error: "
            f'strconv.ParseUint: parsing "{raw_index}": invalid syntax'
        )
    if len(txid) != 64 or any(c not in "0123456789abcdef" for c in txid.lower()):
        raise LndError(f"invalid funding txid: {txid}", wrapped=True)
    index = int(raw_index)
    if _flag(query, "force"):
        raise LndError("the fake LND does not do force closes", wrapped=True)
    chan = next(
        (c for c in s.channels if (c.funding_txid, c.output_index) == (txid.lower(), index)),
        None,
    )
    if chan is None:
        raise LndError("channel not found", wrapped=True)  # channeldb.ErrChannelNotFound
    if not chan.active:  # the peer is gone, so is its link in the switch
        raise LndError(
            "unable to gracefully close channel while peer is offline (try force closing "
            "it instead): channel link not found",
            wrapped=True,
        )
    if chan.active_htlcs:
        raise LndError(
            "cannot coop close channel with active htlcs (number of active htlcs: "
            f"{chan.active_htlcs}), bypass this check and initiate the coop close by "
            "setting no_wait=true",
            wrapped=True,
        )
    if stream_error is not None:  # the negotiation failed after it started
        return [{"error": stream_error}], True
    # chainhash.Hash byte order: reversed relative to the displayed txid
    closing_hash = hashlib.sha256(f"fake-close:{chan.channel_point}".encode()).digest()
    s.channels.remove(chan)
    s.closed.append(ClosedChannel(chan, closing_hash[::-1].hex()))
    txid_b64 = base64.b64encode(closing_hash).decode()
    lines: list[dict[str, Any]] = [
        {
            "result": {
                "close_pending": {
                    "txid": txid_b64,
                    "output_index": 0,
                    "fee_per_vbyte": "0",
                    "local_close_tx": False,
                }
            }
        }
    ]
    if s.close_confirms:
        lines.append(
            {
                "result": {
                    "chan_close": {
                        "closing_txid": txid_b64,
                        "success": True,
                        "local_close_output": _close_output(chan.local_balance, True),
                        "remote_close_output": _close_output(chan.remote_balance, False),
                        "additional_outputs": [],
                    }
                }
            }
        )
    return lines, s.close_confirms


def _close_output(amount_sat: int, is_local: bool) -> dict[str, Any]:
    script = bytes([0x00, 0x14]) + hashlib.sha256(str(is_local).encode()).digest()[:20]
    return {
        "amount_sat": str(amount_sat),
        "pk_script": base64.b64encode(script).decode(),
        "is_local": is_local,
        "custom_channel_data": "",
    }


# ---------------------------------------------------------------------- payments

_INVOICE_FIELDS = {
    "memo", "r_preimage", "r_hash", "value", "value_msat", "settled", "creation_date",
    "settle_date", "payment_request", "description_hash", "expiry", "fallback_addr",
    "cltv_expiry", "route_hints", "private", "add_index", "settle_index", "amt_paid",
    "amt_paid_sat", "amt_paid_msat", "state", "htlcs", "features", "is_keysend",
    "payment_addr", "is_amp", "amp_invoice_state", "is_blinded", "blinded_path_config",
}  # fmt: skip

_SEND_FIELDS = {
    "dest", "amt", "payment_hash", "final_cltv_delta", "payment_request",
    "timeout_seconds", "fee_limit_sat", "cltv_limit", "route_hints", "dest_custom_records",
    "amt_msat", "fee_limit_msat", "last_hop_pubkey", "allow_self_payment", "dest_features",
    "max_parts", "no_inflight_updates", "outgoing_chan_ids", "payment_addr",
    "max_shard_size_msat", "amp", "time_pref", "cancelable", "first_hop_custom_records",
}  # fmt: skip


def _sat_or_msat(body: dict[str, Any], sat_key: str, msat_key: str) -> int:
    """lnrpc.UnmarshallAmt: one of the two, never both, never negative."""
    sat, msat = _req_int(body, sat_key), _req_int(body, msat_key)
    if sat and msat:
        raise LndError("sat and msat arguments are mutually exclusive")
    value = sat * 1000 if sat else msat
    if value < 0:
        raise LndError("amount cannot be negative")
    return value


def _add_invoice(s: Scenario, body: dict[str, Any]) -> dict[str, Any]:
    """rpcServer.AddInvoice for a plain (non-AMP, non-hold) invoice."""
    _check_fields(body, _INVOICE_FIELDS)
    value_msat = _sat_or_msat(body, "value", "value_msat")
    memo = body.get("memo", "")
    if not isinstance(memo, str):
        raise _bad_request(f"proto: invalid value for string field memo: {memo!r}")
    add_index = len(s.invoices) + 1
    preimage = hashlib.sha256(f"fake-lnd-preimage-{s.pubkey}-{add_index}".encode()).digest()
    invoice = FakeInvoice(
        payment_request="",
        r_preimage=preimage,
        value_msat=value_msat,
        memo=memo,
        expiry=_req_int(body, "expiry") or 86_400,
        add_index=add_index,
    )
    invoice.payment_request = f"lnbcrt{value_msat}fake1{invoice.r_hash.hex()}"
    s.invoices.append(invoice)
    return {
        "r_hash": base64.b64encode(invoice.r_hash).decode(),
        "payment_request": invoice.payment_request,
        "add_index": str(add_index),
        "payment_addr": base64.b64encode(hashlib.sha256(preimage).digest()).decode(),
    }


def _payment_json(
    inv: FakeInvoice, index: int, status: str, fee_msat: int = 0, reason: str = ""
) -> dict[str, Any]:
    settled = status == "SUCCEEDED"
    return {
        "payment_hash": inv.r_hash.hex(),
        "value": str(inv.value_msat // 1000),
        "creation_date": str(NOW),
        "fee": str(fee_msat // 1000),
        "payment_preimage": inv.r_preimage.hex() if settled else "00" * 32,
        "value_sat": str(inv.value_msat // 1000),
        "value_msat": str(inv.value_msat),
        "payment_request": inv.payment_request,
        "status": status,
        "fee_sat": str(fee_msat // 1000),
        "fee_msat": str(fee_msat),
        "creation_time_ns": str(NOW * 10**9),
        "htlcs": [],
        "payment_index": str(index),
        "failure_reason": reason or "FAILURE_REASON_NONE",
        "first_hop_custom_records": {},
    }


def _send_payment(
    s: Scenario, body: dict[str, Any], stream_error: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Router.SendPaymentV2 for a payment to one of our own invoices: a circular route out
    through one of `outgoing_chan_ids` and back through a channel with `last_hop_pubkey`.
    Request errors raise LndError (answered before the stream starts, with an HTTP error
    status); a payment that finds no affordable route ends FAILED/FAILURE_REASON_NO_ROUTE."""
    _check_fields(body, _SEND_FIELDS)
    pay_req = body.get("payment_request")
    if not isinstance(pay_req, str) or not pay_req:
        raise LndError("unable to send payment: no payment request or destination given")
    inv = next((i for i in s.invoices if i.payment_request == pay_req), None)
    if inv is None:
        raise LndError("invalid payment request: the fake LND pays only its own invoices")
    fee_limit = _sat_or_msat(body, "fee_limit_sat", "fee_limit_msat")
    last_hop: str | None = None
    if body.get("last_hop_pubkey"):
        raw = base64.b64decode(str(body["last_hop_pubkey"]))
        if len(raw) != 33:
            raise LndError(f"invalid vertex length of {len(raw)}, want 33")
        last_hop = raw.hex()
    outgoing = body.get("outgoing_chan_ids") or []
    if not isinstance(outgoing, list):
        raise _bad_request("proto: invalid value for repeated field outgoing_chan_ids")
    out_ids = {_req_int({"outgoing_chan_ids": x}, "outgoing_chan_ids") for x in outgoing}
    if not _req_bool(body, "allow_self_payment"):
        raise LndError("self-payments not allowed")
    if inv.settled:
        raise LndError("invoice is already paid")
    amount = inv.value_msat
    if amount <= 0:
        raise LndError("amount must be specified when paying a zero amount invoice")

    index = len(s.payments) + 1
    in_flight = {"result": _payment_json(inv, index, "IN_FLIGHT")}
    if stream_error is not None:
        return [in_flight, {"error": stream_error}]
    lines = [] if _req_bool(body, "no_inflight_updates") else [in_flight]
    route = _cheapest_circle(s, amount, fee_limit, out_ids, last_hop)
    if route is None:
        s.payments.append(
            FakePayment(inv.r_hash.hex(), amount, 0, "FAILED", "FAILURE_REASON_NO_ROUTE")
        )
        lines.append({"result": _payment_json(inv, index, "FAILED", 0, "FAILURE_REASON_NO_ROUTE")})
        return lines
    out, inn, fee = route
    out.move_msat(-(amount + fee))
    inn.move_msat(amount)
    inv.settled = True
    s.payments.append(
        FakePayment(inv.r_hash.hex(), amount, fee, "SUCCEEDED", "", out.chan_id, inn.chan_id)
    )
    lines.append({"result": _payment_json(inv, index, "SUCCEEDED", fee)})
    return lines


def _cheapest_circle(
    s: Scenario, amount: int, fee_limit: int, out_ids: set[int], last_hop: str | None
) -> tuple[FakeChannel, FakeChannel, int] | None:
    """(out channel, in channel, fee) of the cheapest usable circle within the fee limit.

    The fee is what the last peer charges to forward over the in channel (its policy) plus
    REBALANCE_HOP_FEE_MSAT for the hops in between (none when both peers are the same)."""
    best: tuple[FakeChannel, FakeChannel, int] | None = None
    for out in s.channels:
        if not out.active or (out_ids and out.chan_id not in out_ids):
            continue
        for inn in s.channels:
            policy = inn.remote_policy
            if inn is out or not inn.active or policy is None or policy.disabled:
                continue
            if last_hop is not None and inn.peer_pubkey != last_hop:
                continue
            if not policy.min_htlc <= amount <= policy.max_htlc_msat:
                continue
            fee = policy.fee_base_msat + amount * policy.fee_rate_milli_msat // 1_000_000
            if inn.peer_pubkey != out.peer_pubkey:
                fee += REBALANCE_HOP_FEE_MSAT
            if fee > fee_limit:
                continue
            if out.local_msat - out.reserve_msat < amount + fee:
                continue
            if inn.remote_msat - inn.reserve_msat < amount:
                continue
            if best is None or fee < best[2]:
                best = (out, inn, fee)
    return best


# --------------------------------------------------------------------- standalone


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake LND REST API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--macaroon", default=DEFAULT_MACAROON, help="hex macaroon")
    parser.add_argument("--forwards", type=int, default=25, help="forwarding log size")
    args = parser.parse_args(argv)
    scenario = default_scenario(args.forwards)
    scenario.macaroon = args.macaroon
    fake = FakeLndServer(scenario, host=args.host, port=args.port)
    serve_until_stopped(fake, f"fake LND listening on {fake.url} (macaroon {fake.macaroon})")


if __name__ == "__main__":
    main()
