"""Read a Lightning channel graph from the formats Daznode accepts.

- LND's describegraph JSON (`lncli describegraph`, REST GET /v1/graph), optionally gzipped;
- Core Lightning's `listchannels` JSON, with or without `listnodes`;
- the CSV set of ../shared/data (nodes.csv, channels.csv, policies.csv, optionally .gz).

`parse_graph_bytes` takes an upload in any of these (JSON, gzip, zip or tar.gz) and finds out
which it is. Every malformed input raises GraphFormatError naming the problem and where it is
("channels[12].amount_msat"), never a bare KeyError.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from .node_source import (
    GraphEdge,
    GraphNode,
    NetworkGraph,
    RoutingPolicy,
    parse_scid,
    scid_from_int,
)

# An upload bigger than these is refused before it is parsed. Mainnet (17k nodes, 50k
# channels) is about 35 MB as describegraph JSON, 60 MB as listchannels and 4 MB gzipped.
MAX_UPLOAD_BYTES = 256 * 1024 * 1024
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
MAX_NODES = 1_000_000
MAX_CHANNELS = 2_000_000

CSV_SET = ("nodes", "channels", "policies")
_PUBKEY = re.compile(r"0[23][0-9a-f]{64}")


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


def _csv_rows_from(fh: IO[str], name: str, required: Iterable[str]) -> list[dict[str, str]]:
    reader = csv.DictReader(fh)
    missing = set(required) - set(reader.fieldnames or [])
    if missing:
        raise GraphFormatError(f"{name}: missing columns {sorted(missing)}")
    return list(reader)


def _csv_rows(path: Path, required: Iterable[str]) -> list[dict[str, str]]:
    try:
        with _open_text(path) as fh:
            return _csv_rows_from(fh, path.name, required)
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as exc:
        raise GraphFormatError(f"{path.name}: cannot read ({exc})") from None


def _find(folder: Path, stem: str) -> Path:
    for name in (f"{stem}.csv", f"{stem}.csv.gz"):
        if (folder / name).is_file():
            return folder / name
    raise GraphFormatError(f"{folder}: {stem}.csv(.gz) not found")


CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "nodes": ("idx", "pubkey", "alias"),
    "channels": ("chan_idx", "node1_pub", "node2_pub", "capacity_sat"),
    "policies": (
        "chan_idx",
        "direction",
        "disabled",
        "fee_base_msat",
        "fee_rate_ppm",
        "cltv_delta",
        "htlc_min_msat",
        "htlc_max_msat",
    ),
}


def load_csv_folder(folder: Path) -> NetworkGraph:
    """The CSV set: nodes (idx, pubkey, alias), channels (chan_idx, node1_pub, node2_pub,
    capacity_sat) and policies (one row per direction; direction 0 = node1 -> node2)."""
    tables = {stem: _csv_rows(_find(folder, stem), CSV_COLUMNS[stem]) for stem in CSV_SET}
    return _graph_from_csv(tables["nodes"], tables["channels"], tables["policies"])


def _graph_from_csv(
    node_rows: list[dict[str, str]],
    chan_rows: list[dict[str, str]],
    pol_rows: list[dict[str, str]],
) -> NetworkGraph:
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
    nodes = [GraphNode(pubkey=r["pubkey"], alias=r["alias"] or "") for r in node_rows]
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


# -- Core Lightning: listchannels (+ listnodes) ----------------------------------------------


def _pubkey(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _PUBKEY.fullmatch(value):
        raise GraphFormatError(
            f"{what}: expected a node public key (66 lowercase hex characters starting "
            f"02 or 03), got {_preview(value)}"
        )
    return value


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _u32(value: Any, what: str) -> int:
    """CLN sends u32 fields as JSON numbers; anything else is a damaged file."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 32:
        raise GraphFormatError(f"{what}: expected an integer from 0 to 2^32-1, got {value!r}")
    return value


def _msat(value: Any, what: str) -> int:
    """An msat amount: an integer (current CLN) or "123msat" (before v23)."""
    if isinstance(value, str) and value.endswith("msat"):
        digits = value[: -len("msat")]
        if digits.isascii() and digits.isdigit():
            return int(digits)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise GraphFormatError(f"{what}: expected an amount in msat, got {_preview(value)}")
    return value


def _short_channel_id(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise GraphFormatError(f"{what}: expected a short channel id, got {_preview(value)}")
    try:
        block, tx, out = parse_scid(value)
    except ValueError as exc:
        raise GraphFormatError(f"{what}: {exc}") from None
    return f"{block}x{tx}x{out}"


def _field(raw: Mapping[str, Any], name: str, what: str) -> Any:
    if name not in raw:
        raise GraphFormatError(f"{what}.{name}: missing")
    return raw[name]


def _list_of_objects(doc: Any, key: str, what: str, limit: int) -> list[Mapping[str, Any]]:
    items = doc.get(key) if isinstance(doc, Mapping) else None
    if not isinstance(items, list):
        raise GraphFormatError(f"not a {what} document: '{key}' list missing")
    if len(items) > limit:
        raise GraphFormatError(f"{what}: {len(items):,} entries, more than the {limit:,} allowed")
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise GraphFormatError(f"{key}[{i}]: expected an object, got {_preview(item)}")
    return items


@dataclass(slots=True)
class _ChannelHalves:
    """The listchannels entries of one channel seen so far (at most one per direction)."""

    first: int  # index of the first entry, for messages
    node1: str
    node2: str
    capacity_msat: int
    policies: dict[str, RoutingPolicy] = field(default_factory=dict)
    last_update: int = 0


def _cln_policy(raw: Mapping[str, Any], what: str, capacity_msat: int) -> RoutingPolicy:
    htlc_max = raw.get("htlc_maximum_msat")
    active = _field(raw, "active", what)
    if not isinstance(active, bool):
        raise GraphFormatError(f"{what}.active: expected true or false, got {_preview(active)}")
    return RoutingPolicy(
        base_fee_msat=_u32(
            _field(raw, "base_fee_millisatoshi", what), f"{what}.base_fee_millisatoshi"
        ),
        fee_rate_ppm=_u32(_field(raw, "fee_per_millionth", what), f"{what}.fee_per_millionth"),
        cltv_delta=_u32(_field(raw, "delay", what), f"{what}.delay"),
        htlc_min_msat=_msat(_field(raw, "htlc_minimum_msat", what), f"{what}.htlc_minimum_msat"),
        # optional in the schema; the capacity is then the effective cap
        htlc_max_msat=(
            capacity_msat if htlc_max is None else _msat(htlc_max, f"{what}.htlc_maximum_msat")
        ),
        disabled=not active,
    )


def _add_direction(channels: dict[str, _ChannelHalves], raw: Mapping[str, Any], i: int) -> None:
    what = f"channels[{i}]"
    source = _pubkey(_field(raw, "source", what), f"{what}.source")
    destination = _pubkey(_field(raw, "destination", what), f"{what}.destination")
    if source == destination:
        raise GraphFormatError(f"{what}: source and destination are the same node")
    scid = _short_channel_id(_field(raw, "short_channel_id", what), f"{what}.short_channel_id")
    capacity_msat = _msat(_field(raw, "amount_msat", what), f"{what}.amount_msat")
    policy = _cln_policy(raw, what, capacity_msat)
    last_update = _u32(_field(raw, "last_update", what), f"{what}.last_update")
    node1, node2 = sorted((source, destination))  # node1 = smaller pubkey, as LND orders them
    seen = channels.setdefault(scid, _ChannelHalves(i, node1, node2, capacity_msat))
    if (seen.node1, seen.node2) != (node1, node2):
        raise GraphFormatError(f"{what}: {scid} joins other nodes than channels[{seen.first}] says")
    if seen.capacity_msat != capacity_msat:
        raise GraphFormatError(
            f"{what}.amount_msat: {capacity_msat} differs from channels[{seen.first}] "
            f"({seen.capacity_msat}) for the same channel {scid}"
        )
    if source in seen.policies:
        raise GraphFormatError(
            f"{what}: a second entry for {scid} from the same source "
            f"(the first is channels[{seen.first}])"
        )
    seen.policies[source] = policy
    seen.last_update = max(seen.last_update, last_update)


def _cln_nodes(doc: Any) -> list[GraphNode]:
    nodes: dict[str, GraphNode] = {}
    for i, raw in enumerate(_list_of_objects(doc, "nodes", "listnodes", MAX_NODES)):
        what = f"nodes[{i}]"
        pubkey = _pubkey(_field(raw, "nodeid", what), f"{what}.nodeid")
        alias = raw.get("alias", "")
        if not isinstance(alias, str):
            raise GraphFormatError(f"{what}.alias: expected text, got {_preview(alias)}")
        last = raw.get("last_timestamp")
        nodes.setdefault(
            pubkey,
            GraphNode(
                pubkey=pubkey,
                alias=alias,
                last_update=0 if last is None else _u32(last, f"{what}.last_timestamp"),
            ),
        )
    return list(nodes.values())


def parse_listchannels(channels_doc: Any, nodes_doc: Any | None = None) -> NetworkGraph:
    """Core Lightning's `listchannels` (one entry per direction) and optionally `listnodes`
    into one edge per channel; nodes missing from listnodes are added without an alias."""
    entries = _list_of_objects(channels_doc, "channels", "listchannels", 2 * MAX_CHANNELS)
    channels: dict[str, _ChannelHalves] = {}
    for i, raw in enumerate(entries):
        _add_direction(channels, raw, i)
    edges = [
        GraphEdge(
            channel_id=scid,
            node1=ch.node1,
            node2=ch.node2,
            capacity_sat=ch.capacity_msat // 1000,
            node1_policy=ch.policies.get(ch.node1),
            node2_policy=ch.policies.get(ch.node2),
            last_update=ch.last_update,
        )
        for scid, ch in channels.items()
    ]
    nodes = [] if nodes_doc is None else _cln_nodes(nodes_doc)
    return _with_all_endpoints(NetworkGraph(nodes=nodes, edges=edges))


def _with_all_endpoints(graph: NetworkGraph) -> NetworkGraph:
    """Add the channel endpoints the node list does not know, so every edge resolves."""
    known = {n.pubkey for n in graph.nodes}
    for e in graph.edges:
        for pubkey in (e.node1, e.node2):
            if pubkey not in known:
                known.add(pubkey)
                graph.nodes.append(GraphNode(pubkey=pubkey))
    return graph


# -- uploads: find out what the bytes are ------------------------------------------------------


def _check_pubkeys(
    graph: NetworkGraph, node_at: Callable[[int], str], edge_at: Callable[[int, int], str]
) -> None:
    """Uploaded describegraph and CSV files: every pubkey well formed (the loaders of trusted
    files skip this pass)."""
    valid: set[str] = set()
    for i, node in enumerate(graph.nodes):
        valid.add(_pubkey(node.pubkey, node_at(i)))
    for i, e in enumerate(graph.edges):
        for side, pubkey in enumerate((e.node1, e.node2)):
            if pubkey not in valid:
                valid.add(_pubkey(pubkey, edge_at(i, side)))
        if e.node1 == e.node2:
            raise GraphFormatError(f"{edge_at(i, 0)}: a channel from a node to itself")


def _check_counts(graph: NetworkGraph, name: str) -> None:
    if len(graph.nodes) > MAX_NODES or len(graph.edges) > MAX_CHANNELS:
        raise GraphFormatError(
            f"{name}: {len(graph.nodes):,} nodes and {len(graph.edges):,} channels, more than "
            f"the {MAX_NODES:,} nodes and {MAX_CHANNELS:,} channels allowed"
        )


def _gunzip(data: bytes, name: str, limit: int) -> bytes:
    """Decompress gzip (several members too), refusing output beyond `limit` bytes so a small
    compressed bomb cannot fill the memory."""
    out: list[bytes] = []
    size = 0
    while data:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            chunk = inflater.decompress(data, limit - size + 1)
        except zlib.error as exc:
            raise GraphFormatError(f"{name}: damaged gzip data ({exc})") from None
        size += len(chunk)
        if size > limit:
            raise GraphFormatError(f"{name}: more than {_mib(limit)} once decompressed")
        out.append(chunk)
        if not inflater.eof:
            raise GraphFormatError(f"{name}: truncated gzip data (the file is incomplete)")
        data = inflater.unused_data.lstrip(b"\0")  # some tools pad members with zeros
    return b"".join(out)


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):,.0f} MiB"


def _is_gzip(data: bytes) -> bool:
    return data[:2] == b"\x1f\x8b"


def _is_tar(data: bytes) -> bool:
    return data[257:262] == b"ustar"


def _is_zip(data: bytes) -> bool:
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def _load_json(data: bytes, name: str) -> Any:
    try:
        return json.loads(data)
    except UnicodeDecodeError:
        raise GraphFormatError(f"{name}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        if exc.pos >= len(exc.doc.rstrip()):
            raise GraphFormatError(f"{name}: JSON ends early at {where} (truncated?)") from None
        raise GraphFormatError(f"{name}: invalid JSON at {where}: {exc.msg}") from None
    except RecursionError:
        raise GraphFormatError(f"{name}: JSON nested too deeply") from None


def _unwrap_rpc(doc: Any) -> Any:
    """A raw JSON-RPC response ({"jsonrpc", "id", "result"}) holds the document in result."""
    if isinstance(doc, Mapping) and "result" in doc and "jsonrpc" in doc:
        return doc["result"]
    return doc


def _as_document(value: Any, key: str) -> Any:
    """The halves of {"listchannels", "listnodes"}: the command's output, a JSON-RPC
    response around it, or just its list."""
    value = _unwrap_rpc(value)
    return {key: value} if isinstance(value, list) else value


def parse_graph_document(doc: Any, name: str = "document") -> NetworkGraph:
    """A parsed JSON document: LND describegraph, CLN listchannels, or
    {"listchannels": ..., "listnodes": ...}."""
    doc = _unwrap_rpc(doc)
    if not isinstance(doc, Mapping):
        raise GraphFormatError(f"{name}: expected a JSON object, got {type(doc).__name__}")
    if "edges" in doc:
        return _checked_describegraph(doc, name)
    if "channels" in doc:
        return parse_listchannels(doc)
    if "listchannels" in doc:
        nodes = doc.get("listnodes")
        return parse_listchannels(
            _as_document(doc["listchannels"], "channels"),
            None if nodes is None else _as_document(nodes, "nodes"),
        )
    if "nodes" in doc:
        raise GraphFormatError(
            f"{name}: a node list without channels; upload describegraph, listchannels, or "
            '{"listchannels": ..., "listnodes": ...}'
        )
    keys = ", ".join(sorted(map(str, doc))[:8]) or "none"
    raise GraphFormatError(
        f"{name}: not a graph document (keys: {keys}); expected LND describegraph "
        '({"nodes", "edges"}), Core Lightning listchannels ({"channels"}) or '
        '{"listchannels": ..., "listnodes": ...}'
    )


def _checked_describegraph(doc: Mapping[str, Any], name: str) -> NetworkGraph:
    for key, limit in (("nodes", MAX_NODES), ("edges", MAX_CHANNELS)):
        items = doc.get(key)
        if isinstance(items, list) and len(items) > limit:
            raise GraphFormatError(f"{name}: {len(items):,} {key}, more than {limit:,}")
    graph = parse_describegraph(doc)
    _check_pubkeys(
        graph,
        lambda i: f"nodes[{i}].pub_key",
        lambda i, side: f"edges[{i}].node{side + 1}_pub",
    )
    return _with_all_endpoints(graph)


@dataclass(slots=True)
class _Archive:
    """The regular files of a zip or tar, by name (directories and links left out)."""

    name: str
    files: dict[str, bytes]

    def pick(self, basenames: Iterable[str]) -> tuple[str, bytes] | None:
        wanted = set(basenames)
        found = [(p, data) for p, data in self.files.items() if PurePosixPath(p).name in wanted]
        if len(found) > 1:
            names = ", ".join(sorted(p for p, _ in found))
            raise GraphFormatError(f"{self.name}: more than one candidate ({names})")
        return found[0] if found else None


def _member_allowed(path: str) -> bool:
    base = PurePosixPath(path).name
    return not (path.startswith("__MACOSX/") or base.startswith("._") or not base)


def _read_zip(data: bytes, name: str, limit: int) -> _Archive:
    files: dict[str, bytes] = {}
    total = 0
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                if info.is_dir() or not _member_allowed(info.filename):
                    continue
                total += info.file_size
                if total > limit:
                    raise GraphFormatError(f"{name}: more than {_mib(limit)} once unpacked")
                with zf.open(info) as fh:
                    content = fh.read(info.file_size + 1)
                if len(content) != info.file_size:
                    raise GraphFormatError(f"{name}: {info.filename} is not the size it claims")
                files[info.filename] = content
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise GraphFormatError(f"{name}: damaged or truncated zip ({exc})") from None
    except (RuntimeError, NotImplementedError) as exc:  # encrypted, unknown compression
        raise GraphFormatError(f"{name}: cannot unpack this zip ({exc})") from None
    return _Archive(name, files)


def _read_tar(data: bytes, name: str, limit: int) -> _Archive:
    files: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
            for member in tf:
                if not member.isfile() or not _member_allowed(member.name):
                    continue
                total += member.size
                if total > limit:
                    raise GraphFormatError(f"{name}: more than {_mib(limit)} once unpacked")
                fh = tf.extractfile(member)
                content = fh.read() if fh else b""
                if len(content) != member.size:
                    raise GraphFormatError(f"{name}: {member.name} is truncated")
                files[member.name] = content
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise GraphFormatError(f"{name}: damaged or truncated tar ({exc})") from None
    return _Archive(name, files)


def _member_text(path: str, data: bytes, limit: int) -> bytes:
    return _gunzip(data, PurePosixPath(path).name, limit) if _is_gzip(data) else data


def _csv_member(archive: _Archive, stem: str, limit: int) -> list[dict[str, str]]:
    found = archive.pick((f"{stem}.csv", f"{stem}.csv.gz"))
    if found is None:
        raise GraphFormatError(f"{archive.name}: {stem}.csv(.gz) not found in the archive")
    path, data = found
    label = PurePosixPath(path).name
    try:
        text = io.StringIO(_member_text(path, data, limit).decode("utf-8"), newline="")
        return _csv_rows_from(text, label, CSV_COLUMNS[stem])
    except UnicodeDecodeError:
        raise GraphFormatError(f"{label}: not UTF-8 text") from None
    except csv.Error as exc:
        raise GraphFormatError(f"{label}: cannot read ({exc})") from None


def _parse_archive(archive: _Archive, limit: int) -> NetworkGraph:
    """The CSV set of ../shared/data, or JSON inside: describegraph.json(.gz), one other JSON
    file, or listchannels.json with listnodes.json."""
    if archive.pick(("nodes.csv", "nodes.csv.gz")) is not None:
        nodes, chans, pols = (_csv_member(archive, stem, limit) for stem in CSV_SET)
        graph = _graph_from_csv(nodes, chans, pols)
        _check_counts(graph, archive.name)
        _check_pubkeys(
            graph,
            lambda i: f"nodes.csv line {i + 2}: pubkey",
            lambda i, side: f"channels.csv line {i + 2}: node{side + 1}_pub",
        )
        return _with_all_endpoints(graph)
    channels = archive.pick(("listchannels.json", "listchannels.json.gz"))
    if channels is not None:
        listed = archive.pick(("listnodes.json", "listnodes.json.gz"))
        return parse_listchannels(
            _as_document(_archive_json(*channels, limit), "channels"),
            None if listed is None else _as_document(_archive_json(*listed, limit), "nodes"),
        )
    docs = [(p, data) for p, data in archive.files.items() if p.endswith((".json", ".json.gz"))]
    if len(docs) == 1:
        path, data = docs[0]
        return parse_graph_document(_archive_json(path, data, limit), PurePosixPath(path).name)
    listing = ", ".join(sorted(archive.files)[:10]) or "nothing"
    raise GraphFormatError(
        f"{archive.name}: expected nodes.csv, channels.csv and policies.csv (or one JSON "
        f"graph file) inside, found {listing}"
    )


def _archive_json(path: str, data: bytes, limit: int) -> Any:
    return _load_json(_member_text(path, data, limit), PurePosixPath(path).name)


def parse_graph_bytes(data: bytes, filename: str) -> NetworkGraph:
    """An uploaded graph in any accepted shape: describegraph JSON, listchannels JSON,
    {"listchannels", "listnodes"} JSON, any of them gzipped, or a zip / tar(.gz) holding the
    CSV set (or one JSON graph file). Recognised by content, not by the file name."""
    name = PurePosixPath(filename or "upload").name or "upload"
    if len(data) > MAX_UPLOAD_BYTES:
        raise GraphFormatError(f"{name}: {_mib(len(data))}, more than {_mib(MAX_UPLOAD_BYTES)}")
    if not data.strip():
        raise GraphFormatError(f"{name}: the file is empty")
    limit = MAX_UNPACKED_BYTES
    if _is_gzip(data):
        data = _gunzip(data, name, limit)
    if _is_zip(data):
        return _parse_archive(_read_zip(data, name, limit), limit)
    if _is_tar(data):
        return _parse_archive(_read_tar(data, name, limit), limit)
    if len(data) > limit:
        raise GraphFormatError(f"{name}: more than {_mib(limit)} of JSON")
    start = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if start not in (b"{", b"["):
        raise GraphFormatError(
            f"{name}: not a graph file (expected JSON, gzip, zip or tar.gz; it starts with "
            f"{data[:16]!r})"
        )
    graph = parse_graph_document(_load_json(data, name), name)
    _check_counts(graph, name)
    return graph
