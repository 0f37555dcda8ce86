"""The graph and scoring service on the real app: the demo node lives in the mainnet snapshot,
so the monitor's start-up sync stores and scores the real graph (17,324 nodes)."""

from __future__ import annotations

import gzip
import json

from tests.support.bootstrap import wait_for_graph

API = "/daznode/api/v1"
ACINQ = "03864ef025fde8fb587d989186ce6a4a186895ee44a926bfc370e2c366597a3f8f"
ALPHA_ALIAS = "1ML.com node ALPHA"  # the top betweenness node of the snapshot
UNKNOWN = "02" + "ab" * 32


async def test_the_start_up_sync_stores_and_scores_the_real_graph(client, admin):
    status = (await client.get(f"{API}/graph/status", headers=admin.key_headers())).json()
    assert status["scored_version"] >= 1 and status["source"].startswith("node")
    assert status["nodes"] >= 17_324 and status["channels"] >= 50_808
    assert status["backend"]
    stats = status["stats"]
    assert stats["nodes"] == status["nodes"] and stats["largest_component_nodes"] >= 15_542
    assert "exact" in stats["path_method"] or "sampled" in stats["path_method"]


async def test_node_score_lookup(client, admin, alice):
    h = alice.key_headers()  # any wallet user may look nodes up
    r = await client.get(f"{API}/scores/node/{ACINQ}", headers=h)
    assert r.status_code == 200, r.text
    card = r.json()
    assert card["alias"] == "ACINQ" and card["rank"] <= card["of"] // 100  # top 1 %
    assert set(card["components"]) == {
        "centrality",
        "closeness",
        "connectivity",
        "capacity",
        "fees",
        "reliability",
    }
    assert all(0 <= v <= 100 for v in card["components"].values())
    assert card["betweenness"] > 0.1 and card["reasons"]

    forced = await client.get(
        f"{API}/scores/node/{ACINQ.upper()}?force_recalculate=true", headers=h
    )
    assert forced.status_code == 200, forced.text
    assert forced.json()["composite"] == card["composite"]  # same graph, same score
    assert forced.json()["computed_at"] >= card["computed_at"]

    r = await client.get(f"{API}/scores/node/{UNKNOWN}", headers=h)
    assert r.status_code == 404 and UNKNOWN in r.json()["detail"]
    for bad in ("nothex", "04" + "ab" * 32, "02" + "ab" * 31, "02" + "zz" * 32):
        r = await client.get(f"{API}/scores/node/{bad}", headers=h)
        assert r.status_code == 400 and "66 hex" in r.json()["detail"], bad
    assert (await client.get(f"{API}/scores/node/{ACINQ}")).status_code == 401


async def test_batch_scores_and_its_limit(client, admin):
    h = admin.key_headers()
    top = (await client.get(f"{API}/scores/rankings?size=3", headers=h)).json()["data"]
    ids = [n["pubkey"] for n in top]
    r = await client.post(f"{API}/scores/batch", headers=h, json={"node_ids": [*ids, UNKNOWN]})
    assert r.status_code == 200, r.text
    assert [n["pubkey"] for n in r.json()] == ids
    too_many = [("02" + f"{i:064x}") for i in range(101)]
    r = await client.post(f"{API}/scores/batch", headers=h, json={"node_ids": too_many})
    assert r.status_code == 422 and "100" in r.json()["detail"]
    r = await client.post(f"{API}/scores/batch", headers=h, json={"node_ids": [UNKNOWN]})
    assert r.status_code == 404
    r = await client.post(f"{API}/scores/batch", headers=h, json={"node_ids": ["bad"]})
    assert r.status_code == 400


async def test_rankings_page_filter_and_sort(client, admin):
    h = admin.key_headers()
    r = await client.get(f"{API}/scores/rankings?page=2&size=10", headers=h)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["page"] == 2 and page["size"] == 10 and len(page["data"]) == 10
    assert page["pages"] == (page["total"] + 9) // 10 and page["total"] >= 17_324
    assert [n["rank"] for n in page["data"]] == list(range(11, 21))

    by_betweenness = (
        await client.get(f"{API}/scores/rankings?sort=betweenness&size=5", headers=h)
    ).json()["data"]
    assert by_betweenness[0]["alias"] == ALPHA_ALIAS
    values = [n["betweenness"] for n in by_betweenness]
    assert values == sorted(values, reverse=True)

    big = (
        await client.get(
            f"{API}/scores/rankings?min_channels=500&min_capacity_sat=100000000&size=200",
            headers=h,
        )
    ).json()
    assert big["total"] and all(
        n["channels"] >= 500 and n["capacity_sat"] >= 100_000_000 for n in big["data"]
    )
    found = (await client.get(f"{API}/scores/rankings?search=acin", headers=h)).json()["data"]
    assert ACINQ in [n["pubkey"] for n in found]
    literal = (await client.get(f"{API}/scores/rankings?search=%25", headers=h)).json()
    assert all("%" in n["alias"] for n in literal["data"])  # a wildcard is matched literally

    for bad in ("sort=alias; DROP", "order=sideways", "size=0", "page=0"):
        r = await client.get(f"{API}/scores/rankings?{bad}", headers=h)
        assert r.status_code == 400, bad


async def test_peer_suggestions_for_any_node(client, admin):
    h = admin.key_headers()
    node = (await client.get(f"{API}/node", headers=h)).json()
    channels = (await client.get(f"{API}/channels", headers=h)).json()
    peers = {c["peer_id"] for c in channels}
    r = await client.get(f"{API}/recommendations/{node['pubkey']}", headers=h)
    assert r.status_code == 200, r.text
    got = r.json()["data"]
    assert got and not peers & {s["pubkey"] for s in got}
    assert all(s["reach_gain"] >= 0 and s["reasons"] for s in got)
    scores = [s["score"] for s in got]
    assert scores == sorted(scores, reverse=True)
    strict = (
        await client.get(f"{API}/recommendations/{ACINQ}?min_confidence=0.9", headers=h)
    ).json()["data"]
    assert all(s["confidence"] >= 0.9 for s in strict)
    assert (await client.get(f"{API}/recommendations/{UNKNOWN}", headers=h)).status_code == 404
    assert (await client.get(f"{API}/recommendations/xyz", headers=h)).status_code == 400


async def test_neighbourhood_path_and_search(client, admin):
    h = admin.key_headers()
    hood = (await client.get(f"{API}/graph/neighbourhood/{ACINQ}?max_nodes=50", headers=h)).json()
    assert hood["center"] == ACINQ and hood["nodes"][0] == ACINQ and len(hood["nodes"]) == 50
    assert hood["truncated"] and hood["labels"][ACINQ] == "ACINQ"
    node = (await client.get(f"{API}/node", headers=h)).json()
    path = (
        await client.get(f"{API}/graph/path?from={node['pubkey']}&to={ACINQ}", headers=h)
    ).json()
    assert path["path"][0] == node["pubkey"] and path["path"][-1] == ACINQ
    assert path["hops"] == len(path["path"]) - 1
    found = (await client.get(f"{API}/nodes/search?q=ACINQ", headers=h)).json()
    assert found[0]["pubkey"] == ACINQ


async def test_channel_score_through_the_scoring_service(client, admin):
    h = admin.key_headers()
    channel = (await client.get(f"{API}/channels", headers=h)).json()[0]
    r = await client.get(f"{API}/scores/channel/{channel['channel_id']}", headers=h)
    assert r.status_code == 200, r.text
    rec = r.json()
    assert rec["decision"] and 0 <= rec["confidence"] <= 1 and rec["reasons"]
    [centrality] = [x for x in rec["heuristics"] if x["name"] == "centrality"]
    assert centrality["facts"]["method"] == "betweenness"  # the graph feeds the engine now
    assert (await client.get(f"{API}/scores/channel/1x1x1", headers=h)).status_code == 404


async def test_recalculate_and_upload_only_by_admins_one_job_at_a_time(client, admin, alice):
    h = admin.key_headers(admin=True)
    before = (await client.get(f"{API}/graph/status", headers=h)).json()
    assert (
        await client.post(f"{API}/scores/recalculate", headers=alice.key_headers(admin=True))
    ).status_code == 403

    # Bad files are refused with a reason and change nothing.
    for name, data in (
        ("graph.json", b'{"nodes": [], "edges": [{"channel_id": '),
        ("graph.json.gz", gzip.compress(b'{"nodes": []}')[:-8]),
        ("graph.json", json.dumps({"nodes": [{"pub_key": "nope"}], "edges": []}).encode()),
        ("notes.txt", b"hello"),
    ):
        r = await client.post(f"{API}/graph/import", headers=h, files={"file": (name, data)})
        assert r.status_code == 400, (name, r.text)
        assert r.json()["detail"].startswith(name)
    after_bad = (await client.get(f"{API}/graph/status", headers=h)).json()
    assert after_bad["version"] == before["version"]

    r = await client.post(f"{API}/scores/recalculate", headers=h)
    assert r.status_code == 202, r.text
    busy = await client.post(f"{API}/scores/recalculate", headers=h)
    assert busy.status_code == 409 and "already running" in busy.json()["detail"]
    done = await wait_for_graph(client, admin, before["scored_version"] + 1)
    assert done["job"]["state"] == "idle" and done["nodes"] == before["nodes"]

    # An upload merges into the stored graph (entries it lacks stay until 30 days unseen).
    upload = {
        "channels": [
            {
                "source": ACINQ,
                "destination": UNKNOWN,
                "short_channel_id": "900000x1x0",
                "direction": 0,
                "public": True,
                "amount_msat": 5_000_000_000,
                "message_flags": 1,
                "channel_flags": 0,
                "active": True,
                "last_update": 1_770_000_000,
                "base_fee_millisatoshi": 1000,
                "fee_per_millionth": 100,
                "delay": 144,
                "htlc_minimum_msat": 1,
                "htlc_maximum_msat": 4_950_000_000,
                "features": "",
            }
        ]
    }
    r = await client.post(
        f"{API}/graph/import",
        headers=h,
        files={"file": ("listchannels.json", json.dumps(upload).encode())},
    )
    assert r.status_code == 202, r.text
    done = await wait_for_graph(client, admin, before["scored_version"] + 2)
    assert done["nodes"] == before["nodes"] + 1 and done["source"] == "upload listchannels.json"
    r = await client.get(f"{API}/scores/node/{UNKNOWN}", headers=h)
    assert r.status_code == 200 and r.json()["channels"] == 1
