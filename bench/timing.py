"""Timing helpers: calibrated samples, interleaved A/B comparisons and robust summaries.

A comparison alternates the two contenders within every repetition (A then B, then B then A
next time), so drift in the machine's speed (other processes, frequency changes) hits both
alike; it reports the median of the per-repetition ratios A/B with its interquartile range.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

Fn = Callable[[], object]


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Summary:
    """Median and quartiles of a sample of durations, in milliseconds."""

    median_ms: float
    p25_ms: float
    p75_ms: float
    n: int

    @classmethod
    def of(cls, seconds: list[float]) -> Summary:
        ms = sorted(s * 1e3 for s in seconds)
        return cls(statistics.median(ms), _quantile(ms, 0.25), _quantile(ms, 0.75), len(ms))


def _quantile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated quantile of an already sorted list."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def time_calls(fn: Fn, calls: int, sync: Fn = _nothing) -> float:
    """Seconds per call of `fn`, over `calls` back-to-back calls."""
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    sync()
    return (time.perf_counter() - start) / calls


def calibrate(fns: list[Fn], min_sample_s: float, sync: Fn = _nothing, max_calls: int = 1000) -> int:
    """Calls per sample so that one sample of the slowest of `fns` lasts at least `min_sample_s`."""
    slowest = max(time_calls(fn, 1, sync) for fn in fns)
    return max(1, min(max_calls, round(min_sample_s / max(slowest, 1e-9) + 0.5)))


def repeat(fn: Fn, reps: int, *, warmup: int = 1, min_sample_s: float = 0.0, sync: Fn = _nothing) -> Summary:
    """Summary of `reps` samples of `fn` after `warmup` calls."""
    for _ in range(warmup):
        fn()
    calls = calibrate([fn], min_sample_s, sync) if min_sample_s else 1
    return Summary.of([time_calls(fn, calls, sync) for _ in range(reps)])


@dataclass(frozen=True)
class Comparison:
    """A against B, interleaved: per-call times and the median of per-repetition ratios A/B."""

    a_time: Summary
    b_time: Summary
    ratio: float  # median of a_i / b_i
    ratio_p25: float
    ratio_p75: float
    reps: int
    calls_per_sample: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def compare(
    a: Fn,
    b: Fn,
    *,
    reps: int,
    warmup: int = 2,
    min_sample_s: float = 0.05,
    sync: Fn = _nothing,
) -> Comparison:
    """Time `a` and `b` alternately, `reps` times each, after `warmup` calls of each."""
    for _ in range(warmup):
        a()
        b()
    calls = calibrate([a, b], min_sample_s, sync)
    times_a: list[float] = []
    times_b: list[float] = []
    for i in range(reps):
        gc.collect()
        if i % 2 == 0:
            times_a.append(time_calls(a, calls, sync))
            times_b.append(time_calls(b, calls, sync))
        else:
            times_b.append(time_calls(b, calls, sync))
            times_a.append(time_calls(a, calls, sync))
    ratios = sorted(x / y for x, y in zip(times_a, times_b, strict=True))
    return Comparison(
        a_time=Summary.of(times_a),
        b_time=Summary.of(times_b),
        ratio=statistics.median(ratios),
        ratio_p25=_quantile(ratios, 0.25),
        ratio_p75=_quantile(ratios, 0.75),
        reps=reps,
        calls_per_sample=calls,
    )
