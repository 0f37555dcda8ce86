"""Read a Lightning channel graph from the formats Daznode accepts.

- LND's describegraph JSON (`lncli describegraph`, REST GET /v1/graph), optionally gzipped;
- the CSV set of ../shared/data (nodes.csv, channels.csv, policies.csv, optionally .gz).

Every malformed input raises GraphFormatError naming the problem, never a bare KeyError.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .node_source import GraphEdge, GraphNode, NetworkGraph, RoutingPolicy, scid_from_int


class GraphFormatError(ValueError):
    pass


def _int(value: Any, what: str) -> int:
    """LND encodes 64-bit integers as JSON strings and 32-bit ones as numbers."""
    try:
        if isinstance(value, bool):
            raise TypeError
        return int(value)
    except (TypeError, ValueError):
        raise GraphFormatError(f"{what}: expected an integer, got {value!r}") from None


def _scid(value: int, what: str) -> str:
    try:
        return scid_from_int(value)
    except ValueError as exc:
        raise GraphFormatError(f"{what}: {exc}") from None


def lnd_policy(raw: Mapping[str, Any] | None, what: str = "policy") -> RoutingPolicy | None:
    """An LND RoutingPolicy object, or None when the direction has no policy yet."""
    if not raw:
        return None
    if not isinstance(raw, Mapping):
        raise GraphFormatError(f"{what}: expected an object")
    inbound_base = raw.get("inbound_fee_base_msat")
    inbound_rate = raw.get("inbound_fee_rate_milli_msat")
    return RoutingPolicy(
        base_fee_msat=_int(raw.get("fee_base_msat", 0), f"{what}.fee_base_msat"),
        # LND's fee_rate_milli_msat is milli-msat per sat, i.e. parts per million.
        fee_rate_ppm=_int(raw.get("fee_rate_milli_msat", 0), f"{what}.fee_rate_milli_msat"),
        cltv_delta=_int(raw.get("time_lock_delta", 0), f"{what}.time_lock_delta"),
        htlc_min_msat=_int(raw.get("min_htlc", 0), f"{what}.min_htlc"),
        htlc_max_msat=_int(raw.get("max_htlc_msat", 0), f"{what}.max_htlc_msat"),
        inbound_base_fee_msat=(
            None if inbound_base is None else _int(inbound_base, f"{what}.inbound_fee_base")
        ),
        inbound_fee_rate_ppm=(
            None if inbound_rate is None else _int(inbound_rate, f"{what}.inbound_fee_rate")
        ),
        disabled=bool(raw.get("disabled", False)),
    )


def lnd_edge(raw: Mapping[str, Any]) -> GraphEdge:
    """An LND ChannelEdge (describegraph `edges[]` or GET /v1/graph/edge/{chan_id})."""
    if not isinstance(raw, Mapping):
        raise GraphFormatError("edge: expected an object")
    chan = _int(raw.get("channel_id"), "edge.channel_id")
    what = f"edge {chan}"
    node1, node2 = raw.get("node1_pub"), raw.get("node2_pub")
    if not isinstance(node1, str) or not isinstance(node2, str):
        raise GraphFormatError(f"{what}: node1_pub and node2_pub are required")
    return GraphEdge(
        channel_id=_scid(chan, what),
        node1=node1,
        node2=node2,
        capacity_sat=_int(raw.get("capacity", 0), f"{what}.capacity"),
        node1_policy=lnd_policy(raw.get("node1_policy"), f"{what}.node1_policy"),
        node2_policy=lnd_policy(raw.get("node2_policy"), f"{what}.node2_policy"),
        last_update=_int(raw.get("last_update", 0), f"{what}.last_update"),
    )


def parse_describegraph(doc: Any) -> NetworkGraph:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("nodes"), list):
        raise GraphFormatError("not a describegraph document: 'nodes' list missing")
    if not isinstance(doc.get("edges"), list):
        raise GraphFormatError("not a describegraph document: 'edges' list missing")
    nodes = []
    for i, raw in enumerate(doc["nodes"]):
        if not isinstance(raw, Mapping) or not isinstance(raw.get("pub_key"), str):
            raise GraphFormatError(f"node #{i}: 'pub_key' missing")
        nodes.append(
            GraphNode(
                pubkey=raw["pub_key"],
                alias=str(raw.get("alias") or ""),
                last_update=_int(raw.get("last_update", 0), f"node #{i}.last_update"),
            )
        )
    return NetworkGraph(nodes=nodes, edges=[lnd_edge(raw) for raw in doc["edges"]])


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


def load_describegraph_file(path: Path) -> NetworkGraph:
    try:
        with _open_text(path) as fh:
            doc = json.load(fh)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise GraphFormatError(f"{path.name}: cannot read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise GraphFormatError(f"{path.name}: invalid JSON at line {exc.lineno}") from None
    return parse_describegraph(doc)


def _csv_rows(path: Path, required: Iterable[str]) -> list[dict[str, str]]:
    try:
        with _open_text(path) as fh:
            reader = csv.DictReader(fh)
            missing = set(required) - set(reader.fieldnames or [])
            if missing:
                raise GraphFormatError(f"{path.name}: missing columns {sorted(missing)}")
            return list(reader)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as exc:
        raise GraphFormatError(f"{path.name}: cannot read ({exc})") from None


def _find(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.csv", f"{stem}.csv.gz"):
        if (folder / name).is_file():
            return folder / name
    raise GraphFormatError(f"{folder}: {stem}.csv(.gz) not found")


def load_csv_folder(folder: Path) -> NetworkGraph:
    """The CSV set: nodes (idx, pubkey, alias), channels (chan_idx, node1_pub, node2_pub,
    capacity_sat) and policies (one row per direction; direction 0 = node1 -> node2)."""
    node_rows = _csv_rows(_find(folder, "nodes"), ("idx", "pubkey", "alias"))
    chan_rows = _csv_rows(
        _find(folder, "channels"), ("chan_idx", "node1_pub", "node2_pub", "capacity_sat")
    )
    pol_rows = _csv_rows(
        _find(folder, "policies"),
        (
            "chan_idx",
            "direction",
            "disabled",
            "fee_base_msat",
            "fee_rate_ppm",
            "cltv_delta",
            "htlc_min_msat",
            "htlc_max_msat",
        ),
    )
    policies: dict[tuple[int, int], RoutingPolicy] = {}
    for n, row in enumerate(pol_rows, start=2):
        what = f"policies.csv line {n}"
        key = (_int(row["chan_idx"], what), _int(row["direction"], what))
        if row.get("zero_policy") == "1":
            continue  # an all-zero channel_update: no usable policy, as describegraph shows it
        policies[key] = RoutingPolicy(
            base_fee_msat=_int(row["fee_base_msat"], what),
            fee_rate_ppm=_int(row["fee_rate_ppm"], what),
            cltv_delta=_int(row["cltv_delta"], what),
            htlc_min_msat=_int(row["htlc_min_msat"], what),
            htlc_max_msat=_int(row["htlc_max_msat"], what),
            disabled=row["disabled"] == "1",
        )
    nodes = [GraphNode(pubkey=r["pubkey"], alias=r["alias"]) for r in node_rows]
    edges = []
    for n, row in enumerate(chan_rows, start=2):
        what = f"channels.csv line {n}"
        idx = _int(row["chan_idx"], what)
        edges.append(
            GraphEdge(
                channel_id=_scid(idx, what),
                node1=row["node1_pub"],
                node2=row["node2_pub"],
                capacity_sat=_int(row["capacity_sat"], what),
                node1_policy=policies.get((idx, 0)),
                node2_policy=policies.get((idx, 1)),
            )
        )
    return NetworkGraph(nodes=nodes, edges=edges)


def load_graph(path: Path) -> NetworkGraph:
    """A describegraph JSON file (.json/.json.gz) or a folder of the CSV set; a folder holding
    describegraph.json(.gz) is read from that file (faster than the CSVs)."""
    if path.is_dir():
        for name in ("describegraph.json.gz", "describegraph.json"):
            if (path / name).is_file():
                return load_describegraph_file(path / name)
        return load_csv_folder(path)
    if not path.is_file():
        raise GraphFormatError(f"{path}: no such file or folder")
    return load_describegraph_file(path)
