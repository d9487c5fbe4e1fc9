"""Python baselines for scripts/bench_process.ts (Process(noop).start()+join()) and for
scripts/bench_queue.ts (mp.Queue throughput, mp.Pipe round trip).

    python3 scripts/bench_python.py [--rounds=5] [--reps=4] [--warmup=2] [--gap=10] [--only=start,queue]
        [--queue-rounds=3] [--queue-warmup=1] [--small=200000] [--big=20000] [--size=10240]
        [--trips=10000] [--trip-warmup=1000]

--rounds, when given, sets --queue-rounds too (scripts/bench.mjs passes one --rounds to every program).

Same method as bench_process.ts: a warm-up (which also starts the forkserver), then
`rounds` rounds in which every metric runs `reps` times in a row, the order rotating
each round. A sample is the wall time from constructing the Process to the return of
join(). Python's own raw primitives are measured too, for Python's own ratio:
subprocess.run([python3, empty script]) (what "spawn" launches) and os.fork() +
waitpid (what "fork" does). Prints `##RESULT {json}` lines like bench_process.ts, with
`col` = python-spawn / python-forkserver / python-fork.

Queue and pipe (col `python`, the default start method; its start-up is not measured), as
bench_queue.ts measures polyproc: a producer child puts `small` ints (then `big` copies of one
`size`-byte bytes object) on a `ctx.Queue()` and the parent gets them; items/s (MiB/s) from the
first item received to the last. Pipe: the parent sends an int on a duplex `ctx.Pipe()` and
receives an echo child's reply; after `trip-warmup` round trips, the mean of `trips`, in µs.
Each sample has a fresh child; `queue-warmup` rounds with a tenth of the work, then `queue-rounds`
rounds with a rotating order; a result is the median of the rounds. These results carry `unit`, `better`, `median`,
`min`, `max` and `round_values` instead of the `*_ms` fields.
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


def produce_ints(q, n):
    for i in range(n):
        q.put(i)


def produce_bytes(q, n, size):
    item = b"x" * size
    for _ in range(n):
        q.put(item)


def echo(conn):
    while True:
        m = conn.recv()
        if m is None:
            break
        conn.send(m)
    conn.close()


def mp_queue(ctx, kind, opts):
    def run():
        n = opts["small"] if kind == "ints" else opts["big"]
        q = ctx.Queue()
        args = (q, n) if kind == "ints" else (q, n, opts["size"])
        p = ctx.Process(target=produce_ints if kind == "ints" else produce_bytes, args=args)
        p.start()
        q.get()
        t0 = time.perf_counter()
        last = None
        for _ in range(n - 1):
            last = q.get()
        dt = time.perf_counter() - t0
        p.join()
        if p.exitcode != 0 or (last != n - 1 if kind == "ints" else len(last) != opts["size"]):
            raise RuntimeError(f"mp.Queue {kind}: bad child exit {p.exitcode} or last item")
        q.close()
        q.join_thread()
        return (n - 1) / dt if kind == "ints" else (n - 1) * opts["size"] / (1024 * 1024) / dt
    return run


def mp_pipe(ctx, opts):
    def run():
        a, b = ctx.Pipe()
        p = ctx.Process(target=echo, args=(b,))
        p.start()
        b.close()
        for i in range(opts["trip-warmup"]):
            a.send(i)
            if a.recv() != i:
                raise RuntimeError("mp.Pipe: wrong echo")
        t0 = time.perf_counter()
        for i in range(opts["trips"]):
            a.send(i)
            a.recv()
        us = (time.perf_counter() - t0) * 1e6 / opts["trips"]
        a.send(None)
        p.join()
        a.close()
        return us
    return run


def queue_metrics(opts):
    """bench_queue.ts's Python anchors; prints their ##RESULT lines."""
    ctx = mp.get_context()
    method = ctx.get_start_method()
    metrics = [  # (id, label, unit, better, run)
        ("q_small.python", f"mp.Queue {opts['small']} small ints, child → parent ({method})", "items/s", "higher",
         mp_queue(ctx, "ints", opts)),
        ("q_bytes.python", f"mp.Queue {opts['big']} × {opts['size']} B bytes, child → parent ({method})", "MiB/s",
         "higher", mp_queue(ctx, "bytes", opts)),
        ("pipe_rt.python", f"mp.Pipe round trip with an echo child, mean of {opts['trips']} ({method})", "µs",
         "lower", mp_pipe(ctx, opts)),
    ]
    wall = time.perf_counter()
    full = {k: opts[k] for k in ("small", "big", "trips")}
    for _ in range(opts["queue-warmup"]):  # with a tenth of the work, as bench_queue.ts
        opts.update({k: v // 10 for k, v in full.items()})
        for m in metrics:
            m[4]()
        opts.update(full)
    values = [[] for _ in metrics]
    for r in range(opts["queue-rounds"]):
        for k in range(len(metrics)):
            i = (k + r) % len(metrics)
            values[i].append(metrics[i][4]())
    print(f"\nCPython {sys.version.split()[0]} queue/pipe ({method}): {opts['queue-rounds']} rounds after "
          f"{opts['queue-warmup']} warm-up, {time.perf_counter() - wall:.1f} s")
    r4 = lambda x: float(f"{x:.4g}")
    for (mid, label, unit, better, _), vs in zip(metrics, values):
        med = statistics.median(vs)
        print("##RESULT " + json.dumps({
            "id": mid, "runtime": "python", "col": "python", "label": label, "unit": unit, "better": better,
            "median": r4(med), "min": r4(min(vs)), "max": r4(max(vs)), "n": len(vs),
            "round_values": [r4(v) for v in vs],
        }, ensure_ascii=False))
        print(f"  {label:<70} {med:10.1f} {unit}  ({min(vs):.1f}–{max(vs):.1f})")


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
    opts = {"rounds": 5, "reps": 4, "warmup": 2, "gap": 10, "queue-rounds": 3, "queue-warmup": 1,
            "small": 200_000, "big": 20_000, "size": 10_240, "trips": 10_000, "trip-warmup": 1_000}
    only = {"start", "queue"}
    for arg in sys.argv[1:]:
        key, _, value = arg.lstrip("-").partition("=")
        if key == "only":
            only = set(value.split(","))
            continue
        if key not in opts or not value.isdigit():
            sys.exit(f"bench_python: unknown argument {arg}")
        opts[key] = int(value)
        if key == "rounds":
            opts["queue-rounds"] = int(value)
    if "queue" in only:
        queue_metrics(opts)
    if "start" not in only:
        reap_helpers()
        return

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
