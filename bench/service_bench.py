"""The graph service on a live LNbits (SQLite, FakeWallet, the demo node in the mainnet
snapshot): a sync stores 17k nodes / 50k channels and scores them; then node score
lookups are timed over HTTP, the API is held at a steady request rate (open loop) endpoint
by endpoint and mixed, and the memory of LNbits and the analytics worker is read.

`run() -> list[str]` returns markdown for docs/BENCHMARKS.md (bench/run.py calls it).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.bootstrap import create_admin  # noqa: E402
from tests.support.live import LiveLnbits  # noqa: E402

API = "/daznode/api/v1"
LOOKUPS = 500
RATE = 20.0  # requests per second, per phase
PHASE_SECONDS = 30.0  # each endpoint alone
MIXED_SECONDS = 60.0  # the four round-robin at RATE in total
MAX_CONNECTIONS = 100  # client pool: the only bound on requests in flight
REQUEST_TIMEOUT = 30.0  # from the scheduled send: a request still unanswered is an error
RATE_LIMIT = 100_000  # LNbits' per-IP limit a minute; its default, 200, 429s most of the load
SORTS = ("composite", "centrality", "closeness", "fees", "channels", "capacity_sat")

Request = tuple[str, str, dict[str, str | int]]  # endpoint label, path, query parameters


@dataclass
class Phase:
    """Results of one open-loop phase. Latency runs from the scheduled send time, so time
    spent queuing (client pool or server) is counted, never skipped."""

    latency: dict[str, list[float]] = field(default_factory=dict)  # every request, errors too
    answered: dict[str, list[float]] = field(default_factory=dict)  # loop time of each 2xx
    errors: dict[str, Counter[str]] = field(default_factory=dict)
    peak_outstanding: int = 0  # sent and not answered, queued in the client pool included
    max_send_lag: float = 0.0  # how late the harness started a request: should stay ~0
    settle_seconds: float = 0.0  # waited beforehand for LNbits to go idle
    unloaded: float | None = None  # median of requests one at a time before the phase


async def _open_loop(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    next_request: Callable[[int], Request],
    seconds: float,
) -> Phase:
    """Send RATE requests a second for `seconds` on a fixed schedule, whatever the answers."""
    out, in_flight = Phase(), 0
    loop = asyncio.get_running_loop()

    async def one(label: str, path: str, params: dict[str, str | int], due: float) -> None:
        nonlocal in_flight
        in_flight += 1
        out.peak_outstanding = max(out.peak_outstanding, in_flight)
        out.max_send_lag = max(out.max_send_lag, loop.time() - due)
        errors = out.errors.setdefault(label, Counter())
        answered = out.answered.setdefault(label, [])
        try:
            async with asyncio.timeout_at(due + REQUEST_TIMEOUT):
                r = await client.get(path, params=params, headers=headers)
            if r.is_success:
                answered.append(loop.time())
            else:
                errors[str(r.status_code)] += 1
        except TimeoutError:
            errors["timeout"] += 1
        except httpx.HTTPError as exc:
            errors[type(exc).__name__] += 1
        finally:
            in_flight -= 1
        out.latency.setdefault(label, []).append(min(loop.time() - due, REQUEST_TIMEOUT))

    start, tasks = loop.time(), []
    for i in range(int(seconds * RATE)):
        due = start + i / RATE
        await asyncio.sleep(max(0.0, due - loop.time()))
        tasks.append(asyncio.create_task(one(*next_request(i), due)))
    await asyncio.gather(*tasks)
    return out


def _cpu_seconds(pgid: int) -> float:
    """CPU time used so far by a process group (LNbits serves from a child process), /proc."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


async def _settle(pgid: int, limit: float = 300) -> float:
    """Wait until LNbits is nearly idle (< 20% of a core over a second): work left from the
    previous phase, such as requests the client gave up on, must not spill over."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        before = _cpu_seconds(pgid)
        await asyncio.sleep(1)
        if _cpu_seconds(pgid) - before < 0.2:
            break
    return time.perf_counter() - started


async def _one_at_a_time(
    client: httpx.AsyncClient, headers: dict[str, str], make: Callable[[int], Request]
) -> float:
    """Median latency of 10 requests sent one after the other: the unloaded service time."""
    times = []
    for i in range(10):
        _, path, params = make(i)
        t = time.perf_counter()
        await client.get(path, params=params, headers=headers)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _requests(pubkeys: list[str]) -> list[Callable[[int], Request]]:
    """The four request makers: LNbits' wallet (the reference), then the extension's three."""
    rng = random.Random(2)

    def fixed(label: str, path: str) -> Callable[[int], Request]:
        return lambda _: (label, path, {})

    def peers(_: int) -> Request:
        return "recommendations/{node_id}", f"{API}/recommendations/{rng.choice(pubkeys)}", {}

    def rankings(_: int) -> Request:
        params: dict[str, str | int] = {
            "page": rng.randint(1, 40),
            "size": rng.choice((10, 50, 200)),
            "sort": rng.choice(SORTS),
            "order": rng.choice(("desc", "asc")),
            "min_capacity_sat": rng.choice((0, 0, 1_000_000, 50_000_000)),
            "min_channels": rng.choice((0, 0, 5, 50)),
            "search": rng.choice(("", "", "", "lnd", "03a")),
        }
        return "scores/rankings (varied)", f"{API}/scores/rankings", params

    return [
        fixed("LNbits /api/v1/wallet (reference)", "/api/v1/wallet"),
        fixed("recommendations (own node)", f"{API}/recommendations"),
        peers,
        rankings,
    ]


async def _load(
    url: str, pgid: int, headers: dict[str, str]
) -> tuple[list[tuple[str, Phase]], int]:
    """Each endpoint alone, then all four interleaved, all in this LNbits run."""
    limits = httpx.Limits(
        max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
    )
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT, limits=limits) as client:
        pubkeys: set[str] = set()
        for query in ("sort=channels", "sort=composite&page=20", "sort=capacity_sat&order=asc"):
            r = await client.get(f"{API}/scores/rankings?size=200&{query}", headers=headers)
            r.raise_for_status()
            pubkeys.update(n["pubkey"] for n in r.json()["data"])
        return await _phases(client, pgid, headers, sorted(pubkeys)), len(pubkeys)


async def _phases(
    client: httpx.AsyncClient, pgid: int, headers: dict[str, str], pubkeys: list[str]
) -> list[tuple[str, Phase]]:
    makers = _requests(pubkeys)
    phases = []
    for make in makers:
        settled = await _settle(pgid)
        unloaded = await _one_at_a_time(client, headers, make)
        phase = await _open_loop(client, headers, make, PHASE_SECONDS)
        phase.settle_seconds, phase.unloaded = settled, unloaded
        phases.append(("alone", phase))
    settled = await _settle(pgid)
    mix = await _open_loop(client, headers, lambda i: makers[i % 4](i), MIXED_SECONDS)
    mix.settle_seconds = settled
    return [*phases, ("mixed", mix)]


def _pct(values: list[float], q: int) -> str:
    """Nearest-rank percentile."""
    v = sorted(values)[max(0, math.ceil(len(values) * q / 100) - 1)]
    return f"{v * 1000:,.1f} ms" if v < REQUEST_TIMEOUT else f"> {REQUEST_TIMEOUT:.0f} s"


def _load_lines(phases: list[tuple[str, Phase]], distinct_nodes: int) -> list[str]:
    lines = [
        "### API latency under load",
        "",
        f"Open loop: requests leave on a fixed schedule of {RATE:.0f} req/s whatever the answers "
        f"(an asyncio task every {1000 / RATE:.0f} ms; concurrency unbounded but for the "
        f"client's {MAX_CONNECTIONS} connections, a request waiting for one still counts), "
        f"{PHASE_SECONDS:.0f} s per endpoint alone, then {MIXED_SECONDS:.0f} s with the four "
        f"interleaved round-robin ({RATE:.0f} req/s in total). Latency counts from the "
        "scheduled send, so queuing shows; percentiles cover every request, errors included. "
        f"Errors: every non-2xx answer, transport error and timeout ({REQUEST_TIMEOUT:.0f} s "
        "from the scheduled send). Achieved rate: 2xx answers a second. Keys: the wallet's "
        f"invoice key; LNbits' per-IP rate limit raised to {RATE_LIMIT:,}/minute (at its "
        "default, 200/minute, two requests in three would be 429s). Peer suggestions for "
        f"{distinct_nodes} node ids from the rankings (cold cache at first); rankings with "
        "random page, size, sort, order, capacity/channel floors and search. Before each "
        "phase, LNbits must go idle (under 20% of a core over a second); then 10 requests one "
        "at a time give the unloaded latency.",
        "",
        "Target: p99 of the extension's endpoints next to LNbits' own wallet endpoint.",
        "",
        "| Phase | Endpoint | Unloaded p50 | Requests | Achieved / target rate | p50 | p99 "
        "| Errors | Peak outstanding | Harness lag (max) | Waited for idle |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    order = [label for name, p in phases if name == "alone" for label in p.latency]
    for phase_label, phase in phases:
        total = sum(len(v) for v in phase.latency.values())
        for label in sorted(phase.latency, key=order.index):
            times, answered = phase.latency[label], phase.answered[label]
            errors = phase.errors.get(label, Counter())
            unloaded = "-" if phase.unloaded is None else f"{phase.unloaded * 1000:,.1f} ms"
            err = ", ".join(f"{n} x {code}" for code, n in errors.most_common()) or "0"
            # 2xx answers a second between the first and the last: the rate the server kept up
            span = answered[-1] - answered[0] if len(answered) > 1 else 0.0
            achieved = (len(answered) - 1) / span if span else 0.0
            lines.append(
                f"| {phase_label} | {label} | {unloaded} | {len(times)} "
                f"| {achieved:.1f} / {RATE * len(times) / total:.1f} req/s "
                f"| {_pct(times, 50)} | {_pct(times, 99)} | {err} | {phase.peak_outstanding} "
                f"| {phase.max_send_lag * 1000:,.0f} ms | {phase.settle_seconds:.1f} s |"
            )
    return [*lines, ""]


def _group_peak_rss_mb(pid: int) -> float:
    """Peak RSS (VmHWM) of LNbits' process and its children, from /proc."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        pids = {fields.get("Pid", "").strip(), fields.get("PPid", "").strip()}
        if str(pid) in pids and "VmHWM" in fields:
            total += int(fields["VmHWM"].split()[0])
    return total / 1024


async def _measure(lnbits: LiveLnbits) -> dict:
    async with httpx.AsyncClient(base_url=lnbits.url, timeout=120) as client:
        admin = await create_admin(client)
        h = admin.key_headers()
        for _ in range(240):  # 503 until the monitor has connected the node
            r = await client.post(f"{API}/graph/sync", headers=admin.key_headers(admin=True))
            if r.status_code in (202, 409):
                break
            await asyncio.sleep(0.25)
        started = time.perf_counter()
        status = {}
        while time.perf_counter() - started < 900:
            status = (await client.get(f"{API}/graph/status", headers=h)).json()
            if status["scored_version"] and status["job"]["state"] == "idle":
                break
            if status["job"]["state"] == "failed":
                raise RuntimeError(status["job"]["error"])
            await asyncio.sleep(0.5)
        job_seconds = status["job"]["finished_at"] - status["job"]["started_at"]
        page = await client.get(f"{API}/scores/rankings?size=200&sort=channels", headers=h)
        pubkeys = [n["pubkey"] for n in page.json()["data"]]
        rng = random.Random(1)
        times = []
        for _ in range(LOOKUPS):
            t = time.perf_counter()
            r = await client.get(f"{API}/scores/node/{rng.choice(pubkeys)}", headers=h)
            times.append(time.perf_counter() - t)
            r.raise_for_status()
        times.sort()
        load, distinct_nodes = await _load(lnbits.url, lnbits.proc.pid, h)
        return {
            "load": load,
            "distinct_nodes": distinct_nodes,
            "status": status,
            "job_seconds": job_seconds,
            "p50": statistics.median(times),
            "p95": times[int(0.95 * len(times)) - 1],
        }


def run() -> list[str]:
    with tempfile.TemporaryDirectory(prefix="daznode-bench-", ignore_cleanup_errors=True) as tmp:
        lnbits = LiveLnbits(
            Path(tmp),
            extra_env={
                "LNBITS_BACKEND_WALLET_CLASS": "FakeWallet",
                "LNBITS_RATE_LIMIT_NO": str(RATE_LIMIT),
            },
        ).start()
        try:
            m = asyncio.run(_measure(lnbits))
            lnbits_peak = _group_peak_rss_mb(lnbits.proc.pid)
        finally:
            lnbits.stop()
    s = m["status"]
    secs = s["seconds"]
    worker = s["worker_peak_rss_mb"] or 0.0
    return [
        "## Graph service on a live LNbits (SQLite)",
        "",
        f"A sync of the demo node's graph, the mainnet snapshot ({s['nodes']:,} nodes, "
        f"{s['channels']:,} channels), analytics by {s['backend']}.",
        "",
        "| What | Result | Target |",
        "|---|---:|---|",
        f"| Store the describegraph into the database (SQLite) | "
        f"{secs['store_in_database']:.1f} s | < 60 s |",
        f"| Whole job: fetch, store, analytics worker, scores | {m['job_seconds']} s | |",
        f"| Node score lookup over HTTP, p50 / p95 ({LOOKUPS} requests) | "
        f"{m['p50'] * 1000:.1f} / {m['p95'] * 1000:.1f} ms | p95 < 50 ms |",
        f"| Peak memory: LNbits process(es) + analytics worker | "
        f"{lnbits_peak:,.0f} + {worker:,.0f} = {lnbits_peak + worker:,.0f} MB | < 1,536 MB |",
        "",
        *_load_lines(m["load"], m["distinct_nodes"]),
    ]


if __name__ == "__main__":
    print("\n".join(run()))
