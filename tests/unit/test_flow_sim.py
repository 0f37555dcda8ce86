"""The what-if simulator on small hand-made graphs, where every route can be worked out."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from dataclasses import replace

import networkx as nx
import pytest

from engine import flow_sim
from engine.flow_sim import (
    MAX_ATTEMPTS,
    Demand,
    Scenario,
    SimChannel,
    SimulationError,
    first_tries,
    prepare,
    routes_around_us,
    run_policy,
    shared_hop,
)
from engine.node_source import GraphEdge, GraphNode, NetworkGraph, RoutingPolicy
from engine.route_tables import (
    CLASS_AMOUNTS_MSAT,
    alternatives,
    amount_class,
    build_class_graph,
    hop_penalty_msat,
    route_tree,
    success_probability,
)
from engine.sim_policy import (
    FixedFees,
    KeepFees,
    PolicyActions,
    RebalanceOrder,
    ScaledFees,
    scaled_fee,
)
from engine.sim_worker import SimInputError, policy_factory

US = "02" + "00" * 32


def pk(i: int) -> str:
    return "02" + f"{i:064x}"


S, A, B, T, X, Y, L = (pk(i) for i in range(1, 8))
BIG = 50_000_000  # sat


def pol(ppm: int, base: int = 0, *, htlc_max: int = BIG * 1000, disabled: bool = False):
    return RoutingPolicy(base, ppm, 40, 1000, htlc_max, disabled=disabled)


def edge(cid: str, a: str, b: str, ppm_ab: int, ppm_ba: int, cap: int = BIG) -> GraphEdge:
    return GraphEdge(cid, a, b, cap, pol(ppm_ab), pol(ppm_ba))


def small_world(alt_ppm: int = 500, alt_cap: int = BIG) -> NetworkGraph:
    """S and T are the busy nodes. Through us: S -> A -> us -> B -> T. Around us:
    S -> X -> T at `alt_ppm` over `alt_cap` sat. A and B also meet through Y (a way to
    rebalance)."""
    nodes = [GraphNode(p, name) for p, name in ((S, "S"), (A, "A"), (B, "B"), (T, "T"))]
    nodes += [GraphNode(X, "X"), GraphNode(Y, "Y")]
    edges = [
        edge("1x1x1", S, A, 10, 10),
        edge("1x1x2", B, T, 10, 10),
        edge("1x1x3", S, X, 10, 10),
        edge("1x1x4", X, T, alt_ppm, alt_ppm, cap=alt_cap),
        edge("1x1x5", A, Y, 200, 200),
        edge("1x1x6", Y, B, 300, 300),
        edge("1x1x7", S, T, 5000, 5000, cap=1_000),  # too small for most payments
    ]
    return NetworkGraph(nodes=nodes, edges=edges)


def our_channels(
    fee_a: int = 100, fee_b: int = 100, local_a: float = 0.5, local_b: float = 0.5
) -> tuple[SimChannel, ...]:
    cap = 20_000_000
    return (
        SimChannel("9x9x1", A, cap, int(cap * 1000 * local_a), pol(fee_a), pol(15), 100, "A"),
        SimChannel("9x9x2", B, cap, int(cap * 1000 * local_b), pol(fee_b), pol(25), 100, "B"),
    )


def scenario(**kw) -> Scenario:
    base = dict(
        our_pubkey=US,
        channels=our_channels(),
        demand=Demand(payments_per_day=400, senders=6),
        days=4,
        warmup_days=1,
        seed=7,
    )
    base.update(kw)
    return Scenario(**base)


# -- route tables ------------------------------------------------------------------------------


def test_amount_classes_and_probabilities():
    assert [amount_class(a) for a in (1, 49_999_999, 50_000_000, 499_999_999, 10**12)] == [
        0,
        0,
        1,
        1,
        2,
    ]
    assert success_probability(250, 1000) == 0.75
    assert success_probability(1000, 1000) == 0.0
    # LDK's defaults: 500 msat + 8192 msat per 2^30 of the amount, and the liquidity penalty
    # (30,000 + 192 per 2^20 of the amount) x -log10(p).
    amount = 2**30
    expected = 500 + 8192 + (30_000 + 192 * 1024) * -math.log10(0.5)
    assert hop_penalty_msat(amount, 0.5) == pytest.approx(expected)
    assert hop_penalty_msat(amount, 1.0) == 500 + 8192
    assert hop_penalty_msat(amount, 0.0) == math.inf


def test_route_tree_matches_networkx_and_skips_the_excluded_node():
    graph = small_world()
    index = {n.pubkey: i for i, n in enumerate([GraphNode(US), *graph.nodes])}
    edges = [(index[e.node1], index[e.node2], e) for e in graph.edges]
    amount = CLASS_AMOUNTS_MSAT[1]
    g = build_class_graph(len(index), edges, amount, skip=0)
    tree = route_tree(g, index[S], origin_is_sender=True, ranks=3)
    ref = nx.DiGraph()
    for u, hops in enumerate(g.out):
        for v, cost, _fee, _p in hops:
            first = u == index[S]
            ref.add_edge(u, v, w=hop_penalty_msat(amount, 1.0) if first else cost)
    dist = nx.single_source_dijkstra_path_length(ref, index[S], weight="w")
    for node, d in dist.items():
        assert tree.cost[node] == pytest.approx(d, rel=1e-6)
    # Around us, S -> X -> T (500 ppm) beats S -> A -> Y -> B -> T (200 + 300 + 10 ppm); the
    # sender pays no fee on its own channel to X, and X's hop may fail.
    cost, fee, prob = tree.reach(index[T])
    assert fee == pytest.approx(amount * 500 / 1e6)
    assert prob == pytest.approx(success_probability(amount, BIG * 1000), rel=1e-6)
    # The small direct channel cannot carry this amount; with it, S would pay nothing.
    assert all(v != index[T] for v, *_ in g.out[index[S]])
    # The next ranks are the next cheapest routes, as networkx enumerates them.
    simple = nx.shortest_simple_paths(ref, index[S], index[T], weight="w")
    expected = [nx.path_weight(ref, path, "w") for _, path in zip(range(3), simple, strict=False)]
    alts = alternatives(tree, index[T])
    assert [a[0] for a in alts] == pytest.approx(expected, rel=1e-6)
    assert alts[0] == tree.reach(index[T])
    assert len(alts) == len(expected) == 2  # around us: via X, or via A, Y and B


# -- the simulation ----------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_results_and_another_seed_does_not():
    graph = small_world()
    policies = [("keep", KeepFees), ("fixed", lambda: FixedFees(300))]

    def simulate(seed: int) -> list:
        world = prepare(graph, scenario(seed=seed))  # prepared anew: routes, payments, warm-up
        return [run_policy(world, key, factory) for key, factory in policies]

    first, second = simulate(7), simulate(7)
    assert [r.to_dict() for r in first] == [r.to_dict() for r in second]
    other = simulate(8)
    assert [r.to_dict() for r in first] != [r.to_dict() for r in other]
    assert first[0].totals["forwarded"] > 0


def test_forked_preparation_gives_the_same_world():
    graph = small_world(alt_ppm=20)
    one = prepare(graph, scenario())
    two = prepare(graph, scenario(), processes=2)
    assert one.payments == two.payments and one.stats == two.stats
    fixed = lambda: FixedFees(80)  # noqa: E731
    assert run_policy(one, "f", fixed).to_dict() == run_policy(two, "f", fixed).to_dict()


def test_payments_settled_around_us_are_dropped_without_changing_any_result(monkeypatch):
    graph = small_world(alt_ppm=20)
    lean = prepare(graph, scenario())
    monkeypatch.setattr(flow_sim, "_reaching_us", lambda _world, drawn: list(drawn))
    full = prepare(graph, scenario())
    assert len(full.payments) > len(lean.payments) > 0
    for factory in (KeepFees, lambda: FixedFees(5), lambda: FixedFees(400)):
        assert run_policy(lean, "p", factory).to_dict() == run_policy(full, "p", factory).to_dict()


def every_payment_drawn(world, days: int, seed: int) -> Counter:
    """The reference the simulator's draw must match: draw every payment of the network
    (sender and receiver by channel count, log-normal amount), drop those that fail on the
    hop every route to the receiver shares, and keep those that the routes around us tried
    first do not settle. Counts per (sender, receiver, size class)."""
    base = world.classes[0]
    degree = [len(base.out[v]) + len(base.into[v]) for v in range(len(base.out))]
    senders = [trees[0].origin for trees in world.sender_trees]
    receivers = [v for v in range(1, len(base.out)) if base.into[v]]
    demand, rng = world.scenario.demand, random.Random(seed)
    mu, cap = math.log(demand.median_amount_sat * 1000), demand.max_amount_sat * 1000
    kept: Counter = Counter()
    for i in range(days * demand.payments_per_day):
        k = rng.choices(range(len(senders)), weights=[degree[s] for s in senders])[0]
        r = rng.choices(receivers, weights=[degree[v] for v in receivers])[0]
        amount = int(min(cap, max(1_000, rng.lognormvariate(mu, demand.amount_spread))))
        c = amount_class(amount)
        if r == senders[k] or not world.in_routes[k][c]:
            continue
        if world.min_out_cost[c][r] == math.inf:
            continue
        if rng.random() >= shared_hop(world, k, c, r):
            continue  # failed on the receiver's only channel: on every route
        payment = (0, k, r, amount, c, i, rng.random())
        if not first_tries(world, world.scenario.seed, payment)[0]:
            kept[(k, r, c)] += 1
    return kept


def around_first_world(alt_ppm: int, alt_cap: int) -> tuple[NetworkGraph, tuple[SimChannel, ...]]:
    """S -> X -> T is the only way around us, and A and B charge 9,000 ppm to reach us:
    senders try around us first. L has a single channel, from T, that every route to it
    shares."""
    nodes = [GraphNode(p, name) for p, name in ((S, "S"), (A, "A"), (B, "B"), (T, "T"))]
    graph = NetworkGraph(
        nodes=[*nodes, GraphNode(X, "X"), GraphNode(L, "L")],
        edges=[
            edge("1x1x1", S, A, 10, 10),
            edge("1x1x2", B, T, 10, 10),
            edge("1x1x3", S, X, 10, 10),
            edge("1x1x4", X, T, alt_ppm, alt_ppm, cap=alt_cap),
            edge("1x1x5", T, L, 10, 10, cap=200_000),
        ],
    )
    a, b = our_channels()
    return graph, (replace(a, peer_policy=pol(9_000)), replace(b, peer_policy=pol(9_000)))


@pytest.mark.parametrize(("alt_ppm", "alt_cap"), [(20, 400_000), (6_000, BIG)])
def test_drawing_only_payments_past_the_cheapest_route_keeps_the_same_payments(alt_ppm, alt_cap):
    # At 20 ppm over 400,000 sat the route around us fails often for larger amounts; at
    # 6,000 ppm it is over the fee limit except for the smallest amounts (5 sat are exempt).
    days, per_day = 4, 12_000
    demand = Demand(payments_per_day=per_day, senders=5, median_amount_sat=30_000)
    graph, channels = around_first_world(alt_ppm, alt_cap)
    world = prepare(graph, scenario(days=days, warmup_days=0, demand=demand, channels=channels))
    drawn = Counter((p[1], p[2], p[4]) for p in world.payments)
    reference = every_payment_drawn(world, days, seed=11)
    total, expected = sum(drawn.values()), sum(reference.values())
    assert expected > 500
    assert abs(total - expected) < 4 * math.sqrt(total + expected), (total, expected)
    for key in set(drawn) | set(reference):  # Poisson counts: within 4.5 standard deviations
        a, b = drawn[key], reference[key]
        assert abs(a - b) <= 4.5 * math.sqrt(a + b) + 2, (key, a, b)
    kept_amounts = sorted(p[3] for p in world.payments)
    assert kept_amounts[0] >= 1_000 and kept_amounts[-1] <= demand.max_amount_sat * 1000
    assert world.stats["payments_drawn"] == per_day * days
    assert world.stats["payments_kept"] == total <= world.stats["payments_past_cheapest"]


def test_a_receiver_behind_one_channel_fails_there_on_every_route():
    # A sender whose route fails on L's only channel would fail there again through us: the
    # hop's outcome is drawn once per payment (routes succeed with their probability given
    # that hop succeeded). T has two channels, A and B are our peers, a sender knows its own.
    graph, channels = around_first_world(20, 400_000)
    world = prepare(
        graph, scenario(demand=Demand(payments_per_day=50, senders=6), channels=channels)
    )
    index = {n.pubkey: i for i, n in enumerate([GraphNode(US), *graph.nodes])}
    for c, amount in enumerate(CLASS_AMOUNTS_MSAT):
        for k, trees in enumerate(world.sender_trees):
            sender = trees[c].origin
            hop = shared_hop(world, k, c, index[L])
            if sender == index[T]:
                assert hop == 1.0
            elif amount < 200_000_000:
                assert hop == pytest.approx(success_probability(amount, 200_000_000), rel=1e-9)
            for other in (A, B) if c == 2 else (T, A, B):  # X -> T cannot carry class 2
                assert shared_hop(world, k, c, index[other]) == 1.0
    # A payment to L that gets past the cheapest route around us has succeeded on that hop:
    # the route's other hops decide, with the probability divided by the shared one's.
    k = next(k for k, t in enumerate(world.sender_trees) if t[0].origin == index[S])
    tree, shared = world.sender_trees[k][0], shared_hop(world, k, 0, index[L])
    rest = tree.prob[index[L]] / shared
    settled = first_tries(world, 7, (0, k, index[L], 10_000_000, 0, 0, rest * 0.999))
    assert settled[0] and settled[1] == 1
    assert not first_tries(world, 7, (0, k, index[L], 10_000_000, 0, 0, rest * 1.001))[0]


def test_a_sender_falls_back_on_ever_dearer_routes_around_us_up_to_its_attempts():
    world = prepare(small_world(alt_ppm=20), scenario())
    k = next(k for k, trees in enumerate(world.sender_trees) if trees[0].origin != 0)
    target = next(
        t
        for t in range(1, len(world.classes[0].out))
        if len(alternatives(world.sender_trees[k][0], t)) >= 2
    )
    kept = alternatives(world.sender_trees[k][0], target)
    routes = routes_around_us(world, k, target, 0)
    assert len(routes) == MAX_ATTEMPTS
    assert [r[:3] for r in routes[: len(kept)]] == kept  # the search's own first
    costs = [r[0] for r in routes]
    least_step = hop_penalty_msat(CLASS_AMOUNTS_MSAT[0], 1.0)
    assert all(b - a >= least_step - 1e-6 for a, b in itertools.pairwise(costs[len(kept) - 1 :]))
    assert [r[3] for r in routes] == list(range(MAX_ATTEMPTS))


def test_forwards_after_a_failed_route_around_us_are_counted_as_fallback():
    def fallback_share(graph: NetworkGraph) -> float:
        result = run_policy(prepare(graph, scenario()), "keep", KeepFees).to_dict()
        assert 0 <= result["fallback_forwards"] <= result["forwards"] and result["forwards"]
        return result["fallback_forwards"] / result["forwards"]

    # Around us is cheaper but small and often fails: much of what we carry failed there
    # first. Around us is dearer: payments come to us first.
    cheap_but_unreliable = fallback_share(small_world(alt_ppm=1, alt_cap=2_100_000))
    dearer = fallback_share(small_world(alt_ppm=3000))
    assert cheap_but_unreliable > 0.1 and dearer < cheap_but_unreliable / 3, (
        cheap_but_unreliable,
        dearer,
    )


def test_a_cheaper_fee_wins_traffic_from_the_route_around_us():
    world = prepare(small_world(alt_ppm=500), scenario())
    cheap = run_policy(world, "cheap", lambda: FixedFees(50))
    dear = run_policy(world, "dear", lambda: FixedFees(3000))
    assert cheap.totals["forwarded"] > 2 * max(1, dear.totals["forwarded"])
    assert cheap.totals["policy_updates"] == 2 and dear.totals["policy_updates"] == 2
    # The fees earned are what our channel charges on each forwarded amount.
    per_forward = cheap.totals["fees_msat"] / cheap.totals["forwarded"]
    mean_amount = cheap.totals["volume_msat"] / cheap.totals["forwarded"]
    assert per_forward == pytest.approx(mean_amount * 50 / 1e6, rel=0.01)


def test_a_price_level_scales_each_current_fee_once_and_holds_it():
    world = prepare(small_world(alt_ppm=500), scenario(channels=our_channels(80, 130)))
    result = run_policy(world, "level:150", lambda: ScaledFees(150))
    fees = {c["peer_alias"]: c["fee_ppm"] for c in result.channels}
    assert fees == {"A": 120, "B": 195}  # each channel's own fee x 1.5, not one flat fee
    assert result.totals["policy_updates"] == 2  # set once, then held
    assert result.name == "current fees at 150 %"
    assert [scaled_fee(f, p) for f, p in ((1, 150), (3, 50), (0, 200), (999, 10))] == [
        2,
        2,
        0,
        100,
    ]


def test_a_price_level_spec_is_checked_before_the_run():
    key, factory = policy_factory({"key": "level", "percent": 75})
    assert key == "level:75" and factory().name == "current fees at 75 %"
    for bad in (None, 9, 1001, "150", 1.5, True):
        with pytest.raises(SimInputError, match="percent"):
            policy_factory({"key": "level", "percent": bad})


def test_a_depleted_channel_fails_htlcs_and_senders_go_around():
    a, b = our_channels(local_b=0.0)
    b = replace(b, peer_policy=None)  # nothing flows in through B to refill it
    world = prepare(small_world(), scenario(channels=(a, b)))
    result = run_policy(world, "keep", KeepFees)
    out_b = next(c for c in result.channels if c["peer_alias"] == "B")
    assert out_b["forwards_out"] == 0 and out_b["failed_out"] > 0
    assert result.totals["offered"] >= result.totals["forwarded"] + out_b["failed_out"]


def test_balances_move_with_every_forward_and_rebalance():
    world = prepare(small_world(), scenario(demand=Demand(payments_per_day=2000, senders=6)))
    start = world.start
    assert start is not None
    for key, factory in (("keep", KeepFees), ("refill", RefillB)):
        result = run_policy(world, key, factory)
        # Each forward leaves its fee on our side, each rebalance takes its cost away.
        gained = sum(c["local_msat"] for c in result.channels) - sum(start.local)
        assert gained == result.net_profit_msat
        assert result.totals["forwarded"] > 0
        for c, opened in zip(result.channels, our_channels(), strict=True):
            assert 0 <= c["local_msat"] <= opened.capacity_sat * 1000


class RefillB:
    """Once: move 1M sat from the A channel (full) to the B channel through A -> Y -> B."""

    interval_seconds = 3600

    def __init__(self, max_fee_ppm: int = 1000) -> None:
        self.name, self.done, self.max_fee_ppm = "refill", False, max_fee_ppm

    def decide(self, channels, net, now) -> PolicyActions:
        if self.done:
            return PolicyActions()
        self.done = True
        order = RebalanceOrder("9x9x2", "9x9x1", 1_000_000_000, self.max_fee_ppm)
        return PolicyActions(rebalances=[order])


def test_a_rebalance_costs_what_the_circular_route_charges():
    quiet = scenario(demand=Demand(payments_per_day=1, senders=2))
    world = prepare(small_world(), quiet)
    result = run_policy(world, "refill", RefillB)
    # A charges 200 ppm to Y, Y 300 ppm to B, B 25 ppm back to us (our first hop is free).
    assert result.totals["rebalances"] == 1
    assert result.totals["rebalance_cost_msat"] == 1_000_000_000 * (200 + 300 + 25) // 1_000_000
    refused = run_policy(world, "cheap", lambda: RefillB(max_fee_ppm=500))
    assert refused.totals["rebalances"] == 0 and refused.totals["rebalance_cost_msat"] == 0


def test_calibration_scales_demand_to_the_node_history():
    graph = small_world()
    base = prepare(graph, scenario())
    measured = base.start.forwarded / 1  # forwards in the one warm-up day  # type: ignore[union-attr]
    world = prepare(graph, scenario(calibrate_forwards_per_day=measured * 3))
    stats = world.stats
    assert stats["calibration_target_per_day"] == measured * 3
    expected = 400 * measured * 3 / stats["calibration_measured_per_day"]
    assert stats["calibrated_payments_per_day"] == int(expected)
    assert world.scenario.demand.payments_per_day == int(expected)


def test_unsimulable_scenarios_are_refused_with_a_reason():
    with pytest.raises(SimulationError, match="no channels"):
        prepare(small_world(), scenario(channels=()))
    stranger = replace(our_channels()[0], peer_id=pk(99))
    with pytest.raises(SimulationError, match="not in the graph"):
        prepare(small_world(), scenario(channels=(stranger,)))
