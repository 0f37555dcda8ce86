"""Pydantic models of the HTTP API and of the stored settings (pydantic 1.10, as in LNbits)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Extra, Field, StrictBool, StrictInt, conint, root_validator

from .engine.flow_sim import DEFAULT_SENDERS
from .engine.sim_policy import LEVEL_MAX_PERCENT, LEVEL_MIN_PERCENT


class DaznodeSettings(BaseModel):
    """Admin settings. Every field has a safe default, so a fresh install just works."""

    monitor_interval_seconds: int = Field(
        60, ge=10, le=3600, description="How often the monitor snapshots the node."
    )
    raw_retention_hours: int = Field(
        48, ge=1, le=720, description="Raw snapshots older than this are rolled up hourly."
    )
    hourly_retention_days: int = Field(
        30, ge=1, le=365, description="Hourly roll-ups older than this become daily ones."
    )
    daily_retention_days: int = Field(
        730,
        ge=0,
        le=3650,
        description="Daily roll-ups older than this are deleted (0: keep).",
    )
    forwards_retention_days: int = Field(
        365, ge=0, le=3650, description="Forwards older than this are deleted (0: keep)."
    )
    sim_graph_path: str = Field(
        "",
        max_length=1024,
        description="Demo node: graph snapshot to place it in (describegraph JSON or the "
        "CSV folder); empty = the bundled mainnet snapshot if found, else a generated one.",
    )
    backup_compress_after_days: int = Field(
        7, ge=1, le=365, description="Policy backups older than this are compressed."
    )
    backup_keep_days: int = Field(
        90, ge=1, le=3650, description="Policy backups older than this are deleted."
    )
    graph_sync_hours: float = Field(
        6,
        ge=0,
        le=168,
        description="Sync the public graph from the node and recompute node scores this "
        "often (0: only by hand or by upload).",
    )
    sim_channels: int = Field(12, ge=2, le=200, description="Demo node: channel count.")
    sim_seed: int = Field(42, ge=0, le=2**31 - 1, description="Demo node: random seed.")

    class Config:
        extra = Extra.forbid

    @root_validator(skip_on_failure=True)
    def retention_tiers_in_order(cls, values: dict) -> dict:  # noqa: N805 - pydantic
        if values["hourly_retention_days"] * 24 <= values["raw_retention_hours"]:
            raise ValueError("hourly_retention_days must cover more time than raw_retention_hours")
        if values["backup_keep_days"] <= values["backup_compress_after_days"]:
            raise ValueError("backup_keep_days must be longer than backup_compress_after_days")
        daily = values["daily_retention_days"]
        if daily and daily <= values["hourly_retention_days"]:
            raise ValueError(
                "daily_retention_days must be 0 (keep) or longer than hourly_retention_days"
            )
        return values


class Policy(BaseModel):
    base_fee_msat: int
    fee_rate_ppm: int
    cltv_delta: int
    htlc_min_msat: int
    htlc_max_msat: int
    inbound_base_fee_msat: int | None = None
    inbound_fee_rate_ppm: int | None = None
    disabled: bool = False


class NodeOut(BaseModel):
    backend: str
    demo: bool
    pubkey: str
    alias: str
    network: str
    version: str
    block_height: int
    synced_to_chain: bool
    num_channels: int
    num_active_channels: int
    capacity_sat: int
    local_msat: int
    remote_msat: int
    fees_7d_msat: int
    forwards_7d: int
    as_of: int = Field(description="When the monitor last read the node (epoch seconds).")


class ChannelOut(BaseModel):
    channel_id: str = Field(description="Short channel id BLOCKxTXxOUT.")
    native_id: str
    channel_point: str
    peer_id: str
    peer_alias: str
    capacity_sat: int
    local_msat: int
    remote_msat: int
    local_ratio: float
    active: bool
    private: bool
    age_days: float
    local_policy: Policy | None
    remote_policy: Policy | None
    forwards_out_7d: int
    forwards_in_7d: int
    volume_out_7d_msat: int
    fees_7d_msat: int
    failed_7d: int
    first_seen: int
    last_seen: int


class HistoryPoint(BaseModel):
    ts: int
    local_msat: int
    min_local_msat: int
    max_local_msat: int
    remote_msat: int
    active_share: float
    fee_rate_ppm: int | None
    base_fee_msat: int | None


class ChannelHistory(BaseModel):
    channel_id: str
    resolution: str
    points: list[HistoryPoint]


class ForwardOut(BaseModel):
    index: int
    ts: int
    chan_in: str
    chan_out: str
    amt_in_msat: int
    amt_out_msat: int
    fee_msat: int
    status: str
    fail_reason: str | None


class ForwardsPage(BaseModel):
    data: list[ForwardOut]
    total: int
    page: int
    size: int


class BackendOut(BaseModel):
    kind: str
    label: str
    demo: bool
    funding_source: str
    detail: str
    inbound_fees: bool
    per_channel_cltv: bool
    forward_failures: bool
    rebalance: bool


class StatusOut(BaseModel):
    backend: BackendOut | None
    state: str = Field(description="starting | running | standby | failing")
    leader: bool
    lease_holder: str
    interval_seconds: int
    last_run: int
    last_success: int
    last_duration_ms: int
    last_error: str | None
    last_error_at: int
    consecutive_failures: int
    next_run: int
    forward_cursor: int
    stored_forwards: int
    stored_snapshots: int


class HeuristicOut(BaseModel):
    name: str
    score: float
    facts: dict[str, float | int | str | bool | None]


class RebalanceOut(BaseModel):
    direction: str
    amount_sat: int
    max_fee_ppm: int
    max_cost_sat: int
    estimated_cost_ppm: int
    expected_earnings_sat: int
    source_channel_id: str | None


class CloseOut(BaseModel):
    reason: str
    close_and_reopen_cost_sat: int
    freed_local_sat: int
    expected_gain_sat: int


class SuggestionOut(BaseModel):
    fee_ppm: int | None
    base_fee_msat: int | None
    inbound_fee_ppm: int | None
    inbound_base_fee_msat: int | None
    htlc_max_msat: int | None
    target_fee_ppm: int | None
    rebalance: RebalanceOut | None
    close: CloseOut | None


class RecommendationOut(BaseModel):
    channel_id: str
    peer_id: str
    peer_alias: str
    decision: str = Field(
        description="NO_ACTION | INCREASE_FEES | DECREASE_FEES | REBALANCE | CLOSE_CHANNEL"
    )
    confidence: float = Field(ge=0, le=1)
    composite: float = Field(ge=0, le=100)
    scores: dict[str, float]
    heuristics: list[HeuristicOut]
    reasons: list[str]
    suggested: SuggestionOut
    current_fee_ppm: int | None
    rule: str | None
    admin_change_waiting: bool = Field(
        False,
        description="An admin's own proposal (by hand or a price level) waits for this "
        "channel: the engine proposes nothing here until it is approved or rejected",
    )
    level_percent: int = Field(
        100,
        description="The price level this channel's fee on the node is at (level trials): "
        "the fees in `suggested` are the node's, the engine's own fee times this level",
    )
    own_fee_ppm: int | None = Field(
        None, description="The engine's own fee now (before the level), under level trials"
    )
    suggested_own_fee_ppm: int | None = Field(
        None, description="The engine's suggested own fee (before the level), under level trials"
    )


class RecommendationsOut(BaseModel):
    profile: str
    graph_available: bool
    evaluated_at: int
    data: list[RecommendationOut]


class ProfileOut(BaseModel):
    active: dict
    builtin: dict[str, dict]


class RulesOut(BaseModel):
    rules: list[dict]


class ChargeLndImportOut(BaseModel):
    rules: list[dict]
    unsupported: list[str]
    notes: list[str]
    saved: bool


class FieldDiff(BaseModel):
    field: str
    before: int | None
    after: int | None


class ChangeOut(BaseModel):
    id: str
    created_at: int
    channel_id: str
    kind: str
    status: str = Field(
        description="pending | approved | applied | failed | rolled_back | rejected | superseded"
    )
    before: Policy
    after: Policy
    diff: list[FieldDiff]
    reasons: list[str]
    confidence: float | None
    origin: str
    validation: list[str]
    decided_by: str | None
    decided_at: int
    batch_id: str | None
    action: dict = Field(
        default_factory=dict,
        description="rebalance: out_channel, amount_sat, max_fee_ppm, expected_earnings_sat; "
        "close: reason, expected_gain_sat, close_and_reopen_cost_sat",
    )
    outcome: str = Field("", description="What the node answered (closing txid, error)")


class ChangeIds(BaseModel):
    ids: list[str] = Field(min_items=1, max_items=200)
    reason: str = Field("", max_length=500)


class ManualChange(BaseModel):
    channel_id: str = Field(max_length=64)
    fee_rate_ppm: int | None = Field(None, ge=0, le=100_000)
    base_fee_msat: int | None = Field(None, ge=0, le=10_000_000)
    inbound_fee_rate_ppm: int | None = Field(None, ge=-100_000, le=0)
    inbound_base_fee_msat: int | None = Field(None, ge=-10_000_000, le=0)
    htlc_max_msat: int | None = Field(None, ge=1)
    cltv_delta: int | None = Field(None, ge=18, le=2016)

    class Config:
        extra = Extra.forbid


class LevelIn(BaseModel):
    run_id: str = Field(..., max_length=64, description="The what-if run that simulated it")
    percent: conint(strict=True, ge=LEVEL_MIN_PERCENT, le=LEVEL_MAX_PERCENT) = Field(  # type: ignore[valid-type]
        ...,
        description=f"The run's price level, in % of the fees it started from "
        f"({LEVEL_MIN_PERCENT}-{LEVEL_MAX_PERCENT})",
    )

    class Config:
        extra = Extra.forbid


class SkippedChannel(BaseModel):
    channel_id: str
    reason: str


class PreviewOut(BaseModel):
    channel_id: str
    before: Policy
    after: Policy
    diff: list[FieldDiff]
    ok: bool
    reasons: list[str]
    checks: list[str]


class ActionOut(BaseModel):
    change_id: str
    kind: str
    channel_id: str
    ok: bool
    detail: str


class ApplyOut(BaseModel):
    batch_id: str | None = Field(description="The batch of policy changes, if any")
    status: str = Field(description="The batch's status; DONE/FAILED when only actions ran")
    detail: str
    rejected: dict[str, list[str]]
    actions: list[ActionOut] = Field(default_factory=list, description="Rebalances and closes")


class BatchItemOut(BaseModel):
    change_id: str
    channel_id: str
    status: str
    before: Policy
    after: Policy
    readback: Policy | None
    error: str | None
    updated_at: int


class BatchOut(BaseModel):
    id: str
    created_at: int
    created_by: str
    status: str
    detail: str
    updated_at: int
    items: list[BatchItemOut] = []


class AuditOut(BaseModel):
    ts: int
    actor: str
    action: str
    target: str
    detail: str


class AuditPage(BaseModel):
    data: list[AuditOut]
    total: int
    page: int
    size: int


class BackupOut(BaseModel):
    id: int
    created_at: int
    reason: str
    channel_count: int
    checksum: str
    compressed: bool


class BackupCheck(BaseModel):
    checked: int
    corrupt: list[int]


class RebalanceIn(BaseModel):
    in_channel: str = Field(max_length=64, description="The depleted channel to refill")
    out_channel: str = Field(max_length=64, description="The channel the sats leave through")
    amount_sat: int = Field(gt=0)
    max_fee_ppm: int = Field(ge=0, le=100_000)

    class Config:
        extra = Extra.forbid


# -- the graph and the scoring service ----------------------------------------------------------


class GraphJobOut(BaseModel):
    state: str = Field(description="idle | syncing | analysing | failed")
    phase: str
    progress: float = Field(description="0..1")
    source: str
    started_at: int
    finished_at: int
    error: str | None


class GraphStatusOut(BaseModel):
    version: int = Field(description="Bumped by every sync or upload")
    scored_version: int = Field(description="The version the scores were computed on")
    synced_at: int
    scored_at: int
    source: str
    nodes: int
    channels: int
    stats: dict = Field(description="Counts, components, diameter, average path (exact or sampled)")
    backend: str = Field(description="What computed the analytics")
    methods: dict = Field(description="Per measure: exact, or how it was estimated")
    seconds: dict = Field(description="Time each step took (storing, analytics)")
    worker_peak_rss_mb: float | None = Field(description="Peak memory of the analytics worker")
    job: GraphJobOut


class NodeScoreOut(BaseModel):
    pubkey: str
    alias: str
    rank: int = Field(description="1 = best composite")
    of: int = Field(description="Nodes in the graph")
    composite: float = Field(description="0-100, weighted mean of the components")
    components: dict[str, float] = Field(description="Each 0-100")
    betweenness: float = Field(description="Normalised betweenness centrality")
    closeness: float
    eigenvector: float
    channels: int
    capacity_sat: int
    median_fee_ppm: int | None
    reasons: list[str]
    graph_version: int
    computed_at: int


class NodeScoresBatchIn(BaseModel):
    node_ids: list[str] = Field(min_items=1, max_items=10_000)

    class Config:
        extra = Extra.forbid


class RankingsOut(BaseModel):
    data: list[NodeScoreOut]
    total: int
    page: int
    size: int
    pages: int
    sort: str
    order: str
    graph_version: int


class PeerSuggestionOut(BaseModel):
    pubkey: str
    alias: str
    score: float = Field(description="0-100")
    confidence: float = Field(description="0-1")
    reach_gain: int = Field(description="Nodes newly within 3 hops after opening")
    components: dict[str, float]
    reasons: list[str]


class PeerSuggestionsOut(BaseModel):
    node_id: str
    min_confidence: float
    data: list[PeerSuggestionOut]


# Each paying node sampled costs a route search: 150 take about a minute on two cores.
SIM_SENDERS_MIN, SIM_SENDERS_DEFAULT, SIM_SENDERS_MAX = 20, DEFAULT_SENDERS, 500


def _senders_field(description: str) -> Any:
    return Field(
        SIM_SENDERS_DEFAULT, ge=SIM_SENDERS_MIN, le=SIM_SENDERS_MAX, description=description
    )


class SimRunIn(BaseModel):
    """A what-if simulation: which policies and Daznode profiles, over how many days."""

    policies: list[str] = Field(
        default_factory=lambda: ["static", "chargelnd", "lndg", "clboss"],
        description="Baselines: static, chargelnd, lndg, clboss, current",
    )
    profiles: list[str] = Field(
        default_factory=lambda: ["balanced"],
        description="Daznode profiles: balanced, conservative, aggressive, active",
    )
    levels: list[StrictInt] = Field(
        default_factory=list,
        max_items=20,
        description="Price levels: every channel at its current fee times level / 100 "
        "(10-1000, e.g. [75, 150, 200])",
    )
    days: int = Field(30, ge=1, le=90, description="Simulated days after a 7-day warm-up")
    seed: int = Field(1, ge=0, le=2**31 - 1, description="Same seed, same payments")
    calibrate: bool = Field(True, description="Scale the demand to the node's own history")
    senders: int = _senders_field(
        "Paying nodes sampled: fewer run faster, more vary less between seeds"
    )

    class Config:
        extra = Extra.forbid


class ShadowIn(BaseModel):
    enabled: bool
    days: int = Field(7, ge=1, le=30, description="Days each daily shadow run looks ahead")
    senders: int = _senders_field("Paying nodes sampled in each shadow run")
    propose_levels: bool = Field(
        False,
        description="Propose, for approval, the price level shadow mode keeps favouring "
        "(ahead of the current fees in 5 of the last 7 runs)",
    )

    class Config:
        extra = Extra.forbid


class LevelOut(BaseModel):
    proposed: list[ChangeOut]
    skipped: list[SkippedChannel]
    limited: int = Field(description="Proposals the bounds held short of the simulated fee")
    superseded: int = Field(
        description="Proposals that left the queue for these: the last level still waiting, "
        "and any other change waiting on a channel proposed now"
    )


class LevelTrialLevel(BaseModel):
    percent: int
    days: int = Field(description="Days at this level within the last 28")
    fees_msat: int
    forwards: int
    mean_fees_msat: int = Field(description="Earned per day at this level")


class LevelTrialDay(BaseModel):
    day_start: int
    day_end: int
    percent: int
    fees_msat: int
    forwards: int


class LevelTrialsOut(BaseModel):
    enabled: bool = Field(description="The profile's level_trials switch")
    mode: str
    running: bool
    why_not: str = Field(description="Why the trials do not run now ('' when they do)")
    percent: int = Field(description="Today's level, in % of the engine's own fees")
    reason: str
    day_start: int | None
    next_day_at: int | None
    engine_quiet_from: int | None = Field(
        description="From then until the next level, the engine changes no fee: every "
        "channel must be free (past its cooldown) to take the next level when the day starts"
    )
    channels: int = Field(description="Channels under the level (not pinned or excluded)")
    channels_at_level: int = Field(description="Of those, how many are at today's level yet")
    levels: list[LevelTrialLevel]
    days: list[LevelTrialDay] = Field(description="The last 28 trial days, oldest first")


class LevelTrialsIn(BaseModel):
    enabled: StrictBool = Field(description="Turn the profile's level_trials switch on or off")

    class Config:
        extra = Extra.forbid
