# Reference values for xtask/src/stats.rs, computed independently: Mann-Whitney with
# SciPy, the bootstrap with numpy over a re-implementation of the same splitmix64
# stream. Writes fixtures.json next to this file.
import json, pathlib
import numpy as np
from scipy.stats import mannwhitneyu

M = (1 << 64) - 1
def splitmix(state):
    while True:
        state = (state + 0x9e3779b97f4a7c15) & M
        z = state
        z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M
        z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M
        yield z ^ (z >> 31)

def boot(base, new, rounds, seed):
    g = splitmix(seed)
    est = []
    for _ in range(rounds):
        rb = [base[next(g) % len(base)] for _ in base]
        rn = [new[next(g) % len(new)] for _ in new]
        est.append((np.median(rn) / np.median(rb) - 1) * 100)
    return (np.median(new) / np.median(base) - 1) * 100, np.percentile(est, 2.5), np.percentile(est, 97.5)

rng = np.random.default_rng(7)
cases = [
    ("identical", [10, 11, 12, 13, 14], [10, 11, 12, 13, 14]),
    ("separated-small", [1, 2, 3], [4, 5, 6]),
    ("separated-9", list(rng.normal(100, 2, 9)), list(rng.normal(90, 2, 9))),
    ("overlap-9", list(rng.normal(100, 5, 9)), list(rng.normal(98, 5, 9))),
    ("ties", [1, 2, 2, 3, 3, 3, 4, 5, 5], [2, 3, 3, 4, 4, 5, 6, 6, 7]),
    ("unequal-5-12", list(rng.normal(50, 3, 5)), list(rng.normal(53, 3, 12))),
    ("tcg-like-noise", list(rng.normal(1000, 50, 9)), list(rng.normal(1010, 50, 9))),
    ("big-10-10", list(rng.normal(0.5, 0.01, 10)), list(rng.normal(0.49, 0.01, 10))),
]
out = []
for name, x, y in cases:
    x = [float(v) for v in x]; y = [float(v) for v in y]
    r = mannwhitneyu(x, y, alternative="two-sided")
    ch, lo, hi = boot(x, y, 2000, 42)
    out.append({"name": name, "x": x, "y": y, "u": float(r.statistic), "p": float(r.pvalue),
                "change": float(ch), "ci_lo": float(lo), "ci_hi": float(hi)})
path = pathlib.Path(__file__).with_name("fixtures.json")
path.write_text(json.dumps({"scipy": __import__("scipy").__version__, "cases": out}, indent=1) + "\n")
