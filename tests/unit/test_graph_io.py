"""engine.graph_io against the real 2026-02-03 mainnet snapshot and against broken inputs.

The snapshot lives outside the repository (../shared/data). Its absence is a failure, not a
skip: CI has it, and a silently skipped loader test would hide a broken setup.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import statistics
import tarfile
import zipfile
from collections import Counter
from pathlib import Path

import pytest

import engine.graph_io as graph_io
from engine.graph_io import (
    GraphFormatError,
    lnd_edge,
    load_csv_folder,
    load_describegraph_file,
    load_graph,
    parse_describegraph,
    parse_graph_bytes,
    parse_listchannels,
)
from engine.node_source import NetworkGraph, RoutingPolicy, parse_scid, scid_from_int

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOT = ROOT.parent / "shared" / "data" / "ln-graph-2026-02-03"
NUM_NODES = 17_324
NUM_EDGES = 50_808
# The one direction policies.csv flags zero_policy=1 (an all-zero channel_update).
ZERO_POLICY_CHAN = 50287


def _snapshot() -> Path:
    if not (SNAPSHOT / "describegraph.json.gz").is_file():
        pytest.fail(f"graph snapshot missing: {SNAPSHOT} (expected next to the repository)")
    return SNAPSHOT


@pytest.fixture(scope="module")
def json_graph() -> NetworkGraph:
    return load_graph(_snapshot())


@pytest.fixture(scope="module")
def csv_graph() -> NetworkGraph:
    return load_csv_folder(_snapshot())


def enabled(graph: NetworkGraph) -> list[RoutingPolicy]:
    return [
        p for e in graph.edges for p in (e.node1_policy, e.node2_policy) if p and not p.disabled
    ]


# -- the real snapshot ------------------------------------------------------------------


def test_snapshot_counts(json_graph: NetworkGraph) -> None:
    assert len(json_graph.nodes) == NUM_NODES
    assert len(json_graph.edges) == NUM_EDGES
    assert len({n.pubkey for n in json_graph.nodes}) == NUM_NODES
    assert len({e.channel_id for e in json_graph.edges}) == NUM_EDGES
    assert sum(e.capacity_sat for e in json_graph.edges) == 536_168_010_515  # 5,361.68 BTC


def test_snapshot_shape(json_graph: NetworkGraph) -> None:
    pubkeys = {n.pubkey for n in json_graph.nodes}
    for e in json_graph.edges:
        parse_scid(e.channel_id)
        assert e.node1 < e.node2
        assert e.node1 in pubkeys and e.node2 in pubkeys
        assert e.capacity_sat > 0
    assert all(re.fullmatch(r"0[23][0-9a-f]{64}", pk) for pk in pubkeys)
    degree = Counter(pk for e in json_graph.edges for pk in (e.node1, e.node2))
    assert sum(1 for d in degree.values() if d == 1) == 9_391
    aliases = [n.alias for n in json_graph.nodes[:3]]
    assert aliases == ["ACINQ", "1ML.com node ALPHA", "CoinGate"]


def test_snapshot_policies(json_graph: NetworkGraph) -> None:
    policies = [p for e in json_graph.edges for p in (e.node1_policy, e.node2_policy)]
    assert sum(p is None for p in policies) == 1
    assert all(isinstance(p, RoutingPolicy) for p in policies if p is not None)
    on = enabled(json_graph)
    assert len(on) == 65_809  # README: 65,810, counting the zero policy as enabled
    assert statistics.median(p.fee_rate_ppm for p in on) == 100
    assert statistics.median(p.base_fee_msat for p in on) == 33
    assert 0.44 < sum(p.base_fee_msat == 0 for p in on) / len(on) < 0.46
    assert Counter(p.cltv_delta for p in on).most_common(1)[0][0] == 80
    assert all(p.inbound_base_fee_msat is None for p in on)


def test_snapshot_first_edge(json_graph: NetworkGraph) -> None:
    e = json_graph.edges[0]
    assert e.channel_id == scid_from_int(0) == "0x0x0"
    assert e.node1 == "024b9a1fa8e006f1e3937f65f66c408e6da8e1ca728ea43222a7381df1cc449605"
    assert e.node2 == "03864ef025fde8fb587d989186ce6a4a186895ee44a926bfc370e2c366597a3f8f"
    assert e.capacity_sat == 9_093_802
    assert e.node1_policy == RoutingPolicy(0, 11000, 34, 1, 4_092_210_000)
    assert e.node2_policy == RoutingPolicy(1000, 499, 144, 0, 1_000_000)
    assert e.last_update == 0


def test_csv_matches_json(json_graph: NetworkGraph, csv_graph: NetworkGraph) -> None:
    assert len(csv_graph.nodes) == NUM_NODES
    assert len(csv_graph.edges) == NUM_EDGES
    assert [(n.pubkey, n.alias) for n in csv_graph.nodes] == [
        (n.pubkey, n.alias) for n in json_graph.nodes
    ]
    by_id = {e.channel_id: e for e in csv_graph.edges}
    assert by_id.keys() == {e.channel_id for e in json_graph.edges}
    sample = json_graph.edges[::97] + json_graph.edges[-5:]
    for je in sample:
        ce = by_id[je.channel_id]
        assert (ce.node1, ce.node2, ce.capacity_sat) == (je.node1, je.node2, je.capacity_sat)
        assert ce.node1_policy == je.node1_policy, je.channel_id
        assert ce.node2_policy == je.node2_policy, je.channel_id
    differing = [
        (e.channel_id, side)
        for e in json_graph.edges
        for side in ("node1_policy", "node2_policy")
        if getattr(e, side) != getattr(by_id[e.channel_id], side)
    ]
    assert differing == []
    # policies.csv marks this direction zero_policy=1 (an all-zero channel_update); both
    # loaders treat it as no policy, as describegraph renders it.
    assert by_id[scid_from_int(ZERO_POLICY_CHAN)].node1_policy is None


# -- small well-formed inputs -----------------------------------------------------------


def _edge(chan: int | str = "1", capacity: object = "1000000", **extra: object) -> dict:
    return {
        "channel_id": str(chan),
        "node1_pub": "02" + "aa" * 32,
        "node2_pub": "03" + "bb" * 32,
        "capacity": capacity,
        "node1_policy": {
            "time_lock_delta": 80,
            "min_htlc": "1000",
            "fee_base_msat": "1000",
            "fee_rate_milli_msat": "100",
            "max_htlc_msat": "990000000",
            "disabled": False,
            "inbound_fee_base_msat": -5,
            "inbound_fee_rate_milli_msat": -10,
        },
        "node2_policy": None,
        **extra,
    }


def _doc(*edges: dict) -> dict:
    return {
        "nodes": [{"pub_key": "02" + "aa" * 32, "alias": "a"}, {"pub_key": "03" + "bb" * 32}],
        "edges": list(edges),
    }


def test_parse_small_document(tmp_path: Path) -> None:
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(_doc(_edge(chan=879609302301671425))))
    graph = load_graph(path)
    assert [n.alias for n in graph.nodes] == ["a", ""]
    (e,) = graph.edges
    assert e.channel_id == "800000x1234x1"
    assert e.capacity_sat == 1_000_000
    assert e.node1_policy == RoutingPolicy(1000, 100, 80, 1000, 990_000_000, -5, -10, False)
    assert e.node2_policy is None
    gz = tmp_path / "graph.json.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert load_graph(gz) == graph


def _write_csv(path: Path, rows: list[list[object]]) -> None:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(buf.getvalue().encode()))
    else:
        path.write_text(buf.getvalue())


NODES = [["idx", "pubkey", "alias"], [0, "02" + "aa" * 32, "a"], [1, "03" + "bb" * 32, "b"]]
CHANNELS = [
    ["chan_idx", "node1_pub", "node2_pub", "capacity_sat"],
    [7, "02" + "aa" * 32, "03" + "bb" * 32, 500_000],
]
POLICIES = [
    [
        "chan_idx",
        "direction",
        "disabled",
        "fee_base_msat",
        "fee_rate_ppm",
        "cltv_delta",
        "htlc_min_msat",
        "htlc_max_msat",
    ],
    [7, 0, 0, 1000, 200, 40, 1, 495_000_000],
    [7, 1, 1, 0, 5, 144, 1000, 500_000_000],
]


def test_csv_folder_small(tmp_path: Path) -> None:
    _write_csv(tmp_path / "nodes.csv", NODES)
    _write_csv(tmp_path / "channels.csv.gz", CHANNELS)
    _write_csv(tmp_path / "policies.csv", POLICIES)
    graph = load_graph(tmp_path)  # no describegraph file: read as the CSV set
    assert [n.alias for n in graph.nodes] == ["a", "b"]
    (e,) = graph.edges
    assert e.channel_id == "0x0x7"
    assert e.capacity_sat == 500_000
    assert e.node1_policy == RoutingPolicy(1000, 200, 40, 1, 495_000_000)
    assert e.node2_policy == RoutingPolicy(0, 5, 144, 1000, 500_000_000, disabled=True)


# -- malformed inputs -------------------------------------------------------------------


def test_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "describegraph.json.gz"
    path.write_bytes((_snapshot() / "describegraph.json.gz").read_bytes()[:200_000])
    with pytest.raises(GraphFormatError, match=r"describegraph\.json\.gz: cannot read"):
        load_graph(path)
    with pytest.raises(GraphFormatError, match=r"describegraph\.json\.gz: cannot read"):
        load_graph(tmp_path)


def test_corrupt_gzip(tmp_path: Path) -> None:
    """Flipped bits inside the deflate stream make zlib raise zlib.error, not OSError."""
    raw = bytearray(gzip.compress(json.dumps(_doc(*[_edge(i) for i in range(300)])).encode()))
    for i in range(40, 240):
        raw[i] ^= 0x5A
    path = tmp_path / "graph.json.gz"
    path.write_bytes(bytes(raw))
    with pytest.raises(GraphFormatError, match=r"graph\.json\.gz: cannot read"):
        load_graph(path)


def test_not_gzip(tmp_path: Path) -> None:
    path = tmp_path / "graph.json.gz"
    path.write_text(json.dumps(_doc()))
    with pytest.raises(GraphFormatError, match=r"graph\.json\.gz: cannot read"):
        load_graph(path)


def test_corrupt_gzip_csv(tmp_path: Path) -> None:
    _write_csv(tmp_path / "nodes.csv", NODES)
    _write_csv(tmp_path / "policies.csv", POLICIES)
    rows = CHANNELS + [[i, "02" + "aa" * 32, "03" + "bb" * 32, i * 1000] for i in range(2000)]
    _write_csv(tmp_path / "channels.csv.gz", rows)
    raw = bytearray((tmp_path / "channels.csv.gz").read_bytes())
    for i in range(40, 240):
        raw[i] ^= 0x5A
    (tmp_path / "channels.csv.gz").write_bytes(bytes(raw))
    with pytest.raises(GraphFormatError, match=r"channels\.csv\.gz: cannot read"):
        load_graph(tmp_path)


def test_invalid_json(tmp_path: Path) -> None:
    path = tmp_path / "graph.json"
    path.write_text('{"nodes": [],\n "edges": [1, 2,,]}')
    with pytest.raises(GraphFormatError, match=r"graph\.json: invalid JSON at line 2"):
        load_graph(path)


def test_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "graph.json"
    path.write_bytes(b'{"nodes": [{"pub_key": "\xff\xfe"}], "edges": []}')
    with pytest.raises(GraphFormatError, match=r"graph\.json: cannot read"):
        load_graph(path)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"nodes": []}, r"'edges' list missing"),
        ({"nodes": [], "edges": {}}, r"'edges' list missing"),
        ({"edges": []}, r"'nodes' list missing"),
        ([], r"'nodes' list missing"),
        ({"nodes": [{"alias": "x"}], "edges": []}, r"node #0: 'pub_key' missing"),
        ({"nodes": [{"pub_key": "02", "last_update": "y"}], "edges": []}, r"node #0\.last_upd"),
        ({"nodes": [], "edges": [_edge(capacity="lots")]}, r"edge 1\.capacity: .*'lots'"),
        ({"nodes": [], "edges": [_edge(capacity="1e6")]}, r"edge 1\.capacity: .*'1e6'"),
        ({"nodes": [], "edges": [_edge(capacity=True)]}, r"edge 1\.capacity: .*True"),
        ({"nodes": [], "edges": [_edge(capacity=None)]}, r"edge 1\.capacity: .*None"),
        ({"nodes": [], "edges": [_edge(chan="abc")]}, r"edge\.channel_id: .*'abc'"),
        ({"nodes": [], "edges": [_edge(chan=str(1 << 64))]}, r"not a uint64"),
        ({"nodes": [], "edges": [_edge(node2_pub=None)]}, r"edge 1: node1_pub and node2_pub"),
        ({"nodes": [], "edges": [_edge(node2_policy=[1])]}, r"edge 1\.node2_policy: expected"),
        ({"nodes": [], "edges": ["edge"]}, r"edge: expected an object"),
    ],
)
def test_malformed_documents(doc: object, message: str) -> None:
    with pytest.raises(GraphFormatError, match=message):
        parse_describegraph(doc)


def test_edge_with_non_integer_capacity_in_file(tmp_path: Path) -> None:
    path = tmp_path / "describegraph.json"
    path.write_text(json.dumps(_doc(_edge(), _edge(chan=2, capacity="12.5k"))))
    with pytest.raises(GraphFormatError, match=r"edge 2\.capacity: expected an integer"):
        load_describegraph_file(path)
    with pytest.raises(GraphFormatError, match=r"edge 9\.node1_policy\.fee_rate_milli_msat"):
        lnd_edge({**_edge(chan=9), "node1_policy": {"fee_rate_milli_msat": "1%"}})


@pytest.mark.parametrize(
    ("name", "table", "column"),
    [
        ("nodes.csv", NODES, "pubkey"),
        ("channels.csv.gz", CHANNELS, "capacity_sat"),
        ("policies.csv", POLICIES, "fee_rate_ppm"),
    ],
)
def test_csv_missing_column(tmp_path: Path, name: str, table: list, column: str) -> None:
    for fname, rows in (
        ("nodes.csv", NODES),
        ("channels.csv.gz", CHANNELS),
        ("policies.csv", POLICIES),
    ):
        if fname == name:
            drop = rows[0].index(column)
            rows = [[v for i, v in enumerate(r) if i != drop] for r in rows]
        _write_csv(tmp_path / fname, rows)
    with pytest.raises(
        GraphFormatError, match=rf"{re.escape(name)}: missing columns \['{column}'\]"
    ):
        load_csv_folder(tmp_path)


def test_csv_bad_value(tmp_path: Path) -> None:
    _write_csv(tmp_path / "nodes.csv", NODES)
    _write_csv(tmp_path / "channels.csv", CHANNELS)
    _write_csv(tmp_path / "policies.csv", [*POLICIES, [7, 0, 0, "free", 1, 40, 1, 2]])
    with pytest.raises(GraphFormatError, match=r"policies\.csv line 4: .*'free'"):
        load_csv_folder(tmp_path)
    _write_csv(tmp_path / "policies.csv", POLICIES)
    _write_csv(tmp_path / "channels.csv", [*CHANNELS, [8, "02", "03"]])  # short row
    with pytest.raises(GraphFormatError, match=r"channels\.csv line 3: .*None"):
        load_csv_folder(tmp_path)
    _write_csv(tmp_path / "channels.csv", [*CHANNELS, [-8, "02", "03", 1000]])
    with pytest.raises(GraphFormatError, match=r"channels\.csv line 3: not a uint64"):
        load_csv_folder(tmp_path)


def test_csv_file_missing(tmp_path: Path) -> None:
    _write_csv(tmp_path / "nodes.csv", NODES)
    _write_csv(tmp_path / "policies.csv", POLICIES)
    with pytest.raises(GraphFormatError, match=r"channels\.csv\(\.gz\) not found"):
        load_graph(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(GraphFormatError, match=r"nodes\.csv\(\.gz\) not found"):
        load_graph(empty)


def test_nonexistent_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-graph.json.gz"
    with pytest.raises(GraphFormatError, match=rf"{re.escape(str(missing))}: no such file"):
        load_graph(missing)


# -- Core Lightning listchannels / listnodes --------------------------------------------------

# Shaped exactly like doc/schemas/listchannels.json and listnodes.json of Core Lightning
# (their examples): one entry per direction, every required field, msat amounts as integers.
CLN_A = "022d223620a359a47ff7f7ac447c85c46c923da53389221a0054c11c1e3ca31d59"
CLN_B = "0266e4598d1d3c415f572a8488830b60f7e744ed9235eb0b1ba93283b315c03518"
CLN_C = "035d2b1192dfba134e10e540875d366ebc8bc353d5aa766b80c090b39c3a5d885d"
CLN_D = "0382ce59ebf18be7d84677c2e35f23294b9992ceca95491fcf8a56c6cb2d9de199"


def _direction(source: str, destination: str, scid: str, direction: int, **extra: object) -> dict:
    return {
        "source": source,
        "destination": destination,
        "short_channel_id": scid,
        "direction": direction,
        "public": True,
        "amount_msat": 1_000_000_000,
        "message_flags": 1,
        "channel_flags": direction,
        "active": True,
        "last_update": 1738000001,
        "base_fee_millisatoshi": 1,
        "fee_per_millionth": 10,
        "delay": 6,
        "htlc_minimum_msat": 0,
        "htlc_maximum_msat": 990_000_000,
        "features": "",
        **extra,
    }


def listchannels_doc() -> dict:
    return {
        "channels": [
            _direction(CLN_A, CLN_B, "110x1x0", 0),
            _direction(CLN_B, CLN_A, "110x1x0", 1, base_fee_millisatoshi=1000, delay=144),
            _direction(CLN_C, CLN_A, "124x1x1", 1, fee_per_millionth=250),
            _direction(CLN_A, CLN_C, "124x1x1", 0),
            # only one direction known; the schema makes htlc_maximum_msat optional
            _direction(
                CLN_D,
                CLN_C,
                "126x1x0",
                1,
                active=False,
                last_update=1738000002,
                htlc_maximum_msat=None,
            ),
        ]
    }


def listnodes_doc() -> dict:
    return {
        "nodes": [
            {
                "nodeid": CLN_B,
                "alias": "SILENTARTIST-v26.09",
                "color": "0266e4",
                "last_timestamp": 1738000000,
                "features": "808898882a8a59a1",
                "addresses": [],
            },
            {"nodeid": CLN_C},  # no node_announcement yet: only the id
            {
                "nodeid": CLN_A,
                "alias": "HOPPINGFIRE-v26.09",
                "color": "022d22",
                "last_timestamp": 1738000005,
                "features": "808898882a8a59a1",
                "addresses": [{"type": "ipv4", "address": "127.0.0.1", "port": 9735}],
            },
        ]
    }


def _without_none(doc: dict) -> dict:
    doc["channels"] = [{k: v for k, v in d.items() if v is not None} for d in doc["channels"]]
    return doc


def test_listchannels_pairs_directions() -> None:
    graph = parse_listchannels(_without_none(listchannels_doc()), listnodes_doc())
    assert [(n.pubkey, n.alias, n.last_update) for n in graph.nodes] == [
        (CLN_B, "SILENTARTIST-v26.09", 1738000000),
        (CLN_C, "", 0),
        (CLN_A, "HOPPINGFIRE-v26.09", 1738000005),
        (CLN_D, "", 0),  # an endpoint listnodes does not know
    ]
    ab, ac, cd = graph.edges
    assert (ab.channel_id, ab.node1, ab.node2, ab.capacity_sat) == (
        "110x1x0",
        CLN_A,
        CLN_B,
        1_000_000,
    )
    assert ab.node1_policy == RoutingPolicy(1, 10, 6, 0, 990_000_000)
    assert ab.node2_policy == RoutingPolicy(1000, 10, 144, 0, 990_000_000)
    assert ab.last_update == 1738000001
    # node1 is the smaller pubkey whichever direction comes first
    assert (ac.node1, ac.node2) == (CLN_A, CLN_C)
    assert ac.node2_policy is not None and ac.node2_policy.fee_rate_ppm == 250
    assert (cd.node1, cd.node2) == (CLN_C, CLN_D)
    assert cd.node1_policy is None  # C -> D never announced
    assert cd.node2_policy == RoutingPolicy(1, 10, 6, 0, 1_000_000_000, disabled=True)
    assert cd.last_update == 1738000002


def test_listchannels_legacy_msat_strings_and_no_listnodes() -> None:
    doc = {
        "channels": [
            _direction(
                CLN_A,
                CLN_B,
                "110x1x0",
                0,
                amount_msat="2000000000msat",
                htlc_minimum_msat="1000msat",
                htlc_maximum_msat="1980000000msat",
            )
        ]
    }
    graph = parse_listchannels(doc)
    assert [n.pubkey for n in graph.nodes] == [CLN_A, CLN_B]
    (e,) = graph.edges
    assert e.capacity_sat == 2_000_000
    assert e.node1_policy == RoutingPolicy(1, 10, 6, 1000, 1_980_000_000)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"amount_msat": "12.5"}, r"channels\[1\]\.amount_msat: expected an amount in msat"),
        ({"amount_msat": -1}, r"channels\[1\]\.amount_msat: .*-1"),
        ({"amount_msat": 1.5e9}, r"channels\[1\]\.amount_msat"),
        ({"amount_msat": "12xmsat"}, r"channels\[1\]\.amount_msat"),
        ({"htlc_maximum_msat": True}, r"channels\[1\]\.htlc_maximum_msat: .*True"),
        ({"source": CLN_B.upper()}, r"channels\[1\]\.source: expected a node public key"),
        ({"source": "04" + CLN_B[2:]}, r"channels\[1\]\.source: .*starting 02 or 03"),
        ({"destination": CLN_A[:-2]}, r"channels\[1\]\.destination: expected a node public"),
        ({"destination": 7}, r"channels\[1\]\.destination: .*got 7"),
        ({"destination": CLN_B}, r"channels\[1\]: source and destination are the same node"),
        ({"short_channel_id": "abc"}, r"channels\[1\]\.short_channel_id: not a short channel"),
        ({"short_channel_id": 110}, r"channels\[1\]\.short_channel_id: expected a short"),
        ({"short_channel_id": "1x1x99999"}, r"channels\[1\]\.short_channel_id: .*out of range"),
        ({"delay": None}, r"channels\[1\]\.delay: expected an integer"),
        ({"fee_per_millionth": "10"}, r"channels\[1\]\.fee_per_millionth: .*'10'"),
        ({"base_fee_millisatoshi": 1 << 32}, r"channels\[1\]\.base_fee_millisatoshi"),
        ({"active": "yes"}, r"channels\[1\]\.active: expected true or false"),
        ({"last_update": -5}, r"channels\[1\]\.last_update"),
    ],
)
def test_listchannels_malformed_field(change: dict, message: str) -> None:
    doc = listchannels_doc()
    doc["channels"][1].update(change)
    with pytest.raises(GraphFormatError, match=message):
        parse_listchannels(doc)


@pytest.mark.parametrize(
    "field", ["source", "amount_msat", "active", "delay", "htlc_minimum_msat", "last_update"]
)
def test_listchannels_missing_field(field: str) -> None:
    doc = listchannels_doc()
    del doc["channels"][3][field]
    with pytest.raises(GraphFormatError, match=rf"channels\[3\]\.{field}: missing"):
        parse_listchannels(doc)


@pytest.mark.parametrize(
    ("doc", "nodes", "message"),
    [
        ({}, None, r"not a listchannels document: 'channels' list missing"),
        ({"channels": {}}, None, r"'channels' list missing"),
        ({"channels": [[]]}, None, r"channels\[0\]: expected an object"),
        (None, {"nodes": [{"nodeid": "02"}]}, r"nodes\[0\]\.nodeid: expected a node public"),
        (None, {"nodes": [{"alias": "x"}]}, r"nodes\[0\]\.nodeid: missing"),
        (None, {"nodes": [{"nodeid": CLN_A, "alias": 5}]}, r"nodes\[0\]\.alias: expected text"),
        (None, {"nodes": [{"nodeid": CLN_A, "last_timestamp": "x"}]}, r"nodes\[0\]\.last_t"),
        (None, {"nodes": "all"}, r"not a listnodes document"),
    ],
)
def test_listchannels_malformed_documents(doc: object, nodes: object, message: str) -> None:
    with pytest.raises(GraphFormatError, match=message):
        parse_listchannels(listchannels_doc() if doc is None else doc, nodes)


def test_listchannels_inconsistent_channel() -> None:
    doc = listchannels_doc()
    doc["channels"].append(_direction(CLN_A, CLN_B, "110x1x0", 0))
    with pytest.raises(GraphFormatError, match=r"channels\[5\]: a second entry for 110x1x0"):
        parse_listchannels(doc)
    doc["channels"][5] = _direction(CLN_A, CLN_D, "110x1x0", 0)
    with pytest.raises(GraphFormatError, match=r"channels\[5\]: 110x1x0 joins other nodes"):
        parse_listchannels(doc)
    doc["channels"][5] = _direction(CLN_B, CLN_A, "124x1x1", 0, amount_msat=5000)
    with pytest.raises(GraphFormatError, match=r"channels\[5\]: 124x1x1 joins other nodes"):
        parse_listchannels(doc)
    doc["channels"][5] = _direction(CLN_C, CLN_D, "126x1x0", 0, amount_msat=5000)
    with pytest.raises(GraphFormatError, match=r"channels\[5\]\.amount_msat: 5000 differs"):
        parse_listchannels(doc)


# -- uploads: parse_graph_bytes ----------------------------------------------------------------


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _snapshot_csv() -> dict[str, bytes]:
    return {
        f: (_snapshot() / f).read_bytes()
        for f in ("nodes.csv.gz", "channels.csv.gz", "policies.csv.gz")
    }


def test_upload_snapshot_describegraph(json_graph: NetworkGraph) -> None:
    data = (_snapshot() / "describegraph.json.gz").read_bytes()
    assert parse_graph_bytes(data, "describegraph.json.gz") == json_graph
    # recognised by content: the name does not matter
    assert parse_graph_bytes(data, "graph.bin").edges == json_graph.edges


def test_upload_snapshot_csv_archives(csv_graph: NetworkGraph) -> None:
    files = _snapshot_csv()
    nested = {f"ln-graph-2026-02-03/{name}": data for name, data in files.items()}
    nested["ln-graph-2026-02-03/README.md"] = b"# notes"
    nested["__MACOSX/ln-graph-2026-02-03/._nodes.csv.gz"] = b"\0"
    assert parse_graph_bytes(_zip(nested), "graph.zip") == csv_graph
    assert parse_graph_bytes(_tar_gz(files), "graph.tar.gz") == csv_graph


def test_upload_small_documents(tmp_path: Path) -> None:
    cln = _without_none(listchannels_doc())
    expected = parse_listchannels(cln, listnodes_doc())
    combined = json.dumps({"listchannels": cln, "listnodes": listnodes_doc()}).encode()
    assert parse_graph_bytes(combined, "cln.json") == expected
    assert parse_graph_bytes(gzip.compress(combined), "cln.json.gz") == expected
    rpc = {"jsonrpc": "2.0", "id": 1, "result": cln}
    bare = {"listchannels": cln["channels"], "listnodes": listnodes_doc()["nodes"]}
    assert parse_graph_bytes(json.dumps(bare).encode(), "x.json") == expected
    only_channels = parse_graph_bytes(json.dumps(rpc).encode(), "listchannels.json")
    assert only_channels.edges == expected.edges
    in_zip = {
        "listchannels.json": json.dumps(cln).encode(),
        "listnodes.json": json.dumps(listnodes_doc()).encode(),
    }
    assert parse_graph_bytes(_zip(in_zip), "cln.zip") == expected
    lnd = json.dumps(_doc(_edge())).encode()
    assert parse_graph_bytes(b"\xef\xbb\xbf" + lnd, "graph.json").edges[0].capacity_sat == 1_000_000
    assert parse_graph_bytes(_zip({"dump/describegraph.json": lnd}), "g.zip").nodes[0].alias == "a"


def test_upload_truncated_and_damaged() -> None:
    whole = (_snapshot() / "describegraph.json.gz").read_bytes()
    with pytest.raises(GraphFormatError, match=r"g\.json\.gz: truncated gzip data"):
        parse_graph_bytes(whole[:200_000], "g.json.gz")
    raw = gzip.decompress(whole)
    with pytest.raises(GraphFormatError, match=r"g\.json: JSON ends early at line 1 .*truncated"):
        parse_graph_bytes(raw[:5_000_000], "g.json")
    with pytest.raises(GraphFormatError, match=r"g\.json: invalid JSON at line 2 column 14: Exp"):
        parse_graph_bytes(b'{"nodes": [],\n "edges": [1,,]}', "g.json")
    with pytest.raises(GraphFormatError, match=r"g\.json: not UTF-8 text"):
        parse_graph_bytes(b'{"nodes": [{"pub_key": "\xff\xfe"}], "edges": []}', "g.json")
    damaged = bytearray(gzip.compress(raw[:300_000]))
    for i in range(40, 240):
        damaged[i] ^= 0x5A
    with pytest.raises(GraphFormatError, match=r"g\.gz: damaged gzip data"):
        parse_graph_bytes(bytes(damaged), "g.gz")
    archive = _tar_gz(_snapshot_csv())
    with pytest.raises(GraphFormatError, match=r"g\.tar\.gz: truncated gzip"):
        parse_graph_bytes(archive[: len(archive) // 2], "g.tar.gz")
    zipped = _zip(_snapshot_csv())
    with pytest.raises(GraphFormatError, match=r"g\.zip: damaged or truncated zip"):
        parse_graph_bytes(zipped[: len(zipped) // 2], "g.zip")
    truncated_member = _zip({"nodes.csv.gz": _snapshot_csv()["nodes.csv.gz"][:1000]})
    with pytest.raises(GraphFormatError, match=r"nodes\.csv\.gz: truncated gzip"):
        parse_graph_bytes(truncated_member, "g.zip")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", r"up\.bin: the file is empty"),
        (b"  \n", r"the file is empty"),
        (b"nodes,channels\n1,2\n", r"not a graph file \(expected JSON, gzip, zip or tar\.gz"),
        (b"[1, 2]", r"expected a JSON object, got list"),
        (b'{"nodes": [{"nodeid": "02"}]}', r"a node list without channels"),
        (b'{"hello": 1}', r"not a graph document \(keys: hello\)"),
        (
            json.dumps(_doc(_edge(node1_pub="02" + "AA" * 32))).encode(),
            r"edges\[0\]\.node1_pub: expected a node public key",
        ),
        (
            json.dumps({"nodes": [{"pub_key": "03xyz"}], "edges": []}).encode(),
            r"nodes\[0\]\.pub_key: expected a node public key",
        ),
        (
            json.dumps(_doc(_edge(node2_pub="02" + "aa" * 32))).encode(),
            r"edges\[0\]\.node1_pub: a channel from a node to itself",
        ),
        (_zip({"notes.txt": b"hi"}), r"up\.bin: expected nodes\.csv, .* found notes\.txt"),
        (_zip({"a.json": b"{}", "b.json": b"{}"}), r"found a\.json, b\.json"),
        (_zip({"nodes.csv": b"idx,pubkey,alias\n"}), r"channels\.csv\(\.gz\) not found"),
        (_zip({"x/nodes.csv": b"", "y/nodes.csv": b""}), r"more than one candidate"),
        (
            _zip({"nodes.csv": b"\xff\xfe", "channels.csv": b"", "policies.csv": b""}),
            r"nodes\.csv: not UTF-8 text",
        ),
        (_zip({"g.json": b'{"channels": [1]}'}), r"channels\[0\]: expected an object"),
    ],
)
def test_upload_rejected(data: bytes, message: str) -> None:
    with pytest.raises(GraphFormatError, match=message):
        parse_graph_bytes(data, "up.bin")


def test_upload_bad_csv_pubkey() -> None:
    def table(rows: list[list[object]]) -> bytes:
        buf = io.StringIO()
        csv.writer(buf).writerows(rows)
        return buf.getvalue().encode()

    files = {"nodes.csv": table(NODES), "policies.csv": table(POLICIES)}
    files["channels.csv"] = table([*CHANNELS, [8, "02" + "aa" * 32, "05" + "bb" * 32, 9]])
    with pytest.raises(GraphFormatError, match=r"channels\.csv line 3: node2_pub: expected"):
        parse_graph_bytes(_zip(files), "g.zip")
    files["channels.csv"] = table(CHANNELS)
    assert len(parse_graph_bytes(_zip(files), "g.zip").edges) == 1


def test_upload_size_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_io, "MAX_UPLOAD_BYTES", 1000)
    with pytest.raises(GraphFormatError, match=r"big\.json: 0 MiB, more than 0 MiB"):
        parse_graph_bytes(b" " * 1001, "big.json")
    monkeypatch.setattr(graph_io, "MAX_UPLOAD_BYTES", 10**9)
    monkeypatch.setattr(graph_io, "MAX_UNPACKED_BYTES", 1024 * 1024)
    bomb = gzip.compress(b" " * (4 * 1024 * 1024))  # 4 MiB of spaces in 4 kB
    assert len(bomb) < 10_000
    with pytest.raises(GraphFormatError, match=r"bomb\.gz: more than 1 MiB once decompressed"):
        parse_graph_bytes(bomb, "bomb.gz")
    with pytest.raises(GraphFormatError, match=r"z\.zip: more than 1 MiB once unpacked"):
        parse_graph_bytes(_zip({"nodes.csv": b" " * (2 * 1024 * 1024)}), "z.zip")
    monkeypatch.setattr(graph_io, "MAX_CHANNELS", 2)
    with pytest.raises(GraphFormatError, match=r"listchannels: 5 entries, more than the 4"):
        parse_graph_bytes(json.dumps(listchannels_doc()).encode(), "cln.json")
    many = json.dumps(_doc(_edge(1), _edge(2), _edge(3))).encode()
    with pytest.raises(GraphFormatError, match=r"3 edges, more than 2"):
        parse_graph_bytes(many, "lnd.json")
