"""The public graph as a service: sync (from the node, periodically, or from an uploaded
snapshot), analytics in a worker process, node scores, peer suggestions, neighbourhoods.

One job at a time: a sync stores the graph, bumps the version, runs the analytics worker
(LNbits' event loop only waits on it), stores the scores and refreshes the engine's view of
the network. Everything computed from the graph is cached per version.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
from loguru import logger

from . import crud
from .engine.graph_analytics import build_graph, to_networkx
from .engine.graph_summary import summarize
from .engine.graph_walk import neighbourhood, shortest_path
from .engine.graph_worker import run_analytics_worker
from .engine.metrics import NetworkContext
from .engine.node_score import COMPONENTS, NodeScore, Percentile, score_nodes
from .engine.node_source import NetworkGraph, NodeSource, NodeSourceError
from .engine.peer_suggest import (
    PeerSuggestion,
    ReachSets,
    betweenness_percentile,
    suggest_peers,
)

EXTENSION_DIR = Path(__file__).resolve().parent
GRAPH_TIMEOUT_SECONDS = 300
# The first scheduled sync waits for LNbits to settle after a start (a restart loop must not
# become an analytics loop); a sync by hand or an upload starts at once.
START_DELAY_SECONDS = 90
_process_started = time.time()
CACHE_ENTRIES = 256


@dataclass
class Job:
    state: str = "idle"  # idle | syncing | analysing | failed
    phase: str = ""
    progress: float = 0.0
    source: str = ""
    started_at: int = 0
    finished_at: int = 0
    error: str | None = None


@dataclass
class GraphState:
    version: int = 0
    graph: NetworkGraph | None = None
    nx: nx.Graph = field(default_factory=nx.Graph)  # parallel channels merged
    scores: dict[str, NodeScore] = field(default_factory=dict)
    ranked: list[str] = field(default_factory=list)
    cache: dict[tuple, Any] = field(default_factory=dict)
    nearby: ReachSets = field(default_factory=lambda: ReachSets({}))  # 2-hop sets, per node
    central: Percentile = field(default_factory=lambda: Percentile([]))  # betweenness

    @property
    def adjacency(self):
        """pubkey -> its peers (networkx's adjacency view)."""
        return self.nx.adj


job = Job()
_state = GraphState()
_load_lock = asyncio.Lock()
_job_lock = asyncio.Lock()
_context: dict[str, Any] = {"context": None, "pubkey": "", "version": -1}


class GraphUnavailable(RuntimeError):
    """No graph synced yet."""


# -- the stored graph's metadata ----------------------------------------------------------------


async def graph_meta() -> dict:
    return await crud.get_doc("graph") or {}


async def _save_meta(meta: dict, now: int) -> None:
    await crud.save_doc("graph", meta, now)


def status() -> dict:
    return {
        "state": job.state,
        "phase": job.phase,
        "progress": round(job.progress, 3),
        "source": job.source,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "error": job.error,
    }


# -- jobs ---------------------------------------------------------------------------------------


def busy() -> bool:
    return job.state in ("syncing", "analysing")


def start_job(fetch, source_label: str, our_pubkey: str = "") -> bool:
    """Run sync + analytics in the background; False when one is already running."""
    if busy() or _job_lock.locked():
        return False
    job.state, job.phase, job.progress, job.error = "syncing", "queued", 0.0, None
    job.source, job.started_at = source_label, int(time.time())
    task = asyncio.create_task(_run_job(fetch, our_pubkey))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return True


_tasks: set[asyncio.Task] = set()


async def _run_job(fetch, our_pubkey: str) -> None:
    async with _job_lock:
        try:
            job.phase = "fetching the graph"
            graph = await fetch()
            await ingest(graph, our_pubkey, job.source)
            job.state = "idle"
        except Exception as exc:  # a failed sync keeps the previous graph and scores
            job.state, job.error = "failed", _describe(exc)
            logger.warning(f"daznode: graph job failed: {job.error}")
        finally:
            job.finished_at = int(time.time())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return f"the node did not send its graph within {GRAPH_TIMEOUT_SECONDS} s"
    return str(exc) or type(exc).__name__


async def ingest(graph: NetworkGraph, our_pubkey: str, source_label: str) -> dict:
    """Store a graph, then analyse and score it. Returns the new metadata."""
    if not graph.nodes and not graph.edges:
        raise ValueError("the graph is empty; the stored graph is left as it was")
    now = int(time.time())
    job.state, job.phase, job.progress = "syncing", "storing", 0.05
    started = time.perf_counter()
    counts = await crud.store_graph(graph, now)
    store_seconds = round(time.perf_counter() - started, 2)
    meta = await graph_meta()
    meta.update(
        version=int(meta.get("version", 0)) + 1,
        synced_at=now,
        source=source_label,
        store_seconds=store_seconds,
        **counts,
    )
    await _save_meta(meta, now)
    stored = await crud.load_stored_graph()
    job.state, job.phase, job.progress = "analysing", "analytics", 0.1

    def on_progress(fraction: float, phase: str) -> None:
        job.progress, job.phase = 0.1 + 0.8 * fraction, phase

    with tempfile.TemporaryDirectory(prefix="daznode-graph-") as workdir:
        result = await run_analytics_worker(stored, Path(workdir), on_progress)
    job.phase, job.progress = "scoring", 0.9
    scores = await asyncio.to_thread(
        score_nodes,
        stored,
        result["betweenness"],
        result["closeness"],
        result["eigenvector"],
        now,
    )
    await crud.store_node_scores(scores, meta["version"])
    meta.update(
        scored_version=meta["version"],
        scored_at=int(time.time()),
        stats=result.get("stats", {}),
        backend=result.get("backend", ""),
        methods=result.get("methods", {}),
        worker_peak_rss_mb=result.get("peak_rss_mb"),
        seconds={"store_in_database": store_seconds, **result.get("seconds", {})},
    )
    await _save_meta(meta, now)
    await _install(stored, scores, meta["version"])
    await _refresh_context(our_pubkey or _context["pubkey"], now)
    job.progress, job.phase = 1.0, "done"
    logger.info(
        f"daznode: graph v{meta['version']} from {source_label}: {counts['nodes']} nodes, "
        f"{counts['channels']} channels, analytics by {meta['backend']}"
    )
    return meta


# -- the in-memory graph --------------------------------------------------------------------------


def _networkx(graph: NetworkGraph) -> nx.Graph:
    return to_networkx(build_graph(graph))


async def _install(graph: NetworkGraph, scores: list[NodeScore], version: int) -> None:
    simple = await asyncio.to_thread(_networkx, graph)
    reach = await asyncio.to_thread(ReachSets, simple.adj)
    _state.graph, _state.nx, _state.version = graph, simple, version
    _state.scores = {s.pubkey: s for s in scores}
    _state.ranked = [s.pubkey for s in scores]
    _state.cache = {}
    _state.nearby = reach
    _state.central = betweenness_percentile(_state.scores)


def score_from_row(row: dict) -> NodeScore:
    return NodeScore(
        pubkey=row["pubkey"],
        alias=row["alias"],
        channels=int(row["channels"]),
        capacity_sat=int(row["capacity_sat"]),
        median_fee_ppm=row["median_fee_ppm"],
        betweenness=float(row["betweenness"]),
        closeness=float(row["closeness_raw"]),
        eigenvector=float(row["eigenvector"]),
        components={k: float(row[k]) for k in COMPONENTS},
        composite=float(row["composite"]),
        reasons=tuple(json.loads(row["reasons"])),
    )


async def current() -> GraphState:
    """The graph of the stored version, loaded from the database after a restart."""
    meta = await graph_meta()
    version = int(meta.get("scored_version", 0))
    if not version:
        raise GraphUnavailable("No graph synced yet: sync it from the node or upload a snapshot.")
    if _state.version == version:
        return _state
    async with _load_lock:
        if _state.version != version:
            graph = await crud.load_stored_graph()
            rows, _ = await crud.node_scores_page(1, 10**6, "composite", True)
            await _install(graph, [score_from_row(r) for r in rows], version)
    return _state


def _cached(state: GraphState, key: tuple, compute):
    if key not in state.cache:
        if len(state.cache) >= CACHE_ENTRIES:
            state.cache.pop(next(iter(state.cache)))
        state.cache[key] = compute()
    return state.cache[key]


async def peer_suggestions(node: str, limit: int = 10) -> list[PeerSuggestion]:
    state = await current()
    if node not in state.adjacency:
        raise KeyError(node)
    return await asyncio.to_thread(
        _cached,
        state,
        ("peers", node, limit),
        lambda: suggest_peers(
            node,
            state.adjacency,
            state.scores,
            state.ranked,
            limit,
            nearby=state.nearby,
            central=state.central,
        ),
    )


async def node_neighbourhood(node: str, hops: int, max_nodes: int) -> dict:
    state = await current()
    if node not in state.adjacency:
        raise KeyError(node)
    return await asyncio.to_thread(
        _cached,
        state,
        ("hood", node, hops, max_nodes),
        lambda: neighbourhood(state.adjacency, node, hops, max_nodes),
    )


async def path_between(a: str, b: str) -> list[str] | None:
    state = await current()
    for node in (a, b):
        if node not in state.adjacency:
            raise KeyError(node)
    return await asyncio.to_thread(
        _cached, state, ("path", a, b), lambda: shortest_path(state.adjacency, a, b)
    )


# -- what the engine sees ---------------------------------------------------------------------


async def _refresh_context(our_pubkey: str, now: int) -> None:
    if _state.graph is None:
        return
    betweenness = {k: s.betweenness for k, s in _state.scores.items()}
    context = await asyncio.to_thread(
        summarize, _state.graph, our_pubkey, betweenness=betweenness, now=now
    )
    _context.update(context=context, pubkey=our_pubkey, version=_state.version)


async def survey_quickly(graph: NetworkGraph, our_pubkey: str, now: int) -> None:
    """Before the first analytics finish, the engine still gets fees and degrees."""
    if _context["context"] is None or _context["pubkey"] != our_pubkey:
        context = await asyncio.to_thread(summarize, graph, our_pubkey, now=now)
        _context.update(context=context, pubkey=our_pubkey, version=0)


def network_context() -> NetworkContext:
    return _context["context"] or NetworkContext()


def context_version() -> tuple[str, int, bool]:
    """Changes whenever network_context() may answer differently."""
    return (_context["pubkey"], _context["version"], _context["context"] is not None)


async def maybe_sync(source: NodeSource, our_pubkey: str, now: int, every_hours: float) -> None:
    """Called by the monitor (the leader): start a sync from the node when one is due, and
    give the engine the network as stored when this process has not loaded it yet."""
    _context["pubkey"] = _context["pubkey"] or our_pubkey
    meta = await graph_meta()
    if _context["context"] is None and meta.get("scored_version"):
        try:
            await current()
            await _refresh_context(our_pubkey, now)
        except GraphUnavailable:
            pass
    due = every_hours > 0 and now - int(meta.get("synced_at", 0)) >= every_hours * 3600
    settled = time.time() - _process_started >= START_DELAY_SECONDS
    if not due or not settled or busy():
        return

    async def fetch() -> NetworkGraph:
        try:
            graph = await asyncio.wait_for(source.describe_graph(), GRAPH_TIMEOUT_SECONDS)
        except NodeSourceError as exc:
            raise RuntimeError(f"the node refused its graph: {exc}") from None
        await survey_quickly(graph, our_pubkey, now)
        return graph

    start_job(fetch, f"node ({source.kind})", our_pubkey)


async def rescore(node: str) -> None:
    """Re-derive every score from the stored graph and the last centralities (position
    scales need the whole population), then store them; cheap next to a full recalculation."""
    state = await current()
    if node not in state.adjacency:
        raise KeyError(node)
    meta = await graph_meta()
    scores = await asyncio.to_thread(
        score_nodes,
        state.graph,
        {k: s.betweenness for k, s in state.scores.items()},
        {k: s.closeness for k, s in state.scores.items()},
        {k: s.eigenvector for k, s in state.scores.items()},
        int(time.time()),
    )
    await crud.store_node_scores(scores, state.version)
    meta["scored_at"] = int(time.time())
    await _save_meta(meta, meta["scored_at"])
    await _install(state.graph, scores, state.version)


def _edges_of(graph: NetworkGraph, node: str):
    for e in graph.edges:
        if e.node1 == node:
            yield e.node2, e.node1_policy, e.capacity_sat
        elif e.node2 == node:
            yield e.node1, e.node2_policy, e.capacity_sat


def _fee_positions(state: GraphState, node: str) -> dict:
    context = summarize(state.graph, node)
    rows = []
    for peer, policy, capacity in _edges_of(state.graph, node):
        info = context.peer(peer)
        competitor = info.competitor_fee_ppm if info else None
        ours = None if policy is None or policy.disabled else policy.fee_rate_ppm
        if ours is None or competitor is None:
            position = "unknown"
        elif ours < competitor * 0.8:
            position = "cheaper"
        elif ours > competitor * 1.25:
            position = "dearer"
        else:
            position = "in line"
        alias = state.scores[peer].alias if peer in state.scores else ""
        rows.append(
            {
                "peer": peer,
                "alias": alias,
                "capacity_sat": capacity,
                "fee_ppm": ours,
                "competitor_median_ppm": competitor,
                "position": position,
            }
        )
    counts = {
        p: sum(1 for r in rows if r["position"] == p) for p in ("cheaper", "in line", "dearer")
    }
    return {"channels": rows, "summary": counts, "network_median_ppm": context.median_fee_ppm}


async def fee_competitiveness(node: str) -> dict:
    """Per channel of `node`: its fee towards the peer against the capacity-weighted median
    of what everyone else charges into that peer (what senders compare)."""
    state = await current()
    return await asyncio.to_thread(
        _cached, state, ("fees", node), lambda: _fee_positions(state, node)
    )


async def projected_openings(node: str, candidates: list[str]) -> list[dict]:
    """What opening to each candidate adds: the nodes within three hops, before and after."""
    from .engine.peer_suggest import HOPS, within_hops

    state = await current()

    def project() -> list[dict]:
        before = within_hops(state.adjacency, node, HOPS)
        out = []
        for c in candidates:
            added = within_hops(state.adjacency, c, HOPS - 1) - before
            out.append(
                {
                    "candidate": c,
                    "alias": state.scores[c].alias if c in state.scores else "",
                    "within_3_hops_before": len(before),
                    "within_3_hops_after": len(before) + len(added - {node}),
                    "share_of_graph_after": round(
                        (len(before) + len(added)) / max(1, state.nx.number_of_nodes()), 4
                    ),
                }
            )
        return out

    return await asyncio.to_thread(_cached, state, ("project", node, tuple(candidates)), project)
