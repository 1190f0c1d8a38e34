"""Timing shared by the benches' Python peers."""
import time


def best_ms(fun, rounds):
    """The best of `rounds` calls of `fun`, in ms, after a warm-up call."""
    fun()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fun()
        best = min(best, (time.perf_counter() - t0) * 1000)
    return best
