"""Picks the node source behind LNbits' funding source (the glue between LNbits and engine/)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lnbits.settings import settings as lnbits_settings
from lnbits.wallets import get_funding_source
from loguru import logger

from . import crud
from .engine.decide import Recommendation, evaluate_node
from .engine.graph_io import GraphFormatError, load_graph
from .engine.lessons import LESSON_DAYS, Lesson
from .engine.lessons import with_lessons as engine_with_lessons
from .engine.metrics import WINDOWS, ChannelMetrics, FlowWindow, NetworkContext
from .engine.network_gen import generate_network
from .engine.node_source import (
    BLOCKS_PER_DAY,
    NetworkGraph,
    NodeSource,
    RoutingPolicy,
)
from .engine.profiles import BUILTIN, Profile, ProfileError, profile_from_dict
from .engine.rules import Rule, RuleError, parse_rules
from .engine.sources.simulated import SimConfig, SimulatedNode
from .execution import load_execution_settings
from .graph_service import network_context
from .level_service import as_engine_sees, current_levels, engine_signals
from .level_service import load_state as load_level_state
from .models import BackendOut, DaznodeSettings

EXTENSION_DIR = Path(__file__).resolve().parent
# Where `make dev` and CI keep the mainnet snapshot: ../shared/data beside the checkout.
BUNDLED_SNAPSHOT_GLOB = "shared/data/ln-graph-*"


@dataclass
class Backend:
    source: NodeSource
    info: BackendOut


_cache: dict[tuple, Backend] = {}
_build_lock = asyncio.Lock()


def _funding_source_name() -> str:
    return type(get_funding_source()).__name__


def find_bundled_snapshot() -> Path | None:
    """The shared mainnet snapshot, if this checkout sits beside ../shared (dev and CI)."""
    env = os.environ.get("DAZNODE_SIM_GRAPH")
    if env:
        return Path(env)
    for base in (EXTENSION_DIR.parent, EXTENSION_DIR.parent.parent):
        found = sorted(base.glob(BUNDLED_SNAPSHOT_GLOB))
        if found:
            return found[-1]
    return None


def load_sim_network(cfg: DaznodeSettings) -> tuple[NetworkGraph, str]:
    """The graph the demo node lives in, and a label saying which (runs in a worker thread)."""
    path = Path(cfg.sim_graph_path) if cfg.sim_graph_path else find_bundled_snapshot()
    if path is not None:
        try:
            graph = load_graph(path)
            return graph, f"snapshot {path.name} ({len(graph.nodes)} nodes)"
        except GraphFormatError as exc:
            if cfg.sim_graph_path:
                raise  # the admin asked for this file: say what is wrong with it
            logger.warning(f"daznode: bundled snapshot unusable, generating a network: {exc}")
    graph = generate_network(num_nodes=2000, seed=cfg.sim_seed)
    return graph, f"generated network ({len(graph.nodes)} nodes)"


def _state_path(cfg: DaznodeSettings, label: str) -> Path:
    digest = hashlib.sha256(label.encode()).hexdigest()[:10]
    name = f"simnode-{cfg.sim_seed}-{cfg.sim_channels}-{digest}.json"
    return Path(lnbits_settings.lnbits_data_folder, "daznode", name)


async def _build_simulated(cfg: DaznodeSettings, reason: str) -> Backend:
    network, label = await asyncio.to_thread(load_sim_network, cfg)
    config = SimConfig(seed=cfg.sim_seed, num_channels=cfg.sim_channels)
    node = await asyncio.to_thread(
        lambda: SimulatedNode(
            network, config, state_path=_state_path(cfg, label), graph_label=label
        )
    )
    return Backend(node, _backend_out(node, "Simulated node (demo)", True, f"{reason}; {label}"))


def _backend_out(source: NodeSource, label: str, demo: bool, detail: str) -> BackendOut:
    caps = source.capabilities
    return BackendOut(
        kind=source.kind,
        label=label,
        demo=demo,
        funding_source=_funding_source_name(),
        detail=detail,
        inbound_fees=caps.inbound_fees,
        per_channel_cltv=caps.per_channel_cltv,
        forward_failures=caps.forward_failures,
        rebalance=caps.rebalance,
    )


async def _build(cfg: DaznodeSettings) -> Backend:
    fs = get_funding_source()
    name = type(fs).__name__
    if name == "LndRestWallet":
        from .engine.sources.lnd_rest import LndRestSource

        source = LndRestSource(fs.client)  # type: ignore[attr-defined]
        return Backend(source, _backend_out(source, "LND (REST)", False, fs.endpoint))  # type: ignore[attr-defined]
    if name == "CoreLightningWallet":
        from .engine.sources.cln_rpc import ClnRpcSource

        rpc = fs.ln  # type: ignore[attr-defined]
        source = ClnRpcSource(lambda method, params: rpc.call(method, params))
        return Backend(source, _backend_out(source, "Core Lightning (RPC)", False, "lightningd"))
    if name in ("FakeWallet", "VoidWallet"):
        reason = f"{name} has no Lightning node"
    else:
        reason = f"{name} is not a node Daznode can manage (LND REST or Core Lightning RPC)"
    return await _build_simulated(cfg, reason)


async def get_backend(cfg: DaznodeSettings) -> Backend:
    """The node source for the current funding source and settings, built once and reused."""
    fs = get_funding_source()
    key = (id(fs), cfg.sim_graph_path, cfg.sim_channels, cfg.sim_seed)
    async with _build_lock:
        if key not in _cache:
            _cache.clear()
            _cache[key] = await _build(cfg)
            logger.info(f"daznode: node backend {_cache[key].info.label}")
        return _cache[key]


def cached_backend() -> Backend | None:
    return next(iter(_cache.values()), None)


# -- the engine's inputs ------------------------------------------------------------------


def _window(stats: dict[str, dict[str, int]], channel_id: str, days: int) -> FlowWindow:
    s = stats.get(channel_id, {})
    return FlowWindow(
        days,
        forwards_out=s.get("out", 0),
        forwards_in=s.get("in", 0),
        volume_out_msat=s.get("volume_out", 0),
        volume_in_msat=s.get("volume_in", 0),
        fees_msat=s.get("fees", 0),
        failed_out=s.get("failed", 0),
        assisted_fees_msat=s.get("assisted", 0),
        refill_cost_msat=s.get("refill_cost", 0),
    )


def _policy(raw: dict | None) -> RoutingPolicy | None:
    return RoutingPolicy(**raw) if raw else None


def build_metrics(
    rows: list[dict],
    stats: dict[int, dict[str, dict[str, int]]],
    signals: dict[str, dict[str, Any]],
    block_height: int,
    now: int,
) -> list[ChannelMetrics]:
    """Stored channels + forward statistics per window + snapshot signals -> engine input."""
    out = []
    for row in rows:
        cid = row["channel_id"]
        sig = signals.get(cid, {})
        samples = sig.get("samples", 0)
        first = sig.get("first")
        trend = 0.0
        if first and now - first[0] >= 3600:  # at least an hour apart to call it a drift
            trend = (row["local_msat"] - first[1]) / ((now - first[0]) / 86400)
        out.append(
            ChannelMetrics(
                channel_id=cid,
                peer_id=row["peer_id"],
                peer_alias=row["peer_alias"],
                capacity_sat=row["capacity_sat"],
                local_msat=row["local_msat"],
                remote_msat=row["remote_msat"],
                active=row["active"],
                age_days=max(0, block_height - row["funding_height"]) / BLOCKS_PER_DAY,
                local_policy=_policy(row["local_policy"]),
                remote_policy=_policy(row["remote_policy"]),
                windows={d: _window(stats[d], cid, d) for d in WINDOWS},
                uptime_ratio=sig["active"] / samples if samples else None,
                disconnects_7d=sig.get("down_hours") if samples else None,
                policy_changes_30d=sig.get("fee_changes", 0),
                fee_unchanged_days=(now - sig["fee_changed_at"]) / 86400
                if "fee_changed_at" in sig
                else None,
                balance_trend_msat_per_day=trend,
            )
        )
    return out


async def load_profile() -> Profile:
    doc = await crud.get_doc("profile")
    try:
        return profile_from_dict(doc) if doc else BUILTIN["balanced"]
    except ProfileError as exc:  # stored by an older version: say so, keep working
        logger.warning(f"daznode: stored profile unusable ({exc}); using balanced")
        return BUILTIN["balanced"]


async def load_rules() -> list[Rule]:
    doc = await crud.get_doc("rules")
    try:
        return parse_rules(doc) if doc else []
    except RuleError as exc:
        logger.warning(f"daznode: stored rules unusable ({exc}); running without rules")
        return []


async def with_lessons(metrics: list[ChannelMetrics], now: int) -> list[ChannelMetrics]:
    """Add what measuring our applied changes taught (engine/lessons.py)."""
    impact = (await load_execution_settings()).impact
    measuring, verdicts = await crud.engine_lessons(
        now, impact.evaluation_hours * 3600, LESSON_DAYS * 86400
    )
    lessons = [
        Lesson(
            v["channel_id"],
            v["fee_before_ppm"],
            v["fee_after_ppm"],
            v["adjusted_change"],
            v["outcome"],
            v["evaluated_at"],
        )
        for v in verdicts
    ]
    return engine_with_lessons(metrics, measuring, lessons, now)


async def evaluate(now: int) -> tuple[list[Recommendation], Profile, NetworkContext]:
    """Every open channel through the engine, in a worker thread (CPU-bound)."""
    state = await crud.get_monitor_state()
    pubkey = state.get("node_pubkey") or ""
    height = int(json.loads(state.get("node_info") or "{}").get("block_height", 0))
    rows = await crud.get_channels()
    # Under price level trials the engine decides on its own fees (level_service).
    level_state = await load_level_state()
    levels = current_levels(rows, level_state, await load_execution_settings())
    rows = as_engine_sees(rows, levels)
    stats = {d: await crud.forward_stats_by_channel(pubkey, now - d * 86400) for d in WINDOWS}
    signals = await crud.channel_signals(now - 7 * 86400, now - 30 * 86400)
    if level_state.channels:
        steps = await crud.level_steps_since(now - 30 * 86400)
        signals = engine_signals(signals, level_state, steps)
    metrics = build_metrics(rows, stats, signals, height, now)
    metrics = await with_lessons(metrics, now)
    profile, rules, net = await load_profile(), await load_rules(), network_context()
    recs = await asyncio.to_thread(evaluate_node, metrics, net, profile, rules)
    return recs, profile, net
