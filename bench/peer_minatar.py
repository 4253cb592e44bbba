#!/usr/bin/env python3
"""The Python peer of `frugal rl bench-env`: runs one MinAtar game (imported from a MinAtar checkout
given with --minatar-src; the project never vendors it) with a uniformly random policy over all six
actions until N episodes end, calling act() and then state() on every step as frugal's batch does
(a step writes the next observation), with MinAtar's defaults (sticky actions 0.1, difficulty
ramping). Prints one JSON object with the fields of bench-env's JSON: steps_per_second is steps over
this process's CPU seconds (time.process_time), as frugal's is over its stepping thread's.

MinAtar's environment.py imports matplotlib and seaborn inside try/except for display only; when
they are absent it logs a warning and works, so nothing is stubbed."""
import argparse
import json
import math
import random
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minatar-src", required=True)
    ap.add_argument("--env", required=True)
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    sys.path.insert(0, a.minatar_src)
    import logging
    logging.disable(logging.WARNING)  # the display-only import warning
    from minatar import Environment

    env = Environment(a.env)
    env.seed(a.seed)
    policy = random.Random(a.seed)
    n_actions = env.num_actions()
    rets, lens, steps = [], [], 0
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(a.episodes):
        env.reset()
        env.state()
        g, n, done = 0.0, 0, False
        while not done:
            r, done = env.act(policy.randrange(n_actions))
            env.state()
            g += r
            n += 1
        rets.append(g)
        lens.append(n)
        steps += n
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0

    def mean_sd(x):
        m = sum(x) / len(x)
        sd = math.sqrt(sum((v - m) ** 2 for v in x) / (len(x) - 1)) if len(x) > 1 else 0.0
        return m, sd

    rm, rsd = mean_sd(rets)
    lm, lsd = mean_sd(lens)
    print(json.dumps({"env": a.env, "policy": "random", "episodes": a.episodes, "seed": a.seed, "steps": steps,
                      "cpu_seconds": cpu, "wall_seconds": wall, "steps_per_second": steps / cpu if cpu > 0 else 0.0,
                      "return_mean": rm, "return_sd": rsd, "length_mean": lm, "length_sd": lsd}))


if __name__ == "__main__":
    main()
