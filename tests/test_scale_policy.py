"""The pure decision function and the forecaster: the rules every caller (tick, apply, status, simulate) shares."""

from __future__ import annotations

import math

import pytest

from echoops.core.scale.forecast import BETA, PHI, Forecaster, parse_sample
from echoops.core.scale.policy import PolicyConfig, decide

T0 = 1_790_000_000.0
CFG = PolicyConfig(min_workers=1, max_workers=6, cooldown_s=600.0, horizon_min=30.0, p95_target_ms=800.0)


def _decide(**kw):
    args = {"backlog": 0, "forecast_arrivals": 0, "jobs_per_worker_min": 20.0, "actual": 2, "cfg": CFG, "now": T0}
    args.update(kw)
    return decide(**args)


def test_drains_backlog_plus_forecast_within_horizon_and_names_the_numbers():
    # (420 + 310) / (29 * 30) = 0.84 -> 1 worker; at 5 jobs/min: 730/150 = 4.87 -> 5 workers
    d = _decide(backlog=420, forecast_arrivals=310, jobs_per_worker_min=5.0)
    assert (d.desired, d.target, d.action) == (5, 5, "scale_up")
    assert d.reason == "backlog 420 + forecast 310 in 30m needs 5 workers at 5 jobs/min each; 2 -> 5"


def test_bounds_clamp_both_ways():
    up = _decide(backlog=100_000, forecast_arrivals=0)
    assert (up.desired, up.target) == (6, 6)
    assert "capped at SCALE_MAX 6" in up.reason
    down = _decide(backlog=0, forecast_arrivals=0, actual=3)
    assert (down.desired, down.recommended) == (1, 1)
    assert "raised to SCALE_MIN 1" in down.reason


def test_hpa_tolerance_keeps_current_within_ten_percent():
    # need = 1260 / 600 = 2.1 workers: within 10% of 2 -> keep 2 instead of ceil -> 3
    keep = _decide(forecast_arrivals=1260, actual=2)
    assert (keep.desired, keep.action) == (2, "hold")
    assert "within 10% of 2: keep 2" in keep.reason
    # need = 2.2 workers: outside the band -> 3
    assert _decide(forecast_arrivals=1320, actual=2).desired == 3


def test_p95_over_target_adds_one_worker():
    d = _decide(forecast_arrivals=1200, p95_ms=950.0)  # need exactly 2 -> 2 + 1
    assert d.desired == 3
    assert "p95 950ms > 800ms target: +1" in d.reason
    assert _decide(forecast_arrivals=1200, p95_ms=700.0).desired == 2


def test_scale_down_only_to_highest_recommendation_in_cooldown_window():
    recent = [(T0 - 700, 6), (T0 - 500, 5), (T0 - 100, 3)]  # the 6 is outside the 10 min window
    d = _decide(actual=6, recent=recent)
    assert (d.recommended, d.desired, d.target) == (1, 5, 5)
    assert "scale-down held at 5 (highest in last 10m)" in d.reason


def test_cooldown_blocks_both_directions_and_reports_remaining():
    up = _decide(backlog=3000, last_change_at=T0 - 240)
    assert (up.desired, up.target, up.held_by, up.cooldown_remaining_s) == (5, 2, "cooldown", 360)
    assert up.reason.endswith("cooldown 6m left, stays 2")
    down = _decide(actual=4, last_change_at=T0 - 240)
    assert (down.target, down.held_by) == (4, "cooldown")
    after = _decide(backlog=3000, last_change_at=T0 - 600)
    assert (after.target, after.cooldown_remaining_s) == (5, 0)


def test_gate_blocks_scale_up_only():
    up = _decide(backlog=3000, gate=True)
    assert (up.desired, up.target, up.held_by, up.action) == (5, 2, "gate", "hold")
    assert "deploy gate set: no scale-up, stays 2" in up.reason
    down = _decide(actual=5, gate=True)
    assert (down.target, down.action) == (1, "scale_down")


def test_holt_follows_a_linear_ramp():
    fc = Forecaster(method="holt")
    for i in range(121):  # arrivals rise 1 job/min every minute: rate(t) = 10 + t
        fc.observe(T0 + 60 * i, 0, 2, 10 + i if i else None, None, 20.0)
    assert fc.rate_now() == pytest.approx(130, abs=3)
    assert fc.trend == pytest.approx(1.0, abs=0.05)
    assert fc.rate_in(30) == pytest.approx(160, abs=4)
    # integral of 130 + t over 30 min = 3900 + 450
    assert fc.arrivals_over(30) == pytest.approx(4350, rel=0.03)


def test_damped_trend_levels_off_where_holt_runs_on():
    """The same ramp through Gardner's damped trend: the trend is learnt (biased low, by design)
    and its pull on the forecast levels off at level + trend / ln(1/phi) instead of growing."""
    fc = Forecaster(method="damped")
    for i in range(121):
        fc.observe(T0 + 60 * i, 0, 2, 10 + i if i else None, None, 20.0)
    lam = -math.log(PHI)
    # steady state of b = beta x slope + (1 - beta) x phi x b for a slope of 1 job/min per minute
    assert fc.trend == pytest.approx(BETA / (1 - (1 - BETA) * PHI), rel=0.03)
    level, trend = fc.level, fc.trend
    assert fc.rate_in(30) == pytest.approx(level + trend * (1 - PHI**30) / lam)
    assert fc.rate_in(100_000) == pytest.approx(level + trend / lam)  # the asymptote
    holt = Forecaster(method="holt", level=level, trend=trend, seasonal=False)
    assert fc.arrivals_over(30) < holt.arrivals_over(30)
    # the integral of the damped line, against a fine Riemann sum
    riemann = sum(fc.rate_in((k + 0.5) / 100) for k in range(3000)) / 100
    assert fc.arrivals_over(30) == pytest.approx(riemann, rel=1e-4)


@pytest.mark.parametrize("method", ["holt", "damped"])
@pytest.mark.parametrize(("level", "trend"), [(20.0, -6.0), (-15.0, 4.0), (-5.0, -1.0), (30.0, 0.5), (1.0, -0.001)])
def test_forecast_integral_is_the_clipped_rate_curve(method, level, trend):
    """After a spike the trend can point below zero: the forecast counts only the positive part."""
    fc = Forecaster(method=method, level=level, trend=trend, seasonal=False)
    riemann = sum(max(0.0, level + trend * _mult(method, (k + 0.5) / 200)) for k in range(6000)) / 200
    assert fc.arrivals_over(30) == pytest.approx(riemann, rel=1e-3, abs=1e-3)


def _mult(method: str, u: float) -> float:
    return u if method == "holt" else (1 - PHI**u) / -math.log(PHI)


def test_after_a_spike_damped_forecasts_more_of_the_load_that_stays():
    """20 jobs/min, 15 minutes at 250, then 20 again: 15 minutes after the spike Holt's falling
    trend forecasts 15 jobs for the next 30 minutes while 600 will come; the damped trend, whose
    long-run rate may not fall below zero, forecasts most of them."""
    out = {}
    for method in ("holt", "damped"):
        fc = Forecaster(method=method, seasonal=False)
        rates = [20] * 60 + [250] * 15 + [20] * 15
        for i, r in enumerate(rates):
            fc.observe(T0 + 60 * i, 0, 2, r if i else None, None, 20.0)
        out[method] = fc.arrivals_over(30)
    assert out["holt"] == pytest.approx(15.4, abs=0.1)
    assert out["damped"] == pytest.approx(451.0, abs=0.5)


def test_arrivals_derived_from_depth_and_completions_and_throughput_only_when_busy():
    fc = Forecaster()
    fc.observe(T0, 100, 2, None, None, 20.0)
    fc.observe(T0 + 60, 130, 2, None, 50, 20.0)  # depth +30, 50 completed -> 80 arrived; busy
    assert fc.last_rate == 80
    assert fc.throughput(20.0) == (25.0, "observed")
    fc.observe(T0 + 120, 0, 2, None, 10, 20.0)  # drained: 10 jobs/min, 5 per worker is not capacity
    assert fc.last_rate == 0  # 0 - 130 + 10 < 0 -> clipped at 0
    assert fc.throughput(20.0) == (25.0, "observed")
    assert Forecaster().throughput(20.0) == (20.0, "fallback")
    assert not fc.observe(T0 + 60, 5, 2, None, None, 20.0)  # out of order: ignored


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ({"ts": "nope", "depth": 1, "workers": 1}, "bad_ts"),
        ({"ts": T0, "workers": 1}, "missing_depth"),
        ({"ts": T0, "depth": -1, "workers": 1}, "bad_depth"),
        ({"ts": T0, "depth": 1.5, "workers": 1}, "bad_depth"),
        ({"ts": T0, "depth": 1, "workers": "2"}, "bad_workers"),
        ({"ts": T0, "depth": 1, "workers": True}, "bad_workers"),
        ({"ts": T0, "depth": 1, "workers": 1, "arrivals": float("inf")}, "bad_arrivals"),
        ({"ts": T0, "depth": 1, "workers": 1, "completed": -3}, "bad_completed"),
    ],
)
def test_bad_samples_are_named(line, why):
    assert parse_sample(line) == why


def test_good_sample_parses():
    assert parse_sample({"ts": T0, "depth": 4.0, "workers": 2, "arrivals": 7}) == (T0, 4, 2, 7, None)
