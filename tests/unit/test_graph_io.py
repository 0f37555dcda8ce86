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
from collections import Counter
from pathlib import Path

import pytest

from engine.graph_io import (
    GraphFormatError,
    lnd_edge,
    load_csv_folder,
    load_describegraph_file,
    load_graph,
    parse_describegraph,
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
