"""All SQL of the extension. Portable across SQLite and PostgreSQL (see migrations.py)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

from lnbits.db import Database
from sqlalchemy import text

from .engine.changes import PolicyChange
from .engine.execute import JournalItem
from .engine.level_trials import own_fee
from .engine.node_score import NodeScore
from .engine.node_source import (
    Channel,
    ForwardEvent,
    GraphEdge,
    GraphNode,
    NetworkGraph,
    RoutingPolicy,
)
from .models import DaznodeSettings, ForwardOut, ForwardsPage, HistoryPoint

db = Database("ext_daznode")

HOUR = 3600
DAY = 86400
ROLLUP_CHUNK_SECONDS = 6 * HOUR  # bounded work per roll-up step


class Tx:
    """Statements run in one database transaction: all of them commit, or none."""

    def __init__(self, conn: Any):
        self._conn = conn

    async def run(self, sql: str, params: dict | Sequence[dict] | None = None) -> Any:
        if isinstance(params, Sequence) and not params:
            return None  # executemany with nothing to do
        return await self._conn.execute(text(sql), params if params is not None else {})

    async def rows(self, sql: str, params: dict | None = None) -> list[dict]:
        result = await self._conn.execute(text(sql), params or {})
        return [dict(r) for r in result.mappings().all()]


@asynccontextmanager
async def transaction() -> AsyncIterator[Tx]:
    # LNbits' Connection commits after every statement; the SQLAlchemy connection under it
    # lets several statements share one transaction.
    async with db.connect() as conn:
        raw = conn.conn
        try:
            yield Tx(raw)
            await raw.commit()
        except BaseException:
            await raw.rollback()
            raise


def bound_list(prefix: str, values: Iterable[str]) -> tuple[str, dict[str, str]]:
    """`:p0, :p1, ...` and their parameters, for an IN (...) list of bound values (never
    values pasted into SQL)."""
    params = {f"{prefix}{i}": v for i, v in enumerate(values)}
    return ", ".join(f":{k}" for k in params), params


# -- settings -----------------------------------------------------------------------------


async def get_settings() -> DaznodeSettings:
    data = await get_doc("global")
    return DaznodeSettings.parse_obj(data) if data else DaznodeSettings()


async def save_settings(new: DaznodeSettings, now: int) -> None:
    await save_doc("global", new.dict(), now)


# -- monitor state, lease, cursor -----------------------------------------------------------

MONITOR_STATE_FIELDS = {
    "backend",
    "node_pubkey",
    "node_info",
    "last_run",
    "last_success",
    "last_duration_ms",
    "last_error",
    "last_error_at",
    "consecutive_failures",
    "next_run",
    "last_rollup",
}


async def get_monitor_state() -> dict:
    row = await db.fetchone("SELECT * FROM daznode.monitor_state WHERE id = 'monitor'")
    return dict(row) if row else {}


async def update_monitor_state(**fields: Any) -> None:
    unknown = set(fields) - MONITOR_STATE_FIELDS
    if unknown:
        raise ValueError(f"unknown monitor state fields: {sorted(unknown)}")
    async with transaction() as tx:
        await tx.run(
            "INSERT INTO daznode.monitor_state (id) VALUES ('monitor') ON CONFLICT (id) DO NOTHING"
        )
        assignments = ", ".join(f"{name} = :{name}" for name in fields)
        await tx.run(
            f"UPDATE daznode.monitor_state SET {assignments} WHERE id = 'monitor'",  # noqa: S608
            fields,
        )


async def try_acquire_lease(holder: str, now: int, ttl: int) -> bool:
    """Take or renew the monitor lease. Exactly one holder at a time: the UPDATE matches only
    when the lease is ours already or has expired, and the database serialises updates."""
    async with transaction() as tx:
        result = await tx.run(
            """
            UPDATE daznode.lease
            SET acquired_at = CASE WHEN holder = :holder THEN acquired_at ELSE :now END,
                holder = :holder, expires_at = :expires
            WHERE name = 'monitor' AND (holder = :holder OR expires_at < :now)
            """,
            {"holder": holder, "now": now, "expires": now + ttl},
        )
        return result.rowcount == 1


async def release_lease(holder: str) -> None:
    await db.execute(
        "UPDATE daznode.lease SET expires_at = 0 WHERE name = 'monitor' AND holder = :holder",
        {"holder": holder},
    )


async def get_lease() -> dict:
    row = await db.fetchone("SELECT * FROM daznode.lease WHERE name = 'monitor'")
    return dict(row) if row else {"holder": "", "expires_at": 0, "acquired_at": 0}


async def get_forward_cursor(node_pubkey: str) -> int:
    row = await db.fetchone(
        "SELECT forward_cursor FROM daznode.cursors WHERE node_pubkey = :pk",
        {"pk": node_pubkey},
    )
    return int(row["forward_cursor"]) if row else 0


# -- ingestion --------------------------------------------------------------------------------


def _policy_json(policy: RoutingPolicy | None) -> str | None:
    return policy_to_json(policy) if policy is not None else None


async def set_local_policies(policies: dict[str, RoutingPolicy]) -> None:
    """What a verified batch set on the node, kept before the monitor reads it again: the
    next decision in the same pass starts from it, not from the policy it replaced."""
    for channel_id, policy in policies.items():
        await db.execute(
            "UPDATE daznode.channels SET local_policy = :policy WHERE channel_id = :id",
            {"policy": _policy_json(policy), "id": channel_id},
        )


async def store_channels_snapshot(channels: Iterable[Channel], now: int) -> int:
    """Upsert the current channel list, mark vanished channels closed, and add one
    snapshot row per channel. Returns the number of channels stored."""
    rows = [
        {
            "channel_id": ch.channel_id,
            "native_id": ch.native_id,
            "channel_point": ch.channel_point,
            "peer_id": ch.peer_id,
            "peer_alias": ch.peer_alias,
            "capacity_sat": ch.capacity_sat,
            "local_msat": ch.local_balance_msat,
            "remote_msat": ch.remote_balance_msat,
            "active": int(ch.active),
            "private": int(ch.private),
            "funding_height": ch.funding_height,
            "local_policy": _policy_json(ch.local_policy),
            "remote_policy": _policy_json(ch.remote_policy),
            "now": now,
            "fee_rate_ppm": ch.local_policy.fee_rate_ppm if ch.local_policy else None,
            "base_fee_msat": ch.local_policy.base_fee_msat if ch.local_policy else None,
            "inbound_fee_rate_ppm": (
                ch.local_policy.inbound_fee_rate_ppm if ch.local_policy else None
            ),
        }
        for ch in channels
    ]
    async with transaction() as tx:
        await tx.run(
            """
            INSERT INTO daznode.channels (channel_id, native_id, channel_point, peer_id,
                peer_alias, capacity_sat, local_msat, remote_msat, active, private,
                funding_height, local_policy, remote_policy, first_seen, last_seen, closed_at)
            VALUES (:channel_id, :native_id, :channel_point, :peer_id, :peer_alias,
                :capacity_sat, :local_msat, :remote_msat, :active, :private, :funding_height,
                :local_policy, :remote_policy, :now, :now, 0)
            ON CONFLICT (channel_id) DO UPDATE SET native_id = excluded.native_id,
                peer_alias = excluded.peer_alias, capacity_sat = excluded.capacity_sat,
                local_msat = excluded.local_msat, remote_msat = excluded.remote_msat,
                active = excluded.active, private = excluded.private,
                local_policy = excluded.local_policy, remote_policy = excluded.remote_policy,
                last_seen = excluded.last_seen, closed_at = 0
            """,
            rows,
        )
        await tx.run(
            """
            INSERT INTO daznode.snapshots (ts, channel_id, local_msat, remote_msat, active,
                fee_rate_ppm, base_fee_msat, inbound_fee_rate_ppm)
            VALUES (:now, :channel_id, :local_msat, :remote_msat, :active, :fee_rate_ppm,
                :base_fee_msat, :inbound_fee_rate_ppm)
            ON CONFLICT (channel_id, ts) DO NOTHING
            """,
            rows,
        )
        # A channel the node no longer lists has closed (by id: two snapshots may share a
        # second, so last_seen cannot tell).
        names, listed = bound_list("c", (r["channel_id"] for r in rows))
        keep = f"AND channel_id NOT IN ({names})" if listed else ""
        await tx.run(
            "UPDATE daznode.channels SET closed_at = :now "  # noqa: S608
            f"WHERE closed_at = 0 {keep}",
            {"now": now, **listed},
        )
    return len(rows)


async def store_forwards(
    node_pubkey: str, events: list[ForwardEvent], cursor: int, now: int
) -> int:
    """Insert forwards and advance the cursor in one transaction, so a crash in between can
    neither skip events (cursor ahead of data) nor duplicate them (the primary key on the
    node's index drops repeats). Returns how many were new."""
    rows = [
        {
            "node_pubkey": node_pubkey,
            "idx": ev.index,
            "ts": ev.timestamp_ns // 1_000_000_000,
            "ts_ns": ev.timestamp_ns,
            "chan_in": ev.chan_in,
            "chan_out": ev.chan_out,
            "amt_in_msat": ev.amt_in_msat,
            "amt_out_msat": ev.amt_out_msat,
            "fee_msat": ev.fee_msat,
            "status": ev.status,
            "fail_reason": ev.fail_reason,
        }
        for ev in events
    ]
    span = {"pk": node_pubkey, "lo": rows[0]["idx"], "hi": rows[-1]["idx"]} if rows else {}
    async with transaction() as tx:
        before = await _count_span(tx, span)
        await tx.run(
            """
            INSERT INTO daznode.forwards (node_pubkey, idx, ts, ts_ns, chan_in, chan_out,
                amt_in_msat, amt_out_msat, fee_msat, status, fail_reason)
            VALUES (:node_pubkey, :idx, :ts, :ts_ns, :chan_in, :chan_out, :amt_in_msat,
                :amt_out_msat, :fee_msat, :status, :fail_reason)
            ON CONFLICT (node_pubkey, idx) DO NOTHING
            """,
            rows,
        )
        await tx.run(
            """
            INSERT INTO daznode.cursors (node_pubkey, forward_cursor, updated_at)
            VALUES (:pk, :cursor, :now)
            ON CONFLICT (node_pubkey) DO UPDATE SET forward_cursor = excluded.forward_cursor,
                updated_at = excluded.updated_at
            """,
            {"pk": node_pubkey, "cursor": cursor, "now": now},
        )
        return await _count_span(tx, span) - before


async def _count_span(tx: Tx, span: dict) -> int:
    if not span:
        return 0
    rows = await tx.rows(
        "SELECT COUNT(*) AS n FROM daznode.forwards "
        "WHERE node_pubkey = :pk AND idx >= :lo AND idx <= :hi",
        span,
    )
    return int(rows[0]["n"])


async def _count(tx: Tx, table: str) -> int:
    rows = await tx.rows(f"SELECT COUNT(*) AS n FROM daznode.{table}")  # noqa: S608
    return int(rows[0]["n"])


async def count_rows(table: str) -> int:
    if table not in {
        "forwards",
        "snapshots",
        "snapshots_hourly",
        "snapshots_daily",
        "channels",
    }:
        raise ValueError(f"unknown table {table}")
    async with transaction() as tx:
        return await _count(tx, table)


# -- roll-up ----------------------------------------------------------------------------------


def _aggregate(rows: list[dict], width: int, raw: bool) -> list[dict]:
    """Merge rows (raw snapshots or finer buckets, oldest first) into buckets of `width` s."""
    buckets: dict[tuple[str, int], dict] = {}
    for r in rows:
        ts = r["ts"] if raw else r["bucket"]
        key = (r["channel_id"], ts // width * width)
        if raw:
            part = {
                "samples": 1,
                "active_samples": r["active"],
                "sum_local_msat": r["local_msat"],
                "min_local_msat": r["local_msat"],
                "max_local_msat": r["local_msat"],
                "capacity_msat": r["local_msat"] + r["remote_msat"],
                "last_fee_rate_ppm": r["fee_rate_ppm"],
                "last_base_fee_msat": r["base_fee_msat"],
            }
        else:
            part = {k: r[k] for k in _BUCKET_FIELDS}
        agg = buckets.get(key)
        if agg is None:
            buckets[key] = {"channel_id": key[0], "bucket": key[1], **part}
            continue
        agg["samples"] += part["samples"]
        agg["active_samples"] += part["active_samples"]
        agg["sum_local_msat"] += part["sum_local_msat"]
        agg["min_local_msat"] = min(agg["min_local_msat"], part["min_local_msat"])
        agg["max_local_msat"] = max(agg["max_local_msat"], part["max_local_msat"])
        agg["capacity_msat"] = part["capacity_msat"]
        agg["last_fee_rate_ppm"] = part["last_fee_rate_ppm"]
        agg["last_base_fee_msat"] = part["last_base_fee_msat"]
    return list(buckets.values())


_BUCKET_FIELDS = (
    "samples",
    "active_samples",
    "sum_local_msat",
    "min_local_msat",
    "max_local_msat",
    "capacity_msat",
    "last_fee_rate_ppm",
    "last_base_fee_msat",
)


async def _merge_buckets(tx: Tx, table: str, buckets: list[dict]) -> None:
    # Sums merge exactly; CASE instead of MIN/MAX/LEAST keeps it portable.
    await tx.run(
        f"""
        INSERT INTO daznode.{table} AS t (bucket, channel_id, samples, active_samples,
            sum_local_msat, min_local_msat, max_local_msat, capacity_msat, last_fee_rate_ppm,
            last_base_fee_msat)
        VALUES (:bucket, :channel_id, :samples, :active_samples, :sum_local_msat,
            :min_local_msat, :max_local_msat, :capacity_msat, :last_fee_rate_ppm,
            :last_base_fee_msat)
        ON CONFLICT (channel_id, bucket) DO UPDATE SET
            samples = t.samples + excluded.samples,
            active_samples = t.active_samples + excluded.active_samples,
            sum_local_msat = t.sum_local_msat + excluded.sum_local_msat,
            min_local_msat = CASE WHEN excluded.min_local_msat < t.min_local_msat
                THEN excluded.min_local_msat ELSE t.min_local_msat END,
            max_local_msat = CASE WHEN excluded.max_local_msat > t.max_local_msat
                THEN excluded.max_local_msat ELSE t.max_local_msat END,
            capacity_msat = excluded.capacity_msat,
            last_fee_rate_ppm = excluded.last_fee_rate_ppm,
            last_base_fee_msat = excluded.last_base_fee_msat
        """,  # noqa: S608 - table names are constants
        buckets,
    )


async def _roll_step(source: str, target: str, width: int, cutoff: int) -> int:
    """Move the oldest chunk of `source` rows older than `cutoff` into `target` buckets.
    Aggregate and delete share a transaction, so nothing is counted twice or lost."""
    raw = source == "snapshots"
    col = "ts" if raw else "bucket"
    async with transaction() as tx:
        oldest = await tx.rows(f"SELECT MIN({col}) AS t FROM daznode.{source}")  # noqa: S608
        if oldest[0]["t"] is None or oldest[0]["t"] >= cutoff:
            return 0
        # Chunks end on a bucket boundary so a bucket's rows always travel together.
        end = min(cutoff, (int(oldest[0]["t"]) + ROLLUP_CHUNK_SECONDS) // width * width + width)
        rows = await tx.rows(
            f"SELECT * FROM daznode.{source} WHERE {col} < :end ORDER BY {col}",  # noqa: S608
            {"end": end},
        )
        await _merge_buckets(tx, target, _aggregate(rows, width, raw))
        await tx.run(f"DELETE FROM daznode.{source} WHERE {col} < :end", {"end": end})  # noqa: S608
        return len(rows)


async def roll_up(now: int, cfg: DaznodeSettings, max_steps: int = 50) -> dict[str, int]:
    """Raw -> hourly -> daily, then drop what is past retention. Bounded per call."""
    moved = {"raw": 0, "hourly": 0}
    raw_cutoff = (now - cfg.raw_retention_hours * HOUR) // HOUR * HOUR
    hourly_cutoff = (now - cfg.hourly_retention_days * DAY) // DAY * DAY
    for _ in range(max_steps):
        n = await _roll_step("snapshots", "snapshots_hourly", HOUR, raw_cutoff)
        moved["raw"] += n
        if not n:
            break
    for _ in range(max_steps):
        n = await _roll_step("snapshots_hourly", "snapshots_daily", DAY, hourly_cutoff)
        moved["hourly"] += n
        if not n:
            break
    async with transaction() as tx:
        if cfg.daily_retention_days:
            await tx.run(
                "DELETE FROM daznode.snapshots_daily WHERE bucket < :t",
                {"t": now - cfg.daily_retention_days * DAY},
            )
        if cfg.forwards_retention_days:
            await tx.run(
                "DELETE FROM daznode.forwards WHERE ts < :t",
                {"t": now - cfg.forwards_retention_days * DAY},
            )
    return moved


# -- reads for the API --------------------------------------------------------------------------


async def get_channels(include_closed: bool = False) -> list[dict]:
    where = "" if include_closed else "WHERE closed_at = 0"
    rows = await db.fetchall(
        f"SELECT * FROM daznode.channels {where} ORDER BY capacity_sat DESC, channel_id"  # noqa: S608
    )
    return [_decode_channel(r) for r in rows]


async def get_channel(channel_id: str) -> dict | None:
    row = await db.fetchone(
        "SELECT * FROM daznode.channels WHERE channel_id = :id OR native_id = :id",
        {"id": channel_id},
    )
    return _decode_channel(row) if row else None


def _decode_channel(row: Any) -> dict:
    out = dict(row)
    for side in ("local_policy", "remote_policy"):
        out[side] = json.loads(out[side]) if out[side] else None
    out["active"] = bool(out["active"])
    out["private"] = bool(out["private"])
    return out


async def forward_stats_by_channel(node_pubkey: str, since: int) -> dict[str, dict[str, int]]:
    """Per channel since `since`: forwards out/in, volume out, fees earned (attributed to the
    outgoing channel, where the fee is charged), failed forwards, and what rebalances into
    it cost."""
    stats: dict[str, dict[str, int]] = {}

    def slot(cid: str) -> dict[str, int]:
        return stats.setdefault(
            cid,
            {
                "out": 0,
                "in": 0,
                "volume_out": 0,
                "volume_in": 0,
                "fees": 0,
                "failed": 0,
                "assisted": 0,
                "refill_cost": 0,
            },
        )

    async with transaction() as tx:
        for r in await tx.rows(
            "SELECT chan_out, COUNT(*) AS n, SUM(amt_out_msat) AS vol, SUM(fee_msat) AS fees "
            "FROM daznode.forwards WHERE node_pubkey = :pk AND ts >= :since "
            "AND status = 'settled' GROUP BY chan_out",
            {"pk": node_pubkey, "since": since},
        ):
            s = slot(r["chan_out"])
            s["out"], s["volume_out"], s["fees"] = (
                int(r["n"]),
                int(r["vol"]),
                int(r["fees"]),
            )
        for r in await tx.rows(
            "SELECT chan_in, COUNT(*) AS n, SUM(amt_in_msat) AS vol, SUM(fee_msat) AS fees "
            "FROM daznode.forwards "
            "WHERE node_pubkey = :pk AND ts >= :since AND status = 'settled' GROUP BY chan_in",
            {"pk": node_pubkey, "since": since},
        ):
            s = slot(r["chan_in"])
            s["in"], s["volume_in"], s["assisted"] = int(r["n"]), int(r["vol"]), int(r["fees"])
        for r in await tx.rows(
            "SELECT chan_out, COUNT(*) AS n FROM daznode.forwards "
            "WHERE node_pubkey = :pk AND ts >= :since AND status <> 'settled' "
            "GROUP BY chan_out",
            {"pk": node_pubkey, "since": since},
        ):
            slot(r["chan_out"])["failed"] = int(r["n"])
        for r in await tx.rows(
            "SELECT in_channel, SUM(fee_msat) AS cost FROM daznode.rebalances "
            "WHERE ts >= :since GROUP BY in_channel",
            {"since": since},
        ):
            slot(r["in_channel"])["refill_cost"] = int(r["cost"] or 0)
    return stats


async def channel_history(channel_id: str, since: int, until: int) -> list[HistoryPoint]:
    """Raw snapshots, hourly and daily roll-ups merged: every period at the finest resolution
    still kept (roll-up moves whole buckets, so the three never overlap)."""
    params = {"id": channel_id, "since": since, "until": until}
    points: list[HistoryPoint] = []
    async with transaction() as tx:
        for table in ("snapshots_daily", "snapshots_hourly"):
            for r in await tx.rows(
                f"SELECT * FROM daznode.{table} WHERE channel_id = :id "  # noqa: S608
                "AND bucket >= :since AND bucket <= :until ORDER BY bucket",
                params,
            ):
                avg = int(r["sum_local_msat"]) // max(1, int(r["samples"]))
                points.append(
                    HistoryPoint(
                        ts=r["bucket"],
                        local_msat=avg,
                        min_local_msat=r["min_local_msat"],
                        max_local_msat=r["max_local_msat"],
                        remote_msat=int(r["capacity_msat"]) - avg,
                        active_share=int(r["active_samples"]) / max(1, int(r["samples"])),
                        fee_rate_ppm=r["last_fee_rate_ppm"],
                        base_fee_msat=r["last_base_fee_msat"],
                    )
                )
        for r in await tx.rows(
            "SELECT * FROM daznode.snapshots WHERE channel_id = :id "
            "AND ts >= :since AND ts <= :until ORDER BY ts",
            params,
        ):
            points.append(
                HistoryPoint(
                    ts=r["ts"],
                    local_msat=r["local_msat"],
                    min_local_msat=r["local_msat"],
                    max_local_msat=r["local_msat"],
                    remote_msat=r["remote_msat"],
                    active_share=float(r["active"]),
                    fee_rate_ppm=r["fee_rate_ppm"],
                    base_fee_msat=r["base_fee_msat"],
                )
            )
    points.sort(key=lambda p: p.ts)
    return points


async def forwards_page(
    *,
    node_pubkey: str,
    since: int | None,
    until: int | None,
    channel_id: str | None,
    status: str | None,
    page: int,
    size: int,
) -> ForwardsPage:
    clauses, params = ["node_pubkey = :pk"], {"pk": node_pubkey}
    if since is not None:
        clauses.append("ts >= :since")
        params["since"] = since
    if until is not None:
        clauses.append("ts <= :until")
        params["until"] = until
    if channel_id:
        clauses.append("(chan_in = :cid OR chan_out = :cid)")
        params["cid"] = channel_id
    if status:
        clauses.append("status = :status")
        params["status"] = status
    where = f"WHERE {' AND '.join(clauses)}"
    async with transaction() as tx:
        total = await tx.rows(f"SELECT COUNT(*) AS n FROM daznode.forwards {where}", params)  # noqa: S608
        rows = await tx.rows(
            f"SELECT * FROM daznode.forwards {where} "  # noqa: S608
            "ORDER BY ts DESC, idx DESC LIMIT :limit OFFSET :offset",
            {**params, "limit": size, "offset": (page - 1) * size},
        )
    return ForwardsPage(
        data=[
            ForwardOut(
                index=r["idx"],
                ts=r["ts"],
                chan_in=r["chan_in"],
                chan_out=r["chan_out"],
                amt_in_msat=r["amt_in_msat"],
                amt_out_msat=r["amt_out_msat"],
                fee_msat=r["fee_msat"],
                status=r["status"],
                fail_reason=r["fail_reason"],
            )
            for r in rows
        ],
        total=int(total[0]["n"]),
        page=page,
        size=size,
    )


async def channel_signals(since_7d: int, since_30d: int) -> dict[str, dict[str, Any]]:
    """Per channel, from stored snapshots: uptime and hours with downtime over 7 days, fee
    changes over 30 days and when the last was seen, and the oldest local balance within 7
    days (for the drift).
    LAG() is a window function both SQLite (>= 3.25) and PostgreSQL have."""
    out: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"samples": 0, "active": 0, "down_hours": 0, "fee_changes": 0, "first": None}
    )
    p = {"s7": since_7d, "s30": since_30d}
    uptime_queries = (  # hourly roll-ups (older) and raw snapshots (recent) add up
        "SELECT channel_id, SUM(samples) AS n, SUM(active_samples) AS a, "
        "SUM(CASE WHEN active_samples < samples THEN 1 ELSE 0 END) AS down "
        "FROM daznode.snapshots_hourly WHERE bucket >= :s7 GROUP BY channel_id",
        "SELECT channel_id, COUNT(*) AS n, SUM(active) AS a, "
        "COUNT(DISTINCT CASE WHEN active = 0 THEN ts / 3600 END) AS down "
        "FROM daznode.snapshots WHERE ts >= :s7 GROUP BY channel_id",
    )
    async with transaction() as tx:
        for query in uptime_queries:
            for r in await tx.rows(query, p):
                o = out[r["channel_id"]]
                o["samples"] += int(r["n"])
                o["active"] += int(r["a"])
                o["down_hours"] += int(r["down"])
        for table, col, fee in (
            ("snapshots_hourly", "bucket", "last_fee_rate_ppm"),
            ("snapshots", "ts", "fee_rate_ppm"),
        ):
            for r in await tx.rows(
                f"SELECT channel_id, SUM(CASE WHEN prev IS NOT NULL AND fee <> prev "  # noqa: S608
                f"THEN 1 ELSE 0 END) AS n, MAX(CASE WHEN prev IS NOT NULL AND fee <> prev "
                f"THEN ts END) AS last FROM (SELECT channel_id, {col} AS ts, {fee} AS fee, "
                f"LAG({fee}) OVER (PARTITION BY channel_id ORDER BY {col}) AS prev "
                f"FROM daznode.{table} WHERE {col} >= :s30) AS t GROUP BY channel_id",
                p,
            ):
                o = out[r["channel_id"]]
                o["fee_changes"] += int(r["n"])
                if r["last"] is not None:
                    o["fee_changed_at"] = max(o.get("fee_changed_at", 0), int(r["last"]))
        for table, col, local in (
            ("snapshots", "ts", "local_msat"),
            ("snapshots_hourly", "bucket", "sum_local_msat / samples"),
        ):  # hourly last: older, so it wins where both exist
            for r in await tx.rows(
                f"SELECT x.channel_id, x.{col} AS ts, {local} AS local FROM daznode.{table} x "  # noqa: S608
                f"JOIN (SELECT channel_id, MIN({col}) AS first FROM daznode.{table} "
                f"WHERE {col} >= :s7 GROUP BY channel_id) m "
                f"ON m.channel_id = x.channel_id AND m.first = x.{col}",
                p,
            ):
                out[r["channel_id"]]["first"] = (int(r["ts"]), int(r["local"]))
    return dict(out)


async def get_doc(doc_id: str) -> Any:
    """A JSON document kept beside the settings (decision profile, rules)."""
    row = await db.fetchone("SELECT data FROM daznode.settings WHERE id = :id", {"id": doc_id})
    return json.loads(row["data"]) if row else None


_doc_writes = [0]  # this process's document writes: two in the same second still differ


async def save_doc(doc_id: str, data: Any, now: int) -> None:
    _doc_writes[0] += 1
    async with transaction() as tx:
        await tx.run(
            """
            INSERT INTO daznode.settings (id, data, updated_at) VALUES (:id, :data, :now)
            ON CONFLICT (id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at
            """,
            {"id": doc_id, "data": json.dumps(data), "now": now},
        )


# -- execution: proposed changes, audit -----------------------------------------------------


def policy_to_json(policy: RoutingPolicy) -> str:
    return json.dumps(asdict(policy))


def policy_from_json(text: str) -> RoutingPolicy:
    return RoutingPolicy(**json.loads(text))


async def add_audit(now: int, actor: str, action: str, target: str = "", detail: str = "") -> None:
    await db.execute(
        "INSERT INTO daznode.audit (ts, actor, action, target, detail) "
        "VALUES (:ts, :actor, :action, :target, :detail)",
        {"ts": now, "actor": actor, "action": action, "target": target, "detail": detail[:2000]},
    )


async def audit_page(page: int, size: int) -> tuple[list[dict], int]:
    async with transaction() as tx:
        total = await tx.rows("SELECT COUNT(*) AS n FROM daznode.audit")
        rows = await tx.rows(
            "SELECT * FROM daznode.audit ORDER BY ts DESC, id DESC LIMIT :limit OFFSET :offset",
            {"limit": size, "offset": (page - 1) * size},
        )
    return rows, int(total[0]["n"])


async def _insert_change(tx: Tx, row: dict) -> int:
    """Insert a proposal after retiring the pending one for the same channel and kind;
    returns how many it retired."""
    retired = await tx.run(
        "UPDATE daznode.changes SET status = 'superseded', decided_at = :created_at "
        "WHERE channel_id = :channel_id AND kind = :kind AND status = 'pending'",
        row,
    )
    await tx.run(
        """
        INSERT INTO daznode.changes (id, created_at, channel_id, kind, status,
            before_policy, after_policy, reasons, confidence, origin, validation, action,
            level_percent)
        VALUES (:id, :created_at, :channel_id, :kind, :status, :before_policy,
            :after_policy, :reasons, :confidence, :origin, :validation, :action,
            :level_percent)
        """,
        {"action": "{}", "level_percent": 100, **row},
    )
    return retired.rowcount or 0


async def create_change(row: dict) -> None:
    """A proposal; a newer pending proposal for the same channel supersedes the older one."""
    async with transaction() as tx:
        await _insert_change(tx, row)


async def replace_pending_origin(origin: str, rows: list[dict], now: int) -> int:
    """One transaction: every pending proposal of `origin` leaves the queue (a newer price
    level replaces the whole of the last one, channels it leaves out included), then `rows`
    go in, each retiring what else waits on its channel. Returns how many left the queue."""
    async with transaction() as tx:
        result = await tx.run(
            "UPDATE daznode.changes SET status = 'superseded', decided_at = :now "
            "WHERE status = 'pending' AND origin = :origin",
            {"now": now, "origin": origin},
        )
        retired = result.rowcount or 0
        for row in rows:
            retired += await _insert_change(tx, row)
    return retired


async def get_changes(status: str | None = None, limit: int = 500) -> list[dict]:
    where = "WHERE status = :status" if status else ""
    return [
        dict(r)
        for r in await db.fetchall(
            f"SELECT * FROM daznode.changes {where} "  # noqa: S608
            "ORDER BY created_at DESC, id LIMIT :limit",
            {"status": status, "limit": limit},
        )
    ]


async def get_changes_by_id(ids: list[str]) -> list[dict]:
    if not ids:
        return []
    placeholders, names = bound_list("id", ids)
    rows = await db.fetchall(
        f"SELECT * FROM daznode.changes WHERE id IN ({placeholders})",  # noqa: S608
        names,
    )
    by_id = {r["id"]: dict(r) for r in rows}
    return [by_id[i] for i in ids if i in by_id]


async def set_change_status(
    ids: list[str], status: str, now: int, actor: str | None, batch_id: str | None = None
) -> None:
    async with transaction() as tx:
        await tx.run(
            "UPDATE daznode.changes SET status = :status, decided_by = :actor, "
            "decided_at = :now, batch_id = :batch WHERE id = :id",
            [
                {"status": status, "actor": actor, "now": now, "batch": batch_id, "id": i}
                for i in ids
            ],
        )


async def supersede_orphans(open_channel_ids: Sequence[str], now: int) -> int:
    """Pending proposals for channels that are no longer open (closed, or another node behind
    LNbits now) can never apply: they leave the queue."""
    placeholders, names = bound_list("c", open_channel_ids)
    keep = f"AND channel_id NOT IN ({placeholders})" if names else ""
    result = await db.execute(
        "UPDATE daznode.changes SET status = 'superseded', decided_at = :now "  # noqa: S608
        f"WHERE status = 'pending' {keep}",
        {"now": now, **names},
    )
    return result.rowcount or 0


async def expire_pending(origin: str, created_before: int, now: int) -> int:
    """Pending proposals of `origin` made before `created_before` leave the queue."""
    result = await db.execute(
        "UPDATE daznode.changes SET status = 'superseded', decided_at = :now "
        "WHERE status = 'pending' AND origin = :origin AND created_at < :before",
        {"now": now, "origin": origin, "before": created_before},
    )
    return result.rowcount or 0


async def last_change_of_origin(origin: str) -> tuple[int | None, int]:
    """When a proposal of this origin was last made, and how many of them wait now."""
    row = await db.fetchone(
        "SELECT MAX(created_at) AS last, "
        "SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END) AS waiting "
        "FROM daznode.changes WHERE origin = :origin",
        {"origin": origin},
    )
    if not row or row["last"] is None:
        return None, 0
    return int(row["last"]), int(row["waiting"] or 0)


async def set_change_outcome(change_id: str, status: str, outcome: str, now: int) -> None:
    await db.execute(
        "UPDATE daznode.changes SET status = :status, outcome = :outcome, decided_at = :now "
        "WHERE id = :id",
        {"status": status, "outcome": outcome[:1000], "now": now, "id": change_id},
    )


async def last_decided(kind: str, channel_id: str, status: str) -> int:
    """When a change of this kind on this channel last reached `status` (0: never)."""
    row = await db.fetchone(
        "SELECT MAX(decided_at) AS t FROM daznode.changes "
        "WHERE kind = :kind AND channel_id = :channel_id AND status = :status",
        {"kind": kind, "channel_id": channel_id, "status": status},
    )
    return int(row["t"] or 0) if row else 0


async def policy_updates_version() -> tuple[int, int]:
    """Changes when any batch item does: caches of what the node's policies imply use it."""
    row = await db.fetchone("SELECT COUNT(*) AS n, MAX(updated_at) AS t FROM daznode.batch_items")
    return (int(row["n"]), int(row["t"] or 0)) if row else (0, 0)


async def recent_policy_updates(since: int) -> list[tuple[str, int]]:
    """Applied policy updates since `since`: what cooldowns and the gossip budget count."""
    rows = await db.fetchall(
        "SELECT channel_id, updated_at FROM daznode.batch_items "
        "WHERE status IN ('APPLIED', 'RESTORED') AND updated_at >= :since",
        {"since": since},
    )
    return [(r["channel_id"], int(r["updated_at"])) for r in rows]


# -- execution: the batch journal on the database ------------------------------------------


def _change_from_item(r: dict) -> PolicyChange:
    return PolicyChange(
        r["change_id"],
        r["channel_id"],
        policy_from_json(r["before_policy"]),
        policy_from_json(r["after_policy"]),
        r["reason"],
    )


class DbJournal:
    """engine.execute.Journal on the extension's tables; every write commits before it
    returns, so a crash leaves at most the item being sent in SENDING (reconciled later)."""

    def __init__(self, actor: str, clock: Any = None):
        self.actor = actor
        self._clock = clock or (lambda: int(time.time()))

    async def record_batch(self, batch_id: str, changes: Sequence[PolicyChange]) -> None:
        now = self._clock()
        async with transaction() as tx:
            existing = await tx.rows(
                "SELECT change_id, after_policy FROM daznode.batch_items "
                "WHERE batch_id = :b ORDER BY position",
                {"b": batch_id},
            )
            if existing:
                same = [(r["change_id"], r["after_policy"]) for r in existing] == [
                    (c.change_id, policy_to_json(c.after)) for c in changes
                ]
                if not same:
                    raise ValueError(f"batch {batch_id} already recorded with other changes")
                await tx.run(
                    "UPDATE daznode.batches SET status = 'PENDING', detail = '', "
                    "updated_at = :now WHERE id = :b",
                    {"b": batch_id, "now": now},
                )
                return
            await tx.run(
                "INSERT INTO daznode.batches (id, created_at, created_by, status, detail, "
                "updated_at) VALUES (:b, :now, :actor, 'PENDING', '', :now)",
                {"b": batch_id, "now": now, "actor": self.actor},
            )
            await tx.run(
                """
                INSERT INTO daznode.batch_items (batch_id, change_id, position, channel_id,
                    status, before_policy, after_policy, reason, updated_at)
                VALUES (:b, :c, :pos, :ch, 'PENDING', :before, :after, :reason, :now)
                """,
                [
                    {
                        "b": batch_id,
                        "c": c.change_id,
                        "pos": i,
                        "ch": c.channel_id,
                        "before": policy_to_json(c.before),
                        "after": policy_to_json(c.after),
                        "reason": c.reason,
                        "now": now,
                    }
                    for i, c in enumerate(changes)
                ],
            )

    async def mark_sending(self, batch_id: str, change_id: str) -> None:
        await self.mark_item(batch_id, change_id, "SENDING", None, None)

    async def mark_item(
        self,
        batch_id: str,
        change_id: str,
        status: str,
        readback: RoutingPolicy | None,
        error: str | None,
    ) -> None:
        await db.execute(
            "UPDATE daznode.batch_items SET status = :s, readback = :rb, error = :e, "
            "updated_at = :now WHERE batch_id = :b AND change_id = :c",
            {
                "s": status,
                "rb": policy_to_json(readback) if readback else None,
                "e": error,
                "now": self._clock(),
                "b": batch_id,
                "c": change_id,
            },
        )

    async def mark_batch(self, batch_id: str, status: str, detail: str) -> None:
        await db.execute(
            "UPDATE daznode.batches SET status = :s, detail = :d, updated_at = :now WHERE id = :b",
            {"s": status, "d": detail[:2000], "now": self._clock(), "b": batch_id},
        )

    async def items_in_state(self, state: str) -> list[tuple[str, PolicyChange]]:
        rows = await db.fetchall(
            "SELECT i.* FROM daznode.batch_items i JOIN daznode.batches b ON b.id = i.batch_id "
            "WHERE i.status = :s ORDER BY b.created_at, i.position",
            {"s": state},
        )
        return [(r["batch_id"], _change_from_item(dict(r))) for r in rows]

    async def batch_items(self, batch_id: str) -> list[JournalItem]:
        rows = await db.fetchall(
            "SELECT * FROM daznode.batch_items WHERE batch_id = :b ORDER BY position",
            {"b": batch_id},
        )
        return [
            JournalItem(
                r["batch_id"],
                _change_from_item(dict(r)),
                r["status"],
                policy_from_json(r["readback"]) if r["readback"] else None,
                r["error"],
            )
            for r in rows
        ]

    async def batches_in_state(self, status: str) -> list[str]:
        rows = await db.fetchall(
            "SELECT id FROM daznode.batches WHERE status = :s ORDER BY created_at, id",
            {"s": status},
        )
        return [r["id"] for r in rows]


async def get_batches(limit: int = 100) -> list[dict]:
    return [
        dict(r)
        for r in await db.fetchall(
            "SELECT * FROM daznode.batches ORDER BY created_at DESC, id LIMIT :n", {"n": limit}
        )
    ]


async def get_batch(batch_id: str) -> dict | None:
    row = await db.fetchone("SELECT * FROM daznode.batches WHERE id = :b", {"b": batch_id})
    return dict(row) if row else None


async def get_batch_items(batch_id: str) -> list[dict]:
    return [
        dict(r)
        for r in await db.fetchall(
            "SELECT * FROM daznode.batch_items WHERE batch_id = :b ORDER BY position",
            {"b": batch_id},
        )
    ]


# -- policy backups -----------------------------------------------------------------------


def canonical_backup(policies: dict[str, dict]) -> tuple[str, str]:
    """The backup's canonical JSON (sorted keys, no spaces) and its sha256."""
    text = json.dumps(policies, sort_keys=True, separators=(",", ":"))
    return text, hashlib.sha256(text.encode()).hexdigest()


def backup_policies(row: dict) -> dict[str, dict]:
    """The policies of a stored backup; ValueError when it does not match its checksum."""
    try:
        text = row["data"]
        if row["compressed"]:
            text = gzip.decompress(base64.b64decode(text)).decode()
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"backup {row['id']} is unreadable: {exc}") from None
    if hashlib.sha256(text.encode()).hexdigest() != row["checksum"]:
        raise ValueError(f"backup {row['id']} does not match its checksum")
    return json.loads(text)


async def create_backup(policies: dict[str, dict], reason: str, now: int) -> int:
    text, checksum = canonical_backup(policies)
    async with transaction() as tx:
        await tx.run(
            "INSERT INTO daznode.backups (created_at, reason, channel_count, checksum, "
            "compressed, data) VALUES (:now, :reason, :n, :sum, 0, :data)",
            {"now": now, "reason": reason[:200], "n": len(policies), "sum": checksum, "data": text},
        )
        rows = await tx.rows(
            "SELECT MAX(id) AS id FROM daznode.backups WHERE checksum = :sum", {"sum": checksum}
        )
    return int(rows[0]["id"])


async def get_backups(limit: int = 200) -> list[dict]:
    return [
        dict(r)
        for r in await db.fetchall(
            "SELECT id, created_at, reason, channel_count, checksum, compressed "
            "FROM daznode.backups ORDER BY created_at DESC, id DESC LIMIT :n",
            {"n": limit},
        )
    ]


async def get_backup(backup_id: int) -> dict | None:
    row = await db.fetchone("SELECT * FROM daznode.backups WHERE id = :id", {"id": backup_id})
    return dict(row) if row else None


async def all_backups() -> list[dict]:
    return [dict(r) for r in await db.fetchall("SELECT * FROM daznode.backups ORDER BY id")]


async def tier_backups(now: int, compress_after_days: int, keep_days: int) -> tuple[int, int]:
    """Compress backups past `compress_after_days`, delete those past `keep_days`.
    Returns (compressed, deleted)."""
    rows = await db.fetchall(
        "SELECT id, data FROM daznode.backups WHERE compressed = 0 AND created_at < :t",
        {"t": now - compress_after_days * DAY},
    )
    async with transaction() as tx:
        for r in rows:
            packed = base64.b64encode(gzip.compress(r["data"].encode())).decode()
            await tx.run(
                "UPDATE daznode.backups SET data = :d, compressed = 1 WHERE id = :id",
                {"d": packed, "id": r["id"]},
            )
        before = await tx.rows("SELECT COUNT(*) AS n FROM daznode.backups")
        await tx.run(
            "DELETE FROM daznode.backups WHERE created_at < :t", {"t": now - keep_days * DAY}
        )
        after = await tx.rows("SELECT COUNT(*) AS n FROM daznode.backups")
    return len(rows), int(before[0]["n"]) - int(after[0]["n"])


# -- impact of applied changes ------------------------------------------------------------


LEVEL_TRIAL_ORIGIN = "level-trial"  # the daily price level: judged by the trials, not here


async def applied_items_to_evaluate(before: int) -> list[dict]:
    """Items applied before `before` (their evaluation window has passed), still in place
    and not measured yet; price level steps are not (the trials judge whole days)."""
    rows = await db.fetchall(
        """
        SELECT i.* FROM daznode.batch_items i
        JOIN daznode.batches b ON b.id = i.batch_id
        LEFT JOIN daznode.impact m ON m.batch_id = i.batch_id AND m.change_id = i.change_id
        LEFT JOIN daznode.changes c ON c.id = i.change_id
        WHERE i.status = 'APPLIED' AND i.updated_at <= :before AND m.batch_id IS NULL
        AND (c.origin IS NULL OR c.origin <> :level)
        ORDER BY i.updated_at
        """,
        {"before": before, "level": LEVEL_TRIAL_ORIGIN},
    )
    return [dict(r) for r in rows]


async def channels_updated_between(start: int, end: int) -> set[str]:
    """Channels whose policy a change set in [start, end). A price level step moves every
    channel alike, so it leaves a channel fit to be a control for another's change."""
    rows = await db.fetchall(
        "SELECT DISTINCT i.channel_id FROM daznode.batch_items i "
        "LEFT JOIN daznode.changes c ON c.id = i.change_id "
        "WHERE i.status IN ('APPLIED', 'RESTORED') AND i.updated_at >= :a AND i.updated_at < :b "
        "AND (c.origin IS NULL OR c.origin <> :level)",
        {"a": start, "b": end, "level": LEVEL_TRIAL_ORIGIN},
    )
    return {r["channel_id"] for r in rows}


async def outbound_flows(node_pubkey: str, start: int, end: int) -> dict[str, tuple[int, int, int]]:
    """Per outgoing channel in [start, end): settled forwards, volume out and fees (msat)."""
    rows = await db.fetchall(
        "SELECT chan_out, COUNT(*) AS n, SUM(amt_out_msat) AS vol, SUM(fee_msat) AS fees "
        "FROM daznode.forwards WHERE node_pubkey = :pk AND status = 'settled' "
        "AND ts >= :a AND ts < :b GROUP BY chan_out",
        {"pk": node_pubkey, "a": start, "b": end},
    )
    return {r["chan_out"]: (int(r["n"]), int(r["vol"]), int(r["fees"])) for r in rows}


async def record_impact(row: dict) -> None:
    await db.execute(
        """
        INSERT INTO daznode.impact (batch_id, change_id, channel_id, applied_at, evaluated_at,
            outcome, rolled_back, verdict)
        VALUES (:batch_id, :change_id, :channel_id, :applied_at, :evaluated_at, :outcome,
            :rolled_back, :verdict)
        ON CONFLICT (batch_id, change_id) DO NOTHING
        """,
        row,
    )


async def get_impacts(limit: int = 200) -> list[dict]:
    return [
        dict(r)
        for r in await db.fetchall(
            "SELECT * FROM daznode.impact ORDER BY evaluated_at DESC LIMIT :n", {"n": limit}
        )
    ]


# -- price level trials ---------------------------------------------------------------------


async def level_steps_since(since: int) -> dict[str, int]:
    """Applied price level steps per channel since `since` (fee changes not the engine's)."""
    rows = await db.fetchall(
        "SELECT i.channel_id, COUNT(*) AS n FROM daznode.batch_items i "
        "JOIN daznode.changes c ON c.id = i.change_id "
        "WHERE i.status = 'APPLIED' AND i.updated_at >= :since AND c.origin = :level "
        "GROUP BY i.channel_id",
        {"since": since, "level": LEVEL_TRIAL_ORIGIN},
    )
    return {r["channel_id"]: int(r["n"]) for r in rows}


async def add_level_day(day_start: int, day_end: int, percent: int, fees: int, n: int) -> None:
    """A finished trial day (recorded once: a second monitor pass over it changes nothing)."""
    await db.execute(
        """
        INSERT INTO daznode.level_days (day_start, day_end, percent, fees_msat, forwards)
        VALUES (:start, :end, :percent, :fees, :n)
        ON CONFLICT (day_start) DO NOTHING
        """,
        {"start": day_start, "end": day_end, "percent": percent, "fees": fees, "n": n},
    )


async def get_level_days() -> list[dict]:
    """Every trial day, oldest first (the schedule needs the whole history)."""
    rows = await db.fetchall("SELECT * FROM daznode.level_days ORDER BY day_start")
    return [dict(r) for r in rows]


async def node_earnings(node_pubkey: str, start: int, end: int) -> tuple[int, int]:
    """Forwarding fees (msat) and settled forwards of the whole node in [start, end)."""
    flows = await outbound_flows(node_pubkey, start, end)
    return sum(f[2] for f in flows.values()), sum(f[0] for f in flows.values())


# -- rebalances -----------------------------------------------------------------------------


async def record_rebalance(row: dict) -> None:
    await db.execute(
        "INSERT INTO daznode.rebalances (ts, actor, out_channel, in_channel, amount_msat, "
        "max_fee_msat, fee_msat, ok, detail) VALUES (:ts, :actor, :out_channel, :in_channel, "
        ":amount_msat, :max_fee_msat, :fee_msat, :ok, :detail)",
        row,
    )


async def get_rebalances(limit: int = 100) -> list[dict]:
    return [
        dict(r)
        for r in await db.fetchall(
            "SELECT * FROM daznode.rebalances ORDER BY ts DESC, id DESC LIMIT :n", {"n": limit}
        )
    ]


# -- the public graph and node scores -------------------------------------------------------

GRAPH_KEEP_SECONDS = 30 * DAY
SCORE_COLUMNS = (
    "composite",
    "centrality",
    "closeness",
    "connectivity",
    "capacity",
    "fees",
    "reliability",
    "betweenness",
    "eigenvector",
    "channels",
    "capacity_sat",
)


async def store_graph(graph: NetworkGraph, now: int) -> dict[str, int]:
    """Merge a sync into the stored graph in one transaction: what it saw is inserted or
    updated and marked seen now; what nobody has seen for 30 days is deleted."""
    nodes = [
        {"pubkey": n.pubkey, "alias": n.alias, "last_update": n.last_update, "now": now}
        for n in graph.nodes
    ]
    channels = [
        {
            "id": e.channel_id,
            "n1": e.node1,
            "n2": e.node2,
            "cap": e.capacity_sat,
            "p1": _policy_json(e.node1_policy),
            "p2": _policy_json(e.node2_policy),
            "lu": e.last_update,
            "now": now,
        }
        for e in graph.edges
    ]
    cutoff = now - GRAPH_KEEP_SECONDS
    async with transaction() as tx:
        await tx.run(
            """
            INSERT INTO daznode.graph_nodes (pubkey, alias, last_update, last_seen)
            VALUES (:pubkey, :alias, :last_update, :now)
            ON CONFLICT (pubkey) DO UPDATE SET alias = excluded.alias,
                last_update = excluded.last_update, last_seen = excluded.last_seen
            """,
            nodes,
        )
        await tx.run(
            """
            INSERT INTO daznode.graph_channels (channel_id, node1, node2, capacity_sat,
                node1_policy, node2_policy, last_update, last_seen)
            VALUES (:id, :n1, :n2, :cap, :p1, :p2, :lu, :now)
            ON CONFLICT (channel_id) DO UPDATE SET node1 = excluded.node1,
                node2 = excluded.node2, capacity_sat = excluded.capacity_sat,
                node1_policy = excluded.node1_policy, node2_policy = excluded.node2_policy,
                last_update = excluded.last_update, last_seen = excluded.last_seen
            """,
            channels,
        )
        gone_channels = await tx.run(
            "DELETE FROM daznode.graph_channels WHERE last_seen < :cutoff", {"cutoff": cutoff}
        )
        gone_nodes = await tx.run(
            "DELETE FROM daznode.graph_nodes WHERE last_seen < :cutoff", {"cutoff": cutoff}
        )
        counts = await tx.rows(
            "SELECT (SELECT COUNT(*) FROM daznode.graph_nodes) AS nodes, "
            "(SELECT COUNT(*) FROM daznode.graph_channels) AS channels"
        )
    return {
        "nodes": int(counts[0]["nodes"]),
        "channels": int(counts[0]["channels"]),
        "removed_nodes": gone_nodes.rowcount or 0,
        "removed_channels": gone_channels.rowcount or 0,
    }


async def load_stored_graph() -> NetworkGraph:
    nodes = await db.fetchall("SELECT pubkey, alias, last_update FROM daznode.graph_nodes")
    edges = await db.fetchall("SELECT * FROM daznode.graph_channels ORDER BY channel_id")
    return NetworkGraph(
        nodes=[GraphNode(r["pubkey"], r["alias"], int(r["last_update"])) for r in nodes],
        edges=[
            GraphEdge(
                r["channel_id"],
                r["node1"],
                r["node2"],
                int(r["capacity_sat"]),
                policy_from_json(r["node1_policy"]) if r["node1_policy"] else None,
                policy_from_json(r["node2_policy"]) if r["node2_policy"] else None,
                int(r["last_update"]),
            )
            for r in edges
        ],
    )


def _score_row(s: NodeScore, version: int, rank: int) -> dict:
    return {
        "pubkey": s.pubkey,
        "version": version,
        "alias": s.alias,
        "alias_lower": s.alias.lower(),
        "channels": s.channels,
        "capacity_sat": s.capacity_sat,
        "composite": s.composite,
        **s.components,
        "betweenness": s.betweenness,
        "closeness_raw": s.closeness,
        "eigenvector": s.eigenvector,
        "median_fee_ppm": s.median_fee_ppm,
        "reasons": json.dumps(list(s.reasons)),
        "rank": rank,
    }


async def store_node_scores(scores: Sequence[NodeScore], version: int) -> None:
    """Replace the scores (best first) in one transaction: readers see old or new, never a mix."""
    rows = [_score_row(s, version, i + 1) for i, s in enumerate(scores)]
    async with transaction() as tx:
        await tx.run("DELETE FROM daznode.node_scores")
        await tx.run(
            """
            INSERT INTO daznode.node_scores (pubkey, version, alias, alias_lower, channels,
                capacity_sat, composite, centrality, closeness, connectivity, capacity, fees,
                reliability, betweenness, closeness_raw, eigenvector, median_fee_ppm, reasons,
                rank)
            VALUES (:pubkey, :version, :alias, :alias_lower, :channels, :capacity_sat,
                :composite, :centrality, :closeness, :connectivity, :capacity, :fees,
                :reliability, :betweenness, :closeness_raw, :eigenvector, :median_fee_ppm,
                :reasons, :rank)
            """,
            rows,
        )


def _like_escape(text: str) -> str:
    """Match the text literally: LIKE's wildcards and the escape character are escaped."""
    return text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def get_node_scores(pubkeys: Sequence[str]) -> dict[str, dict]:
    if not pubkeys:
        return {}
    placeholders, names = bound_list("k", pubkeys)
    rows = await db.fetchall(
        f"SELECT * FROM daznode.node_scores WHERE pubkey IN ({placeholders})",  # noqa: S608
        names,
    )
    return {r["pubkey"]: dict(r) for r in rows}


async def node_scores_page(
    page: int,
    size: int,
    sort: str,
    descending: bool,
    min_capacity_sat: int = 0,
    min_channels: int = 0,
    search: str = "",
) -> tuple[list[dict], int]:
    if sort not in SCORE_COLUMNS:
        raise ValueError(f"sort must be one of {', '.join(SCORE_COLUMNS)}")
    where = "capacity_sat >= :cap AND channels >= :chans"
    params: dict[str, Any] = {"cap": min_capacity_sat, "chans": min_channels}
    if search:
        where += " AND (alias_lower LIKE :q ESCAPE '\\' OR pubkey LIKE :q ESCAPE '\\')"
        params["q"] = f"%{_like_escape(search)}%"
    order = "DESC" if descending else "ASC"
    async with transaction() as tx:
        total = await tx.rows(
            f"SELECT COUNT(*) AS n FROM daznode.node_scores WHERE {where}",  # noqa: S608
            params,
        )
        rows = await tx.rows(
            f"SELECT * FROM daznode.node_scores WHERE {where} "  # noqa: S608
            f"ORDER BY {sort} {order}, pubkey LIMIT :limit OFFSET :offset",
            {**params, "limit": size, "offset": (page - 1) * size},
        )
    return rows, int(total[0]["n"])


async def find_nodes(query: str, limit: int = 10) -> list[dict]:
    """Lookup by pubkey prefix or alias fragment, best ranked first."""
    like = _like_escape(query)
    return [
        dict(r)
        for r in await db.fetchall(
            "SELECT pubkey, alias, rank, composite FROM daznode.node_scores "
            "WHERE pubkey LIKE :prefix ESCAPE '\\' OR alias_lower LIKE :q ESCAPE '\\' "
            "ORDER BY rank LIMIT :limit",
            {"prefix": f"{like}%", "q": f"%{like}%", "limit": limit},
        )
    ]


# -- premium purchases ------------------------------------------------------------------------


async def create_purchase(row: dict) -> None:
    await db.execute(
        """
        INSERT INTO daznode.purchases (id, created_at, user_id, item, subject, price_sat,
            payment_hash, bolt11, expires_at, status)
        VALUES (:id, :created_at, :user_id, :item, :subject, :price_sat, :payment_hash,
            :bolt11, :expires_at, 'pending')
        """,
        row,
    )


async def get_purchase(purchase_id: str) -> dict | None:
    row = await db.fetchone("SELECT * FROM daznode.purchases WHERE id = :id", {"id": purchase_id})
    return dict(row) if row else None


async def get_purchase_by_hash(payment_hash: str) -> dict | None:
    row = await db.fetchone(
        "SELECT * FROM daznode.purchases WHERE payment_hash = :h", {"h": payment_hash}
    )
    return dict(row) if row else None


async def user_purchases(user_id: str, item: str | None = None, subject: str | None = None):
    where = "user_id = :u"
    params: dict[str, Any] = {"u": user_id}
    if item is not None:
        where += " AND item = :item"
        params["item"] = item
    if subject is not None:
        where += " AND subject = :subject"
        params["subject"] = subject
    rows = await db.fetchall(
        f"SELECT * FROM daznode.purchases WHERE {where} "  # noqa: S608
        "ORDER BY created_at DESC, id LIMIT 200",
        params,
    )
    return [dict(r) for r in rows]


async def mark_purchase_paid(payment_hash: str, now: int) -> dict | None:
    """Pending -> paid exactly once (the listener may see a payment twice); the row if this
    call made the transition."""
    async with transaction() as tx:
        result = await tx.run(
            "UPDATE daznode.purchases SET status = 'paid', paid_at = :now "
            "WHERE payment_hash = :h AND status IN ('pending', 'expired')",
            {"h": payment_hash, "now": now},
        )
        if not result.rowcount:
            return None
        rows = await tx.rows(
            "SELECT * FROM daznode.purchases WHERE payment_hash = :h", {"h": payment_hash}
        )
    return rows[0]


async def set_purchase_content(purchase_id: str, content: str) -> None:
    await db.execute(
        "UPDATE daznode.purchases SET content = :c WHERE id = :id",
        {"c": content, "id": purchase_id},
    )


async def renew_purchase(purchase_id: str, payment_hash: str, bolt11: str, expires_at: int):
    await db.execute(
        "UPDATE daznode.purchases SET payment_hash = :h, bolt11 = :b, expires_at = :e, "
        "status = 'pending' WHERE id = :id AND status IN ('pending', 'expired')",
        {"h": payment_hash, "b": bolt11, "e": expires_at, "id": purchase_id},
    )


# -- reports ------------------------------------------------------------------------------------


async def save_report(kind: str, start: int, end: int, now: int, data: dict) -> int:
    """One report per kind and period: generating it again updates it (same id)."""
    params = {"kind": kind, "start": start, "end": end, "now": now, "data": json.dumps(data)}
    async with transaction() as tx:
        updated = await tx.run(
            "UPDATE daznode.reports SET period_end = :end, created_at = :now, data = :data "
            "WHERE kind = :kind AND period_start = :start",
            params,
        )
        if not updated.rowcount:
            await tx.run(
                "INSERT INTO daznode.reports (kind, period_start, period_end, created_at, data) "
                "VALUES (:kind, :start, :end, :now, :data)",
                params,
            )
        rows = await tx.rows(
            "SELECT id FROM daznode.reports WHERE kind = :kind AND period_start = :start",
            {"kind": kind, "start": start},
        )
    return int(rows[0]["id"])


async def get_reports(kind: str | None = None, limit: int = 100) -> list[dict]:
    where = "WHERE kind = :kind" if kind else ""
    rows = await db.fetchall(
        "SELECT id, kind, period_start, period_end, created_at FROM daznode.reports "  # noqa: S608
        f"{where} ORDER BY period_start DESC, kind LIMIT :limit",
        {"kind": kind, "limit": limit},
    )
    return [dict(r) for r in rows]


async def get_report(report_id: int) -> dict | None:
    row = await db.fetchone("SELECT * FROM daznode.reports WHERE id = :id", {"id": report_id})
    if not row:
        return None
    out = dict(row)
    out["data"] = json.loads(out["data"])
    return out


async def has_report(kind: str, start: int) -> bool:
    row = await db.fetchone(
        "SELECT id FROM daznode.reports WHERE kind = :kind AND period_start = :start",
        {"kind": kind, "start": start},
    )
    return row is not None


# -- report inputs ----------------------------------------------------------------------------


async def report_rows(node_pubkey: str, start: int, end: int) -> dict[str, list[dict]]:
    """Everything a report over [start, end) reads, in one transaction (a consistent view)."""
    span = {"pk": node_pubkey, "start": start, "end": end}
    async with transaction() as tx:
        out = {
            "channels": await tx.rows(
                # Open during the period; when Daznode first saw a channel says nothing of
                # when it opened (it may have been installed later), so it is not a filter.
                "SELECT * FROM daznode.channels WHERE closed_at = 0 OR closed_at >= :start",
                span,
            ),
            "forwards": await tx.rows(
                "SELECT ts, chan_in, chan_out, amt_in_msat, amt_out_msat, fee_msat, status "
                "FROM daznode.forwards WHERE node_pubkey = :pk AND ts >= :start AND ts < :end",
                span,
            ),
            "rebalances": await tx.rows(
                "SELECT * FROM daznode.rebalances WHERE ts >= :start AND ts < :end", span
            ),
            "fee_changes": await tx.rows(
                """
                SELECT i.updated_at, i.channel_id, i.before_policy, i.after_policy,
                    m.outcome, m.rolled_back, m.verdict
                FROM daznode.batch_items i
                LEFT JOIN daznode.impact m
                    ON m.batch_id = i.batch_id AND m.change_id = i.change_id
                WHERE i.status = 'APPLIED' AND i.updated_at >= :start AND i.updated_at < :end
                """,
                span,
            ),
            "snapshots": await tx.rows(
                "SELECT * FROM daznode.snapshots WHERE ts >= :start AND ts < :end", span
            ),
            "hourly": await tx.rows(
                "SELECT * FROM daznode.snapshots_hourly WHERE bucket >= :start AND bucket < :end",
                span,
            ),
            "daily": await tx.rows(
                "SELECT * FROM daznode.snapshots_daily WHERE bucket >= :start AND bucket < :end",
                span,
            ),
        }
    return out


async def forwards_between(node_pubkey: str, since: int, until: int, limit: int) -> list[dict]:
    rows = await db.fetchall(
        "SELECT idx, ts, chan_in, chan_out, amt_in_msat, amt_out_msat, fee_msat, status, "
        "fail_reason FROM daznode.forwards WHERE node_pubkey = :pk AND ts >= :since "
        "AND ts < :until ORDER BY ts, idx LIMIT :limit",
        {"pk": node_pubkey, "since": since, "until": until, "limit": limit},
    )
    return [dict(r) for r in rows]


async def daily_series(node_pubkey: str, since: int) -> list[dict]:
    """Fees, volume and forwards per UTC day, and what rebalancing cost that day."""
    rows = await db.fetchall(
        "SELECT (ts / 86400) * 86400 AS day_start, SUM(fee_msat) AS fees_msat, "
        "SUM(amt_out_msat) AS volume_msat, COUNT(*) AS forwards FROM daznode.forwards "
        "WHERE node_pubkey = :pk AND ts >= :since AND status = 'settled' "
        "GROUP BY (ts / 86400) * 86400",
        {"pk": node_pubkey, "since": since},
    )
    costs = await db.fetchall(
        "SELECT (ts / 86400) * 86400 AS day_start, SUM(fee_msat) AS cost FROM daznode.rebalances "
        "WHERE ts >= :since GROUP BY (ts / 86400) * 86400",
        {"since": since},
    )
    cost_by_day = {int(r["day_start"]): int(r["cost"] or 0) for r in costs}
    out = {
        int(r["day_start"]): {
            "day_start": int(r["day_start"]),
            "fees_msat": int(r["fees_msat"] or 0),
            "volume_msat": int(r["volume_msat"] or 0),
            "forwards": int(r["forwards"]),
            "rebalance_cost_msat": 0,
        }
        for r in rows
    }
    for day, cost in cost_by_day.items():
        out.setdefault(
            day,
            {"day_start": day, "fees_msat": 0, "volume_msat": 0, "forwards": 0},
        )["rebalance_cost_msat"] = cost
    return [out[d] for d in sorted(out)]


async def balance_series(since: int) -> list[dict]:
    """The node's total local and remote balance over time (raw snapshots, then hourly)."""
    raw = await db.fetchall(
        "SELECT ts, SUM(local_msat) AS local_msat, SUM(remote_msat) AS remote_msat "
        "FROM daznode.snapshots WHERE ts >= :since GROUP BY ts ORDER BY ts",
        {"since": since},
    )
    hourly = await db.fetchall(
        "SELECT bucket AS ts, SUM(sum_local_msat / samples) AS local_msat, "
        "SUM(capacity_msat - sum_local_msat / samples) AS remote_msat "
        "FROM daznode.snapshots_hourly WHERE bucket >= :since GROUP BY bucket ORDER BY bucket",
        {"since": since},
    )
    merged = {int(r["ts"]): r for r in hourly}
    merged.update({int(r["ts"]): r for r in raw})
    return [
        {
            "ts": ts,
            "local_msat": int(r["local_msat"] or 0),
            "remote_msat": int(r["remote_msat"] or 0),
        }
        for ts, r in sorted(merged.items())
    ]


# -- simulations ------------------------------------------------------------------------------

SIM_RUNS_KEPT = 50  # per kind; older runs are deleted when a new one starts
# Newest first. Runs start within the same second (a cancelled one and the next): one runs
# at a time, so of those the running one is newest, then the one that finished last.
SIM_RUNS_NEWEST_FIRST = (
    "created_at DESC, CASE WHEN finished_at = 0 THEN 1 ELSE 0 END DESC, finished_at DESC, id"
)


async def create_sim_run(run_id: str, kind: str, request: dict, now: int) -> None:
    async with transaction() as tx:
        await tx.run(
            "UPDATE daznode.sim_runs SET status = 'failed', finished_at = :now, "
            "error = 'interrupted: LNbits stopped while it ran' WHERE status = 'running'",
            {"now": now},
        )
        await tx.run(
            "INSERT INTO daznode.sim_runs (id, kind, created_at, status, request) "
            "VALUES (:id, :kind, :now, 'running', :request)",
            {"id": run_id, "kind": kind, "now": now, "request": json.dumps(request)},
        )
        old = await tx.rows(
            "SELECT id FROM daznode.sim_runs WHERE kind = :kind "  # noqa: S608
            f"ORDER BY {SIM_RUNS_NEWEST_FIRST} LIMIT 1000 OFFSET :keep",
            {"kind": kind, "keep": SIM_RUNS_KEPT},
        )
        if old:
            clause, params = bound_list("old", [r["id"] for r in old])
            await tx.run(f"DELETE FROM daznode.sim_runs WHERE id IN ({clause})", params)  # noqa: S608


async def finish_sim_run(
    run_id: str,
    now: int,
    *,
    result: dict | None = None,
    summary: list | None = None,
    error: str | None = None,
) -> None:
    await db.execute(
        "UPDATE daznode.sim_runs SET status = :status, finished_at = :now, result = :result, "
        "summary = :summary, error = :error WHERE id = :id",
        {
            "id": run_id,
            "now": now,
            "status": "failed" if error else "done",
            "result": json.dumps(result) if result is not None else None,
            "summary": json.dumps(summary or []),
            "error": error,
        },
    )


def _decode_sim_run(row: Any, with_result: bool) -> dict:
    out = dict(row)
    out["request"] = json.loads(out["request"])
    out["summary"] = json.loads(out["summary"] or "[]")
    if with_result:
        out["result"] = json.loads(out["result"]) if out["result"] else None
    else:
        out.pop("result", None)
    return out


async def get_sim_runs(kind: str | None = None, limit: int = 50) -> list[dict]:
    where = "WHERE kind = :kind" if kind else ""
    rows = await db.fetchall(
        "SELECT id, kind, created_at, finished_at, status, request, summary, error "  # noqa: S608
        f"FROM daznode.sim_runs {where} ORDER BY {SIM_RUNS_NEWEST_FIRST} LIMIT :limit",
        {"kind": kind, "limit": limit},
    )
    return [_decode_sim_run(r, with_result=False) for r in rows]


async def get_sim_run(run_id: str) -> dict | None:
    row = await db.fetchone("SELECT * FROM daznode.sim_runs WHERE id = :id", {"id": run_id})
    return _decode_sim_run(row, with_result=True) if row else None


async def forward_history(node_pubkey: str, since: int, limit: int = 200_000) -> dict[str, Any]:
    """Settled forwards since `since`: how many, since when, and their median amount."""
    rows = await db.fetchall(
        "SELECT ts, amt_out_msat FROM daznode.forwards WHERE node_pubkey = :pk AND ts >= :since "
        "AND status = 'settled' ORDER BY ts LIMIT :limit",
        {"pk": node_pubkey, "since": since, "limit": limit},
    )
    amounts = sorted(int(r["amt_out_msat"]) for r in rows)
    return {
        "count": len(rows),
        "first_ts": int(rows[0]["ts"]) if rows else 0,
        "median_amount_msat": amounts[len(amounts) // 2] if amounts else 0,
    }


def _own(policy_json: str, level_percent: int | None) -> int:
    """A change's fee as the engine's own: taken out of the price level it was made at."""
    return own_fee(json.loads(policy_json)["fee_rate_ppm"], level_percent or 100)


async def engine_lessons(now: int, window: int, memory: int) -> tuple[set[str], list[dict]]:
    """What measuring our changes taught: the channels with a change applied within the last
    `window` seconds and no verdict yet (price level steps are not measured), and the
    verdicts of the last `memory` seconds with the own fees before and after each change."""
    measuring = {
        r["channel_id"]
        for r in await db.fetchall(
            """
            SELECT i.channel_id FROM daznode.batch_items i
            LEFT JOIN daznode.impact m ON m.batch_id = i.batch_id AND m.change_id = i.change_id
            LEFT JOIN daznode.changes c ON c.id = i.change_id
            WHERE i.status = 'APPLIED' AND i.updated_at > :since AND m.batch_id IS NULL
            AND (c.origin IS NULL OR c.origin <> :level)
            """,
            {"since": now - window, "level": LEVEL_TRIAL_ORIGIN},
        )
    }
    rows = await db.fetchall(
        """
        SELECT m.channel_id, m.evaluated_at, m.outcome, m.verdict, i.before_policy,
               i.after_policy, c.level_percent
        FROM daznode.impact m
        JOIN daznode.batch_items i ON i.batch_id = m.batch_id AND i.change_id = m.change_id
        LEFT JOIN daznode.changes c ON c.id = m.change_id
        WHERE m.evaluated_at >= :since
        """,
        {"since": now - memory},
    )
    verdicts = [
        {
            "channel_id": r["channel_id"],
            "evaluated_at": int(r["evaluated_at"]),
            "outcome": r["outcome"],
            "adjusted_change": json.loads(r["verdict"]).get("adjusted_change"),
            "fee_before_ppm": _own(r["before_policy"], r["level_percent"]),
            "fee_after_ppm": _own(r["after_policy"], r["level_percent"]),
        }
        for r in rows
    ]
    return measuring, verdicts


async def doc_versions(doc_ids: Sequence[str]) -> tuple[tuple[str, int], ...]:
    """When each settings document last changed (and how many this process wrote, for two
    writes within one second): part of a cache key."""
    clause, params = bound_list("doc", doc_ids)
    rows = await db.fetchall(
        f"SELECT id, updated_at FROM daznode.settings WHERE id IN ({clause}) ORDER BY id",  # noqa: S608
        params,
    )
    return (*((r["id"], int(r["updated_at"])) for r in rows), ("local writes", _doc_writes[0]))
