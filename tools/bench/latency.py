"""Latency histograms of the load client: sparse, logarithmic buckets (2 % wide), so 10,000
connections' samples merge across processes in a few hundred numbers.
"""

import math

HIST_BASE = 1.02  # bucket i holds [1.02**i, 1.02**(i+1)) microseconds


def histogram(latencies_s):
    """Sparse latency histogram {bucket: count}, bucket = floor(log(us) / log(HIST_BASE))."""
    hist = {}
    inv = 1.0 / math.log(HIST_BASE)
    log = math.log
    for s in latencies_s:
        us = s * 1e6
        b = int(log(us) * inv) if us >= 1.0 else 0
        hist[b] = hist.get(b, 0) + 1
    return hist


def percentile_ms(hist, q):
    """The q-quantile (0..1) of a merged histogram, in ms (bucket midpoint); None if empty."""
    total = sum(hist.values())
    if not total:
        return None
    rank = q * total
    seen = 0
    for b in sorted(hist):
        seen += hist[b]
        if seen >= rank:
            return round(HIST_BASE ** (b + 0.5) / 1000.0, 3)
    return None
