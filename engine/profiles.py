"""Decision profiles: the weights and thresholds the engine works with, as plain data.

Three built-in profiles (conservative, balanced, aggressive) and custom ones derived from
them. A profile round-trips through a plain dict (JSON) and a small YAML form, so admins
can export, edit and import it; every bad value is reported by name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

HEURISTIC_NAMES = (
    "liquidity",
    "activity",
    "competitiveness",
    "centrality",
    "reliability",
    "stability",
    "peer_quality",
    "network_position",
)


class ProfileError(ValueError):
    pass


@dataclass(frozen=True)
class Profile:
    name: str = "balanced"
    weights: dict[str, float] = field(
        default_factory=lambda: {
            "liquidity": 0.20,
            "activity": 0.20,
            "competitiveness": 0.15,
            "centrality": 0.10,
            "reliability": 0.10,
            "stability": 0.05,
            "peer_quality": 0.10,
            "network_position": 0.10,
        }
    )
    target_ratio: float = 0.5  # local share the fee logic steers towards
    low_ratio: float = 0.15  # below: depleted
    high_ratio: float = 0.85  # above: saturated
    deadband: float = 0.10  # relative fee gap ignored (hysteresis against oscillation)
    min_fee_delta_ppm: int = 5  # smaller changes are not worth a gossip update
    max_step_up: float = 0.25  # relative fee raise per decision
    max_step_down: float = 0.15  # relative fee cut per decision
    fast_raise_days: float = 2.0  # draining faster than this (days to empty): fast raise
    fast_raise_step: float = 1.0  # relative raise allowed then
    min_fee_ppm: int = 1
    max_fee_ppm: int = 5000
    refill_margin: float = 1.0  # x the estimated refill cost, the fee floor
    balance_sensitivity: float = 4.0  # fee multiplier at an empty channel (1/x when full)
    rebalance_horizon_days: int = 30
    rebalance_safety: float = 0.8  # share of expected earnings a rebalance may cost
    close_min_age_days: int = 60
    capital_return_pct: float = 2.0  # per year the local balance could earn elsewhere
    close_horizon_days: int = 180
    inbound_discount: float = 0.25  # share of the outbound fee given back on depleted inflow
    # Price level trials in auto mode: one node-wide multiple of the engine's fees, changed
    # once a day, chosen from what each level earned (engine/level_trials.py).
    level_trials: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


BUILTIN: dict[str, Profile] = {
    "balanced": Profile(),
    "conservative": Profile(
        name="conservative",
        deadband=0.20,
        min_fee_delta_ppm=10,
        max_step_up=0.15,
        max_step_down=0.10,
        fast_raise_days=1.0,
        fast_raise_step=0.5,
        balance_sensitivity=3.0,
        rebalance_safety=0.6,
        close_min_age_days=120,
        capital_return_pct=1.0,
        close_horizon_days=365,
        level_trials=False,
    ),
    "aggressive": Profile(
        name="aggressive",
        deadband=0.07,
        min_fee_delta_ppm=3,
        max_step_up=0.5,
        max_step_down=0.25,
        fast_raise_days=3.0,
        fast_raise_step=1.5,
        balance_sensitivity=6.0,
        rebalance_safety=0.9,
        close_min_age_days=45,
        capital_return_pct=4.0,
        close_horizon_days=120,
    ),
}

# (minimum, maximum) of every numeric field; checked on every profile built from data.
_BOUNDS: dict[str, tuple[float, float]] = {
    "target_ratio": (0.05, 0.95),
    "low_ratio": (0.0, 0.5),
    "high_ratio": (0.5, 1.0),
    "deadband": (0.0, 1.0),
    "min_fee_delta_ppm": (0, 1000),
    "max_step_up": (0.01, 5.0),
    "max_step_down": (0.01, 0.9),
    "fast_raise_days": (0.0, 30.0),
    "fast_raise_step": (0.01, 10.0),
    "min_fee_ppm": (0, 100_000),
    "max_fee_ppm": (1, 100_000),
    "refill_margin": (0.0, 5.0),
    "balance_sensitivity": (1.0, 50.0),
    "rebalance_horizon_days": (1, 365),
    "rebalance_safety": (0.0, 1.0),
    "close_min_age_days": (1, 3650),
    "capital_return_pct": (0.0, 100.0),
    "close_horizon_days": (1, 3650),
    "inbound_discount": (0.0, 1.0),
}


_SWITCHES = frozenset({"level_trials"})  # the on/off settings


def _number(name: str, value: Any, want_int: bool) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProfileError(f"{name}: expected a number, got {value!r}")
    if want_int and not float(value).is_integer():
        raise ProfileError(f"{name}: expected a whole number, got {value!r}")
    lo, hi = _BOUNDS[name]
    if not lo <= value <= hi:
        raise ProfileError(f"{name}: must be between {lo:g} and {hi:g}, got {value!r}")
    return int(value) if want_int else float(value)


def _weights(value: Any, base: dict[str, float]) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ProfileError("weights: expected a mapping of heuristic name to weight")
    unknown = sorted(set(value) - set(HEURISTIC_NAMES))
    if unknown:
        raise ProfileError(
            f"weights: unknown heuristic {', '.join(unknown)}; known: {', '.join(HEURISTIC_NAMES)}"
        )
    merged = dict(base)
    for name, w in value.items():
        if isinstance(w, bool) or not isinstance(w, int | float) or not 0 <= w <= 10:
            raise ProfileError(f"weights.{name}: must be a number between 0 and 10, got {w!r}")
        merged[name] = float(w)
    if sum(merged.values()) <= 0:
        raise ProfileError("weights: at least one weight must be above 0")
    return merged


def profile_from_dict(data: Any) -> Profile:
    """A profile from plain data: {"base": "balanced", "name": ..., field: value, ...}.
    Fields left out come from the base profile (the one named by `base` or `name`)."""
    if not isinstance(data, dict):
        raise ProfileError("a profile must be a mapping of settings")
    base_name = data.get("base") or data.get("name") or "balanced"
    if base_name not in BUILTIN:
        if "base" in data:
            raise ProfileError(f"base: unknown profile {base_name!r}; known: {', '.join(BUILTIN)}")
        base_name = "balanced"
    base = BUILTIN[base_name]
    known = {f.name: f for f in fields(Profile)}
    unknown = sorted(set(data) - set(known) - {"base"})
    if unknown:
        raise ProfileError(f"unknown setting {', '.join(unknown)}")
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key == "base":
            continue
        if key == "name":
            if not isinstance(value, str) or not 1 <= len(value) <= 40:
                raise ProfileError("name: expected a text of 1 to 40 characters")
            changes["name"] = value
        elif key == "weights":
            changes["weights"] = _weights(value, base.weights)
        elif key in _SWITCHES:
            if not isinstance(value, bool):
                raise ProfileError(f"{key}: expected true or false, got {value!r}")
            changes[key] = value
        else:
            changes[key] = _number(key, value, isinstance(getattr(base, key), int))
    profile = replace(base, **changes)
    _check_consistency(profile)
    return profile


def _check_consistency(p: Profile) -> None:
    if not p.low_ratio < p.target_ratio < p.high_ratio:
        raise ProfileError("ratios: need low_ratio < target_ratio < high_ratio")
    if p.min_fee_ppm > p.max_fee_ppm:
        raise ProfileError("min_fee_ppm must not exceed max_fee_ppm")


# -- a small YAML form ------------------------------------------------------------------
# PyYAML is not part of LNbits' environment, so profiles are written in (and read from) a
# plain subset: "key: value" lines, one nested level for weights, '#' comments.


def profile_to_yaml(p: Profile) -> str:
    lines = [f"# Daznode decision profile (base: {p.name})"]
    # Floats as repr (":g" kept 6 digits, so edited values did not read back exactly); text
    # quoted (a name such as "2025" or "nan" would read back as a number).
    for key, value in p.to_dict().items():
        if key == "weights":
            lines.append("weights:")
            lines += [f"  {k}: {v!r}" for k, v in value.items()]
        elif isinstance(value, str):
            lines.append(f'{key}: "{value}"')
        elif isinstance(value, bool):
            lines.append(f"{key}: {'true' if value else 'false'}")
        else:
            lines.append(f"{key}: {value!r}" if isinstance(value, float) else f"{key}: {value}")
    return "\n".join(lines) + "\n"


def _scalar(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def profile_from_yaml(text: str) -> Profile:
    data: dict[str, Any] = {}
    nested: dict[str, Any] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        if ":" not in line:
            raise ProfileError(f"line {number}: expected 'key: value', got {raw.strip()!r}")
        key, _, value = line.strip().partition(":")
        indented = line[0] in " \t"
        if indented:
            if nested is None:
                raise ProfileError(f"line {number}: indented line outside a mapping")
            nested[key.strip()] = _scalar(value)
            continue
        if value.strip():
            data[key.strip()] = _scalar(value)
            nested = None
        else:
            nested = data.setdefault(key.strip(), {})
    return profile_from_dict(data)
