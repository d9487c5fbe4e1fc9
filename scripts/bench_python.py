"""Python baseline for scripts/bench_process.ts: multiprocessing Process(noop).start()+join().

    python3 scripts/bench_python.py [--rounds=5] [--reps=4] [--warmup=2] [--gap=10]

Same method as bench_process.ts: a warm-up (which also starts the forkserver), then
`rounds` rounds in which every metric runs `reps` times in a row, the order rotating
each round. A sample is the wall time from constructing the Process to the return of
join(). Python's own raw primitives are measured too, for Python's own ratio:
subprocess.run([python3, empty script]) (what "spawn" launches) and os.fork() +
waitpid (what "fork" does). Prints `##RESULT {json}` lines like bench_process.ts, with
`col` = python-spawn / python-forkserver / python-fork.
"""
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time


def noop():
    pass


def mp_process(ctx):
    def run():
        p = ctx.Process(target=noop)
        p.start()
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"child exited with {p.exitcode}")
    return run


def raw_subprocess(script):
    def run():
        subprocess.run([sys.executable, script], check=True)
    return run


def raw_fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def adopt_orphans():
    """Become a child subreaper (Linux), so that the forkserver and resource tracker,
    which multiprocessing does not wait for, are reaped here and their CPU time counts
    as this program's (scripts/bench.mjs subtracts it from the machine's busy time)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception:
        pass


def reap_helpers():
    from multiprocessing import forkserver, resource_tracker
    for stop in (forkserver._forkserver._stop, resource_tracker._resource_tracker._stop):
        try:
            stop()
        except Exception:
            pass
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break


def main():
    adopt_orphans()
    opts = {"rounds": 5, "reps": 4, "warmup": 2, "gap": 10}
    for arg in sys.argv[1:]:
        key, _, value = arg.lstrip("-").partition("=")
        if key not in opts or not value:
            sys.exit(f"bench_python: unknown argument {arg}")
        opts[key] = int(value)

    fd, empty = tempfile.mkstemp(suffix=".py", prefix="polyproc-bench-")
    os.close(fd)
    metrics = []  # (id, col, label, run)
    for method in ("spawn", "forkserver", "fork"):
        metrics.append(("polyproc.process", f"python-{method}",
                        f"multiprocessing Process(noop) start+join, {method}", mp_process(mp.get_context(method))))
    metrics.append(("raw.spawn", "python-spawn", "subprocess.run([python3, empty.py])", raw_subprocess(empty)))
    metrics.append(("raw.spawn", "python-fork", "os.fork() + os._exit(0) + waitpid", raw_fork))

    def sample(run):
        t0 = time.perf_counter()
        run()
        return (time.perf_counter() - t0) * 1000

    gap = opts["gap"] / 1000
    wall = time.perf_counter()
    try:
        for _ in range(opts["warmup"]):
            for m in metrics:
                sample(m[3])
                time.sleep(gap)
        rounds = {i: [] for i in range(len(metrics))}
        for r in range(opts["rounds"]):
            for k in range(len(metrics)):
                i = (k + r) % len(metrics)
                xs = []
                for _ in range(opts["reps"]):
                    xs.append(sample(metrics[i][3]))
                    time.sleep(gap)
                rounds[i].append(xs)
    finally:
        os.unlink(empty)
        reap_helpers()

    r2 = lambda x: round(x, 2)
    print(f"\nCPython {sys.version.split()[0]}: {opts['rounds']} rounds x {opts['reps']} reps after "
          f"{opts['warmup']} warm-up, {time.perf_counter() - wall:.1f} s")
    for i, (mid, col, label, _) in enumerate(metrics):
        all_ = [x for xs in rounds[i] for x in xs]
        med = statistics.median(all_)
        print("##RESULT " + json.dumps({
            "id": mid, "runtime": "python", "col": col, "label": label,
            "median_ms": r2(med), "min_ms": r2(min(all_)), "max_ms": r2(max(all_)), "n": len(all_),
            "round_medians_ms": [r2(statistics.median(xs)) for xs in rounds[i]],
        }, ensure_ascii=False))
        print(f"  {label:<55} {med:7.2f} ms  ({min(all_):.2f}–{max(all_):.2f})")


if __name__ == "__main__":
    main()
