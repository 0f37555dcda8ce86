"""The graph service on a live LNbits (SQLite, FakeWallet, the demo node in the mainnet
snapshot): a sync stores 17k nodes / 50k channels and scores them; then node score
lookups are timed over HTTP and the memory of LNbits and the analytics worker is read.

`run() -> list[str]` returns markdown for docs/BENCHMARKS.md (bench/run.py calls it).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.bootstrap import create_admin  # noqa: E402
from tests.support.live import LiveLnbits  # noqa: E402

API = "/daznode/api/v1"
LOOKUPS = 500


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
        return {
            "status": status,
            "job_seconds": job_seconds,
            "p50": statistics.median(times),
            "p95": times[int(0.95 * len(times)) - 1],
        }


def run() -> list[str]:
    with tempfile.TemporaryDirectory(prefix="daznode-bench-") as tmp:
        lnbits = LiveLnbits(
            Path(tmp), extra_env={"LNBITS_BACKEND_WALLET_CLASS": "FakeWallet"}
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
    ]


if __name__ == "__main__":
    print("\n".join(run()))
