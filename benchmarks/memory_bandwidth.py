"""This machine's single-thread copy and add bandwidth (numpy), the yardstick for collectives.

    python benchmarks/memory_bandwidth.py
"""

import statistics
import time

import numpy as np


def best_of(fn, reps=15):
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


for nbytes in (256 << 10, 1 << 20, 16 << 20, 64 << 20):
    a = np.ones(nbytes // 4, np.float32)
    b = np.ones_like(a)
    c = np.empty_like(a)
    copy = best_of(lambda: np.copyto(c, a))
    add = best_of(lambda: np.add(a, b, out=c))
    print(f"{nbytes >> 10:>8} KiB  memcpy {nbytes / copy / 1e9:6.1f} GB/s   float32 a+b {nbytes / add / 1e9:6.1f} GB/s (of output)")
