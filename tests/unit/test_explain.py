"""Daznode's built-in explainer and the prompt for a language model (engine/explain.py).

Recommendations come from the real engine on hand-built channels (the numbers in the
comments are the engine's, as in test_decide.py), so each test checks that the text carries
the numbers of the recommendation it explains.
"""

from __future__ import annotations

import json
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.decide import Decision, evaluate_channel, evaluate_node
from engine.explain import (
    BUILT_IN,
    PARTS,
    SYSTEM_PROMPT,
    Explanation,
    chat_messages,
    describe_heuristic,
    explain_node,
    explain_recommendation,
    node_explain_facts,
    recommendation_facts,
)
from engine.heuristics import HeuristicResult
from engine.metrics import ChannelMetrics, FlowWindow, NetworkContext, PeerInfo
from engine.node_score import NodeScore
from engine.node_source import RoutingPolicy
from engine.peer_suggest import PeerSuggestion
from engine.profiles import BUILTIN
from engine.rules import parse_rules

BALANCED = BUILTIN["balanced"]
P1, P2, P3 = ("02" + c * 64 for c in "123")


def policy(fee_ppm: int) -> RoutingPolicy:
    return RoutingPolicy(
        base_fee_msat=1000,
        fee_rate_ppm=fee_ppm,
        cltv_delta=80,
        htlc_min_msat=1000,
        htlc_max_msat=10**12,
        inbound_base_fee_msat=0,
        inbound_fee_rate_ppm=0,
    )


def chan(
    *,
    local_sat: int,
    fee_ppm: int | None,
    capacity_sat: int = 1_000_000,
    peer_fee_ppm: int = 100,
    peer_id: str = P1,
    channel_id: str = "800000x1x0",
    windows: tuple[FlowWindow, ...] = (),
    age_days: float = 30.0,
    **kw,
) -> ChannelMetrics:
    return ChannelMetrics(
        channel_id=channel_id,
        peer_id=peer_id,
        peer_alias=f"alias-{peer_id[2:6]}",
        capacity_sat=capacity_sat,
        local_msat=local_sat * 1000,
        remote_msat=(capacity_sat - local_sat) * 1000,
        active=kw.pop("active", True),
        age_days=age_days,
        local_policy=None if fee_ppm is None else policy(fee_ppm),
        remote_policy=policy(peer_fee_ppm),
        windows={w.days: w for w in windows},
        **kw,
    )


def network(competitors: dict[str, int], **kw) -> NetworkContext:
    peers = {
        pid: PeerInfo(
            channels=50, capacity_sat=500_000_000, competitor_fee_ppm=fee, competitor_count=20
        )
        for pid, fee in competitors.items()
    }
    kw.setdefault("median_fee_ppm", 100)
    return NetworkContext(graph_available=True, peers=peers, **kw)


def text(e: Explanation) -> str:
    return "\n".join([e.title, *e.paragraphs])


# -- the five decisions -------------------------------------------------------------------


def no_action():
    week = FlowWindow(
        7,
        forwards_out=10,
        forwards_in=10,
        volume_out_msat=100_000_000,
        volume_in_msat=100_000_000,
    )
    month = FlowWindow(30, forwards_out=40, forwards_in=40, volume_out_msat=400_000_000)
    ch = chan(
        capacity_sat=2_000_000,
        local_sat=1_000_000,
        fee_ppm=480,
        windows=(week, month),
        age_days=100,
    )
    return evaluate_channel(ch, network({P1: 500}), BALANCED)


def test_no_action_tells_the_fee_the_target_and_why_it_stays():
    rec = no_action()
    assert rec.decision is Decision.NO_ACTION
    assert (rec.suggested.fee_ppm, rec.suggested.target_fee_ppm, rec.confidence) == (480, 500, 1.0)
    e = explain_recommendation(rec, BALANCED)
    t = text(e)
    assert e.title == "Leave as is: channel 800000x1x0 (alias-1111)"
    assert (e.source, e.note) == (BUILT_IN, "")
    assert "Leave channel 800000x1x0 (alias-1111) as it is at 480 ppm" in t
    assert "below the 500 ppm other channels into this peer charge" in t
    assert "fee stays at 480 ppm (target 500 ppm)" in t
    assert "4.2 % away from its target of 500 ppm" in t  # 20 / 480
    assert "Confidence: 100 % (high)" in t
    assert "100 days of history" in t and "80 forwards in 30 days" in t
    # 100,000 sat out this week x 480 ppm = 48 sat
    assert "100,000 sat the current fee earns 48 sat a week" in t
    # what would change it: the profile's deadband
    assert "drifts away from 480 ppm by more than 10 %" in t
    # the competitiveness score drove it, with its facts
    comp = next(h for h in rec.heuristics if h.name == "competitiveness")
    assert f"competitiveness {comp.score:g}/100 (our fee 480 ppm" in t
    assert f"overall {rec.composite:g}/100" in t or f"{rec.composite:g}/100 overall" in t
    assert len(e.paragraphs) == 5


DEPLETED_WEEK = FlowWindow(7, forwards_out=2, volume_out_msat=20_000_000, failed_out=5)
DEPLETED_MONTH = FlowWindow(30, forwards_out=59, volume_out_msat=590_000_000, fees_msat=118_000)


def test_raise_tells_the_step_the_target_and_the_values():
    ch = chan(
        local_sat=50_000, fee_ppm=200, peer_fee_ppm=50, windows=(DEPLETED_WEEK, DEPLETED_MONTH)
    )
    rec = evaluate_channel(ch, network({P1: 300}), BALANCED)
    # as in test_decide: fast raise 200 -> 400 towards 1055, inbound -100, htlc max 31.25k sat
    assert rec.decision is Decision.INCREASE_FEES
    assert (rec.suggested.fee_ppm, rec.suggested.target_fee_ppm) == (400, 1055)
    t = text(explain_recommendation(rec))
    assert "Raise the fee to 400 ppm: channel 800000x1x0" in t
    assert "from 200 ppm to 400 ppm" in t
    assert "5.0 % of its balance is on our side (the aim is 50 %)" in t
    assert "only 29 % of the payments sent out" in t.lower()  # 2 of 7 attempts
    assert "depleted and failing forwards for lack of balance: fast raise" in t
    assert "fee 400 ppm (target 1,055 ppm)" in t
    assert "inbound fee -100 ppm" in t
    assert "largest payment announced 31,250 sat" in t
    # 20,000 sat out this week: 8 sat at 400 ppm instead of 4 at 200 ppm
    assert "would earn 8 sat a week instead of 4 sat" in t
    # the refill that would also pay (the raise won): 150,000 sat within 242 ppm (36 sat),
    # estimated 150 ppm = 150,000 x 150 / 1e6 = 22.5 -> 22 sat, earning 45 sat
    assert "A refill would also pay: 150,000 sat" in t and "242 ppm (36 sat)" in t
    assert "150 ppm, about 22 sat" in t and "should earn 45 sat" in t
    assert f"Confidence: {rec.confidence:.0%}".replace("%", " %") in t
    assert "The target of 1,055 ppm is 5.3 times the current fee" in t
    assert "The raises stop at the target of 1,055 ppm" in t
    assert "(now 300 ppm)" in t


def test_lower_tells_the_step_and_the_idle_liquidity():
    idle = FlowWindow(7, forwards_in=3, volume_in_msat=30_000_000)
    rec = evaluate_channel(
        chan(local_sat=950_000, fee_ppm=1000, windows=(idle,)), network({P1: 200}), BALANCED
    )
    # 1000 -> 850 (one step of 15 %) towards 57 ppm
    assert rec.decision is Decision.DECREASE_FEES
    assert (rec.suggested.fee_ppm, rec.suggested.target_fee_ppm) == (850, 57)
    e = explain_recommendation(rec)
    t = text(e)
    assert e.title == "Lower the fee to 850 ppm: channel 800000x1x0 (alias-1111)"
    assert "from 1,000 ppm to 850 ppm" in t
    assert "95 % of its balance is on our side" in t
    assert "3 forwards passed through it this week, none of them leaving" in t
    assert "above the 200 ppm other channels into this peer charge" in t
    assert "no outbound forwards this week while liquidity is idle" in t
    assert "Nothing left through this channel this week" in t
    assert "The cuts stop at the target of 57 ppm" in t
    assert "largest payment announced 990,000 sat" in t


def rebalance_case():
    demand = FlowWindow(7, forwards_out=21, volume_out_msat=210_000_000, volume_in_msat=110_000_000)
    month = FlowWindow(
        30,
        forwards_out=100,
        volume_out_msat=1_000_000_000,
        volume_in_msat=500_000_000,
        fees_msat=700_000,
    )
    x = chan(
        capacity_sat=2_000_000,
        local_sat=100_000,
        fee_ppm=700,
        peer_fee_ppm=20,
        windows=(demand, month),
    )
    idle = (FlowWindow(7), FlowWindow(30))
    source = chan(
        capacity_sat=3_000_000,
        local_sat=2_700_000,
        fee_ppm=100,
        peer_id=P2,
        channel_id="700000x2x0",
        windows=idle,
    )
    recs = evaluate_node([x, source], network({P1: 200, P2: 200}), BALANCED)
    return next(r for r in recs if r.channel_id == x.channel_id)


def test_rebalance_tells_amount_source_budget_cost_and_earnings():
    rec = rebalance_case()
    assert rec.decision is Decision.REBALANCE
    plan = rec.suggested.rebalance
    # as in test_decide: the fee stays at 700 (target 714); amount 810,000 sat (what 27M msat a
    # day sells in 30 days), valued at 205 ppm: earns 166 sat; budget int(205 x 0.8) = 164 ppm
    # = 810,000 x 164 / 1e6 = 132.8 -> 132 sat; cost 20 + 100 = 120
    assert (plan.amount_sat, plan.max_fee_ppm, plan.max_cost_sat) == (810_000, 164, 132)
    assert (plan.estimated_cost_ppm, plan.expected_earnings_sat) == (120, 166)
    assert plan.source_channel_id == "700000x2x0"
    e = explain_recommendation(rec, BALANCED)
    t = text(e)
    assert e.title == "Refill 810,000 sat: channel 800000x1x0 (alias-1111)"
    assert "Refill: 810,000 sat from channel 700000x2x0, paying at most 164 ppm (132 sat)" in t
    # 810,000 x 120 / 1e6 = 97.2 -> 97 sat
    assert "estimated at 120 ppm, about 97 sat" in t
    assert "should earn 166 sat over 30 days" in t
    assert "1.4 times its estimated cost" in t  # 164 / 120
    assert "routing back costs 164 ppm or more (estimated 120 ppm now)" in t
    assert "back above 15 % of the capacity" in t


def idle_big(age_days: float = 200) -> ChannelMetrics:
    month = FlowWindow(30, forwards_out=1, volume_out_msat=1_000_000, fees_msat=1_000)
    return chan(
        capacity_sat=5_000_000,
        local_sat=4_500_000,
        fee_ppm=50,  # half what the competitors charge: no cut left to try before closing
        age_days=age_days,
        windows=(month,),
    )


def test_close_tells_cost_freed_capital_gain_and_the_break_even():
    rec = evaluate_channel(idle_big(), network({P1: 100}, onchain_feerate_sat_vb=10), BALANCED)
    assert rec.decision is Decision.CLOSE_CHANNEL
    close = rec.suggested.close
    assert (close.close_and_reopen_cost_sat, close.expected_gain_sat) == (3_240, 41_137)
    e = explain_recommendation(rec, BALANCED)
    t = text(e)
    assert e.title == "Close: channel 800000x1x0 (alias-1111)"
    assert "cooperatively and put its 4,500,000 sat to work" in t
    assert "earned 1 sat in 30 days" in t  # the engine's reason, kept
    assert "costs about 3,240 sat on chain and frees 4,500,000 sat" in t
    assert "earn 41,137 sat more elsewhere than this channel would over 180 days" in t
    assert "12.7 times the cost of closing" in t  # 41,137 / 3,240
    # closed while gain (41,137 + 3,240) > cost: on-chain costs above 44,377 sat keep it
    assert "cost more than about 44,377 sat (now 3,240 sat)" in t
    assert "Confidence: 54 % (moderate)" in t
    # the engine's close cost reason is told once, in the values paragraph
    assert t.count("3,240 sat") == 2


def test_a_rule_decision_names_the_rule():
    rules = parse_rules([{"name": "pin-it", "when": "", "action": {"type": "pin", "fee_ppm": 77}}])
    ch = chan(local_sat=500_000, fee_ppm=100, windows=(FlowWindow(7), FlowWindow(30)))
    (rec,) = evaluate_node([ch], network({P1: 100}), BALANCED, rules)
    assert rec.rule == "pin-it" and rec.suggested.fee_ppm == 77
    t = text(explain_recommendation(rec))
    assert "Your rule 'pin-it' decides channel 800000x1x0 (alias-1111)" in t
    assert "fee from 100 ppm to 77 ppm" in t
    assert "applied as written" in t
    assert "Edit or disable the rule 'pin-it'" in t


def test_unknown_policy_is_said_not_printed_as_none():
    ch = chan(local_sat=500_000, fee_ppm=None, windows=(FlowWindow(7), FlowWindow(30)))
    rec = evaluate_channel(ch, network({P1: 100}), BALANCED)
    t = text(explain_recommendation(rec))
    assert "None" not in t
    assert "our policy is unknown" in t


def test_the_text_follows_the_numbers_and_is_deterministic():
    rec = no_action()
    assert explain_recommendation(rec) == explain_recommendation(rec)
    other = replace(rec, confidence=0.37, composite=12.5)
    t = text(explain_recommendation(other))
    assert "Confidence: 37 % (low)" in t and "12.5/100 overall" in t
    assert text(explain_recommendation(rec)) != t


def test_weak_scores_outside_the_drivers_are_told_with_their_facts():
    rec = no_action()
    weak = HeuristicResult("reliability", 12.0, {"uptime_7d": 0.4, "disconnects_7d": 9})
    rec = replace(rec, heuristics=[*(h for h in rec.heuristics if h.name != "reliability"), weak])
    t = text(explain_recommendation(rec))
    assert "Weak spots: reliability 12/100 (up 40 % of the last 7 days; 9 disconnects)" in t


def test_describe_heuristic_for_every_engine_heuristic():
    rec = rebalance_case()
    described = {h.name: describe_heuristic(h) for h in rec.heuristics}
    assert set(described) == set(BALANCED.weights)
    for h in rec.heuristics:
        assert described[h.name].startswith(f"{h.name.replace('_', ' ')} {h.score:g}/100")
    assert "21 forwards in 7 days" in described["activity"]
    assert "210,000 sat sent out this week" in described["activity"]
    assert "peer has 50 channels" in described["peer_quality"]
    assert "25x the median node's channels (well connected)" in described["network_position"]


channels = st.builds(
    lambda cap, share, fee, out, inn, failed, age, trend: chan(
        capacity_sat=cap,
        local_sat=int(cap * share),
        fee_ppm=fee,
        windows=(
            FlowWindow(
                7,
                forwards_out=out,
                forwards_in=inn,
                volume_out_msat=out * 10_000_000,
                volume_in_msat=inn * 10_000_000,
                failed_out=failed,
            ),
            FlowWindow(30, forwards_out=out * 4, volume_out_msat=out * 40_000_000),
        ),
        age_days=age,
        balance_trend_msat_per_day=trend,
    ),
    st.integers(100_000, 20_000_000),
    st.floats(0, 1),
    st.one_of(st.none(), st.integers(0, 6000)),
    st.integers(0, 60),
    st.integers(0, 60),
    st.integers(0, 10),
    st.floats(0, 400),
    st.floats(-5e8, 5e8),
)


@settings(max_examples=60, deadline=None)
@given(channels, st.sampled_from(list(BUILTIN.values())), st.integers(1, 300))
def test_any_recommendation_explains_without_gaps(ch, profile, feerate):
    rec = evaluate_channel(ch, network({P1: 250}, onchain_feerate_sat_vb=feerate), profile)
    e = explain_recommendation(rec, profile)
    t = text(e)
    assert e == explain_recommendation(rec, profile)
    assert "None" not in t and "nan" not in t.lower() and "{" not in t
    assert all(p.strip() and p[0].isupper() and p.endswith(".") for p in e.paragraphs)
    assert f"{rec.composite:g}/100" in t
    if rec.suggested.fee_ppm is not None and rec.decision is not Decision.CLOSE_CHANNEL:
        assert f"{rec.suggested.fee_ppm:,} ppm" in t


# -- a node ---------------------------------------------------------------------------------

NODE = NodeScore(
    pubkey="03" + "ab" * 32,
    alias="ACINQ",
    channels=1520,
    capacity_sat=380_000_000,
    median_fee_ppm=120,
    betweenness=0.0421,
    closeness=0.3812,
    eigenvector=0.12,
    components={
        "centrality": 99.8,
        "closeness": 97.1,
        "connectivity": 99.2,
        "capacity": 98.7,
        "fees": 71.3,
        "reliability": 40.0,
    },
    composite=91.5,
    reasons=(
        "1,520 channels, 380,000,000 sat: more than 99.20 % / 98.70 % of nodes",
        "more shortest paths through it than 99.80 % of nodes",
        "median outbound fee 120 ppm (network 80 ppm)",
        "600 of 1500 outbound directions enabled",
    ),
)
SUGGESTIONS = [
    PeerSuggestion(
        "02" + "cd" * 32,
        "Kraken",
        78.4,
        0.9,
        412,
        {"reach": 100.0, "centrality": 90.0, "capacity": 80.0, "fees": 60.0, "reliability": 95.0},
        (
            "brings 412 more nodes within 3 hops (reached today: 9,000)",
            "more central than 90 % of nodes",
        ),
    ),
    PeerSuggestion("02" + "ef" * 32, "", 60.1, 0.4, 120, {}, ()),
    PeerSuggestion("02" + "12" * 32, "Bitfinex", 55.0, 0.7, 80, {}, ()),
    PeerSuggestion("02" + "34" * 32, "Fourth", 50.0, 0.7, 10, {}, ()),
]


def test_node_explanation_tells_rank_components_and_suggestions():
    e = explain_node(NODE, SUGGESTIONS, rank=3, nodes=15_234)
    t = text(e)
    assert e.title == "Node ACINQ: 91.5/100"
    assert e.source == BUILT_IN
    assert "ACINQ scores 91.5/100 and ranks #3 of 15,234 nodes" in t
    # the plain percentiles come from the node's reasons
    assert "1,520 channels, 380,000,000 sat: more than 99.20 % / 98.70 % of nodes" in t
    assert "More shortest paths through it than 99.80 % of nodes" in t
    assert "median outbound fee 120 ppm (network 80 ppm)" in t.lower()
    # components strongest first, each with its value and meaning
    assert t.index("centrality 99.8/100") < t.index("connectivity 99.2/100")
    assert t.index("connectivity 99.2/100") < t.index("reliability 40/100")
    # a position component blends percentile and share of the best: told as what it
    # measures, never as "more than x % of nodes"
    assert "centrality 99.8/100 (shortest paths through it, against every node)" in t
    assert "connectivity 99.2/100 (its channel count, against every node)" in t
    assert "channels than 99.2" not in t
    assert "half the node's percentile and half its share of the best node's value" in t
    assert "Betweenness 0.0421, closeness 0.3812, eigenvector 0.12" in t
    # the best suggestion with its reasons, then the next two (no alias: key prefix)
    assert "goes to Kraken: score 78.4/100, confidence 90 % (high)" in t
    assert "brings 412 more nodes within 3 hops" in t
    assert "02efefefefefefef (60.1/100, 120 new nodes) and Bitfinex (55/100, 80 new nodes)" in t
    assert "Fourth" not in t
    # the largest headroom: reliability, 10 % x (100 - 40) = 6 points
    assert "most room to grow is in reliability" in t and "would add 6.0 points" in t


def test_node_explanation_without_rank_or_suggestions():
    bare = replace(NODE, alias="", median_fee_ppm=None, reasons=NODE.reasons[:2])
    e = explain_node(bare, [])
    t = text(e)
    assert e.title.startswith("Node 03abababababab")
    assert "ranks" not in t and "None" not in t
    assert "No peer to suggest" in t
    assert "its fees are unknown" in t
    assert explain_node(bare, []) == e


# -- the prompt -----------------------------------------------------------------------------


def test_chat_messages_constrain_the_model_to_compact_facts():
    rec = rebalance_case()
    facts = recommendation_facts(rec)
    messages = chat_messages("channel 800000x1x0", facts)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == SYSTEM_PROMPT
    assert "only the JSON facts" in SYSTEM_PROMPT and "never invent" in SYSTEM_PROMPT
    user = messages[1]["content"]
    head, data = user.split("\nFacts: ")
    assert head == "Explain: channel 800000x1x0"
    doc = json.loads(data)
    assert data == json.dumps(doc, separators=(",", ":"), sort_keys=True)  # compact
    assert doc["decision"] == "REBALANCE"
    assert doc["suggested"]["rebalance"]["amount_sat"] == 810_000
    assert doc["suggested"]["rebalance"]["source_channel_id"] == "700000x2x0"
    assert "rule" not in doc and "close" not in doc["suggested"]  # None left out
    assert doc["scores"]["activity"]["forwards_7d"] == 21
    for name, facts_ in doc["scores"].items():
        assert not set(facts_) & PARTS, name
    # short: the whole prompt stays well under ~600 tokens
    assert sum(len(m["content"]) for m in messages) < 2400


def test_chat_messages_round_floats_and_serialise_anything():
    messages = chat_messages(
        "x", {"b": 0.123456789, "tiny": 1.23456e-7, "enum": Decision.CLOSE_CHANNEL, "n": None}
    )
    doc = json.loads(messages[1]["content"].split("Facts: ")[1])
    assert doc == {"b": 0.1235, "tiny": 1.235e-07, "enum": "CLOSE_CHANNEL"}


def test_node_facts_for_the_model():
    facts = node_explain_facts(NODE, SUGGESTIONS, rank=3, nodes=15_234, limit=2)
    doc = json.loads(chat_messages("node ACINQ", facts)[1]["content"].split("Facts: ")[1])
    assert doc["node"]["rank"] == 3 and doc["node"]["ranked_nodes"] == 15_234
    assert doc["node"]["components"]["centrality"] == 99.8
    assert [s["reach_gain"] for s in doc["peer_suggestions"]] == [412, 120]
    assert doc["component_weights"]["centrality"] == 0.3
