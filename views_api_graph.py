"""HTTP API for the public graph and the scoring service under /daznode/api/v1.

Reading scores, rankings and suggestions needs any wallet key (or a logged-in user): wallet
users look nodes up too. Syncing, uploading and recalculating are for LNbits admins.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from http import HTTPStatus
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Query, UploadFile

from . import graph_service
from .crud import (
    SCORE_COLUMNS,
    add_audit,
    find_nodes,
    get_node_scores,
    load_stored_graph,
    node_scores_page,
)
from .engine.graph_io import GraphFormatError, parse_graph_bytes
from .engine.node_source import NetworkGraph
from .models import (
    GraphStatusOut,
    NodeScoreOut,
    NodeScoresBatchIn,
    PeerSuggestionOut,
    PeerSuggestionsOut,
    RankingsOut,
    RecommendationOut,
)
from .services import cached_backend
from .views_api import Admin, Reader, _actor, api_channel_score

daznode_graph_router = APIRouter(prefix="/api/v1", tags=["daznode"])

PUBKEY = re.compile(r"^0[23][0-9a-f]{64}$")
MAX_BATCH = 100
MAX_UPLOAD_BYTES = 256 * 1024 * 1024
SORTABLE = SCORE_COLUMNS


def _pubkey(node_id: str) -> str:
    node_id = node_id.strip().lower()
    if not PUBKEY.match(node_id):
        raise HTTPException(
            HTTPStatus.BAD_REQUEST,
            "A node id is a public key: 66 hex characters starting with 02 or 03.",
        )
    return node_id


def _no_graph(exc: Exception) -> HTTPException:
    return HTTPException(HTTPStatus.SERVICE_UNAVAILABLE, str(exc))


def _unknown(node_id: str) -> HTTPException:
    return HTTPException(HTTPStatus.NOT_FOUND, f"Node {node_id} is not in the synced graph.")


def score_out(row: dict, meta: dict) -> NodeScoreOut:
    return NodeScoreOut(
        pubkey=row["pubkey"],
        alias=row["alias"],
        rank=row["rank"],
        of=int(meta.get("nodes", 0)),
        composite=row["composite"],
        components={k: row[k] for k in graph_service.COMPONENTS},
        betweenness=row["betweenness"],
        closeness=row["closeness_raw"],
        eigenvector=row["eigenvector"],
        channels=row["channels"],
        capacity_sat=row["capacity_sat"],
        median_fee_ppm=row["median_fee_ppm"],
        reasons=json.loads(row["reasons"]),
        graph_version=row["version"],
        computed_at=int(meta.get("scored_at", 0)),
    )


# -- the graph ------------------------------------------------------------------------------------


@daznode_graph_router.get(
    "/graph/status", response_model=GraphStatusOut, summary="The synced graph and its job"
)
async def api_graph_status(_: Reader) -> GraphStatusOut:
    meta = await graph_service.graph_meta()
    return GraphStatusOut(
        version=int(meta.get("version", 0)),
        scored_version=int(meta.get("scored_version", 0)),
        synced_at=int(meta.get("synced_at", 0)),
        scored_at=int(meta.get("scored_at", 0)),
        source=meta.get("source", ""),
        nodes=int(meta.get("nodes", 0)),
        channels=int(meta.get("channels", 0)),
        stats=meta.get("stats", {}),
        backend=meta.get("backend", ""),
        methods=meta.get("methods", {}),
        seconds=meta.get("seconds", {}),
        worker_peak_rss_mb=meta.get("worker_peak_rss_mb"),
        job=graph_service.status(),
    )


def _started(started: bool) -> dict:
    if not started:
        raise HTTPException(HTTPStatus.CONFLICT, "A graph job is already running; see its status.")
    return graph_service.status()


@daznode_graph_router.post(
    "/graph/sync",
    status_code=HTTPStatus.ACCEPTED,
    summary="Sync the graph from the node now and recompute the scores (admins)",
)
async def api_graph_sync(caller: Admin) -> dict:
    backend = cached_backend()
    if backend is None:
        raise HTTPException(HTTPStatus.SERVICE_UNAVAILABLE, "The node is not connected yet.")
    source = backend.source

    async def fetch() -> NetworkGraph:
        return await asyncio.wait_for(source.describe_graph(), graph_service.GRAPH_TIMEOUT_SECONDS)

    out = _started(graph_service.start_job(fetch, f"node ({source.kind})"))
    await add_audit(int(time.time()), _actor(caller), "graph sync", source.kind)
    return out


@daznode_graph_router.post(
    "/graph/import",
    status_code=HTTPStatus.ACCEPTED,
    summary="Upload a graph snapshot (admins): LND describegraph JSON, Core Lightning "
    "listchannels/listnodes JSON, or the CSV folder zipped; gzip accepted",
)
async def api_graph_import(caller: Admin, file: Annotated[UploadFile, File()]) -> dict:
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise HTTPException(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"The file is larger than {MAX_UPLOAD_BYTES // 2**20} MiB.",
        )
    if graph_service.busy():
        raise HTTPException(HTTPStatus.CONFLICT, "A graph job is already running; see its status.")
    name = file.filename or "upload"
    try:
        graph = await asyncio.to_thread(parse_graph_bytes, data, name)
    except GraphFormatError as exc:
        raise HTTPException(HTTPStatus.BAD_REQUEST, f"{name}: {exc}") from None
    if not graph.nodes and not graph.edges:
        raise HTTPException(HTTPStatus.BAD_REQUEST, f"{name}: the graph is empty.")

    async def fetch() -> NetworkGraph:
        return graph

    out = _started(graph_service.start_job(fetch, f"upload {name}"))
    await add_audit(
        int(time.time()),
        _actor(caller),
        "graph import",
        name,
        f"{len(graph.nodes)} nodes, {len(graph.edges)} channels",
    )
    return {**out, "nodes": len(graph.nodes), "channels": len(graph.edges)}


@daznode_graph_router.get("/graph/path", summary="Shortest path (hops) between two nodes")
async def api_graph_path(
    _: Reader,
    source: Annotated[str, Query(alias="from")],
    target: Annotated[str, Query(alias="to")],
) -> dict:
    a, b = _pubkey(source), _pubkey(target)
    try:
        path = await graph_service.path_between(a, b)
    except graph_service.GraphUnavailable as exc:
        raise _no_graph(exc) from None
    except KeyError as exc:
        raise _unknown(exc.args[0]) from None
    return {"from": a, "to": b, "path": path, "hops": None if path is None else len(path) - 1}


@daznode_graph_router.get(
    "/graph/neighbourhood/{node_id}", summary="A node's N-hop neighbourhood, for drawing"
)
async def api_graph_neighbourhood(
    node_id: str,
    _: Reader,
    hops: Annotated[int, Query(ge=1, le=3)] = 2,
    max_nodes: Annotated[int, Query(ge=2, le=500)] = 120,
) -> dict:
    node = _pubkey(node_id)
    try:
        hood = await graph_service.node_neighbourhood(node, hops, max_nodes)
    except graph_service.GraphUnavailable as exc:
        raise _no_graph(exc) from None
    except KeyError:
        raise _unknown(node) from None
    aliases = await get_node_scores(hood["nodes"])
    return {
        **hood,
        "center": node,
        "labels": {k: (aliases[k]["alias"] if k in aliases else "") for k in hood["nodes"]},
    }


@daznode_graph_router.get("/nodes/search", summary="Find nodes by alias or pubkey prefix")
async def api_node_search(
    _: Reader, q: Annotated[str, Query(min_length=2, max_length=66)]
) -> list[dict]:
    return await find_nodes(q.strip())


# -- scores ---------------------------------------------------------------------------------------


@daznode_graph_router.get(
    "/scores/node/{node_id}", response_model=NodeScoreOut, summary="A node's score"
)
async def api_node_score(
    node_id: str,
    _: Reader,
    force_recalculate: Annotated[
        bool,
        Query(description="Re-derive this node's score from the stored graph now"),
    ] = False,
) -> NodeScoreOut:
    node = _pubkey(node_id)
    meta = await graph_service.graph_meta()
    if not meta.get("scored_version"):
        raise _no_graph(graph_service.GraphUnavailable("No graph synced yet."))
    if force_recalculate:
        try:
            await graph_service.rescore(node)
        except KeyError:
            raise _unknown(node) from None
        meta = await graph_service.graph_meta()
    row = (await get_node_scores([node])).get(node)
    if row is None:
        raise _unknown(node)
    return score_out(row, meta)


@daznode_graph_router.get(
    "/scores/channel/{channel_id}",
    response_model=RecommendationOut,
    summary="Recommendation for one of our channels: decision, confidence, reasoning",
)
async def api_scores_channel(channel_id: str, caller: Reader) -> RecommendationOut:
    return await api_channel_score(channel_id, caller)


@daznode_graph_router.post(
    "/scores/batch",
    response_model=list[NodeScoreOut],
    summary=f"Scores of up to {MAX_BATCH} nodes; unknown ones are listed in `missing`",
)
async def api_scores_batch(body: NodeScoresBatchIn, _: Reader) -> list[NodeScoreOut]:
    if len(body.node_ids) > MAX_BATCH:
        raise HTTPException(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            f"At most {MAX_BATCH} node ids per request ({len(body.node_ids)} sent).",
        )
    nodes = list(dict.fromkeys(_pubkey(n) for n in body.node_ids))
    meta = await graph_service.graph_meta()
    rows = await get_node_scores(nodes)
    missing = [n for n in nodes if n not in rows]
    if missing and len(missing) == len(nodes):
        raise HTTPException(
            HTTPStatus.NOT_FOUND, f"None of the nodes is in the synced graph: {missing[0]}…"
        )
    return [score_out(rows[n], meta) for n in nodes if n in rows]


@daznode_graph_router.get(
    "/scores/rankings", response_model=RankingsOut, summary="Nodes ranked, paginated, filtered"
)
async def api_rankings(
    _: Reader,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 50,
    sort: Annotated[str, Query(description=" | ".join(SORTABLE))] = "composite",
    order: Annotated[str, Query(description="desc | asc")] = "desc",
    min_capacity_sat: Annotated[int, Query(ge=0)] = 0,
    min_channels: Annotated[int, Query(ge=0)] = 0,
    search: Annotated[str, Query(max_length=66, description="alias or pubkey fragment")] = "",
) -> RankingsOut:
    if sort not in SORTABLE:
        raise HTTPException(HTTPStatus.BAD_REQUEST, f"sort must be one of {', '.join(SORTABLE)}.")
    if order not in ("asc", "desc"):
        raise HTTPException(HTTPStatus.BAD_REQUEST, "order must be asc or desc.")
    meta = await graph_service.graph_meta()
    rows, total = await node_scores_page(
        page, size, sort, order == "desc", min_capacity_sat, min_channels, search.strip()
    )
    return RankingsOut(
        data=[score_out(r, meta) for r in rows],
        total=total,
        page=page,
        size=size,
        pages=(total + size - 1) // size,
        sort=sort,
        order=order,
        graph_version=int(meta.get("scored_version", 0)),
    )


@daznode_graph_router.post(
    "/scores/recalculate",
    status_code=HTTPStatus.ACCEPTED,
    summary="Recompute analytics and scores on the stored graph in the background (admins)",
)
async def api_recalculate(caller: Admin) -> dict:
    if not (await graph_service.graph_meta()).get("version"):
        raise HTTPException(
            HTTPStatus.CONFLICT, "No graph synced yet: sync it from the node or upload one."
        )
    out = _started(graph_service.start_job(load_stored_graph, "recalculation"))
    await add_audit(int(time.time()), _actor(caller), "scores recalculate", "")
    return out


# -- peer suggestions -----------------------------------------------------------------------------


@daznode_graph_router.get(
    "/recommendations/{node_id}",
    response_model=PeerSuggestionsOut,
    summary="Peers worth opening a channel to, for any public node",
)
async def api_peer_suggestions(
    node_id: str,
    _: Reader,
    min_confidence: Annotated[float, Query(ge=0, le=1)] = 0.0,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> PeerSuggestionsOut:
    node = _pubkey(node_id)
    try:
        found = await graph_service.peer_suggestions(node, limit=50)
    except graph_service.GraphUnavailable as exc:
        raise _no_graph(exc) from None
    except KeyError:
        raise _unknown(node) from None
    kept = [s for s in found if s.confidence >= min_confidence][:limit]
    return PeerSuggestionsOut(
        node_id=node,
        min_confidence=min_confidence,
        data=[
            PeerSuggestionOut(
                pubkey=s.pubkey,
                alias=s.alias,
                score=s.score,
                confidence=s.confidence,
                reach_gain=s.reach_gain,
                components=s.components,
                reasons=list(s.reasons),
            )
            for s in kept
        ],
    )
