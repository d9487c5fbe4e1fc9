"""Python baselines for scripts/bench_process.ts (Process(noop).start()+join()), for
scripts/bench_queue.ts (mp.Queue throughput, mp.Pipe round trip) and for scripts/bench_pool.ts
(Pool(2): map, map chunksize=1, apply_async, CPU speedup).

    python3 scripts/bench_python.py [--rounds=5] [--reps=4] [--warmup=2] [--gap=10] [--only=start,queue,pool,subprocess,manager,sync]
        [--queue-rounds=3] [--queue-warmup=1] [--small=200000] [--big=20000] [--size=10240]
        [--trips=10000] [--trip-warmup=1000]
        [--pool-rounds=3] [--pool-warmup=1] [--tasks=100000] [--apply-tasks=20000] [--pool-trips=2000]
        [--pool-trip-warmup=500] [--cpu-tasks=40] [--cpu-ms=10]

--rounds, when given, sets --queue-rounds and --pool-rounds too (scripts/bench.mjs passes one --rounds
to every program).

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

Pool (col `python`, ids pool_*.python*, the same units), as bench_pool.ts measures polyproc: one
`ctx.Pool(2)` of the default start method, made and warmed (5,000 tasks, every kind of call) before
timing. `pool.map(sq, range(tasks))` at the default chunksize and at chunksize=1 (tasks/s);
`apply_async(sq, (i,))` for `apply-tasks` tasks, then every `.get()` (tasks/s; fewer tasks than the
others because it is slow, ~7 s per 100k); `apply_async(sq, (1,)).get()` round trip, the mean of
`pool-trips` after `pool-trip-warmup` (µs); CPU speedup of `pool.map(cpu, [n] * cpu-tasks)` against
the same calls serially here, cpu(n) = sum(i*i for i in range(n)) calibrated to ~`cpu-ms` ms, ABA (×).
`pool-warmup` rounds with a tenth of the work, then `pool-rounds` rounds in a rotating order.
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


def sq(x):
    return x * x


def cpu(n):
    return sum(i * i for i in range(n))


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
    print_rates([m[:4] for m in metrics], values)


def print_rates(metrics, values, digits=1):
    """One ##RESULT line (and a readable one) per (id, label, unit, better) and its round values."""
    r4 = lambda x: float(f"{x:.4g}")
    for (mid, label, unit, better), vs in zip(metrics, values):
        med = statistics.median(vs)
        print("##RESULT " + json.dumps({
            "id": mid, "runtime": "python", "col": "python", "label": label, "unit": unit, "better": better,
            "median": r4(med), "min": r4(min(vs)), "max": r4(max(vs)), "n": len(vs),
            "round_values": [r4(v) for v in vs],
        }, ensure_ascii=False))
        print(f"  {label:<70} {med:10.{digits}f} {unit}  ({min(vs):.{digits}f}–{max(vs):.{digits}f})")


MANAGER_WARM = 2000  # bench_manager.ts's WARM: untimed calls before the timed ones, as there


def manager_append(shared, n, out):
    for _ in range(MANAGER_WARM):
        shared.append(-1)
    t0 = time.perf_counter()
    for i in range(n):
        shared.append(i)
    out.value = (time.perf_counter() - t0) * 1000


def manager_dict(d, n, out):
    for i in range(MANAGER_WARM // 2):
        d["k"] = i
        d["k"]
    t0 = time.perf_counter()
    for i in range(n):
        d["k"] = i
        d["k"]
    out.value = (time.perf_counter() - t0) * 1000


MANAGER_MANY = 10  # bench_manager.ts's MANY: children appending at once


def manager_many(shared, n, ready, times):
    for _ in range(MANAGER_WARM // 10):
        shared.append(-1)
    ready.wait()
    t0 = time.time()
    for i in range(n):
        shared.append(i)
    times.extend([t0, time.time()])


def sync_contend(v, barrier, times, slot, n):
    """bench_sync.ts's contend(): wait for the other child, then n increments of v under its lock."""
    lock = v.get_lock()
    barrier.wait(60)
    t0 = time.perf_counter()
    for _ in range(n):
        with lock:
            v.value += 1
    times[slot] = (time.perf_counter() - t0) * 1000


def sync_metrics(opts):
    """bench_sync.ts's anchors (col `python`): an uncontended `with v.get_lock(): v.value += 1` in this
    process, µs per iteration; and 2 processes contending on one Value's lock, increments per second."""
    ctx = mp.get_context()
    method = ctx.get_start_method()

    def uncontended(n):
        v = ctx.Value("i", 0)
        t0 = time.perf_counter()
        for _ in range(n):
            with v.get_lock():
                v.value += 1
        return (time.perf_counter() - t0) * 1e6 / n

    def contended(n):
        v = ctx.Value("i", 0)
        barrier = ctx.Barrier(2)
        times = ctx.Array("d", 2, lock=False)
        ps = [ctx.Process(target=sync_contend, args=(v, barrier, times, slot, n)) for slot in (0, 1)]
        for p in ps:
            p.start()
        for p in ps:
            p.join()
        if v.value != 2 * n:
            raise RuntimeError("increments were lost")
        return 2 * n / max(times) * 1000

    metrics = [  # (id, label, unit, better, run, n)
        ("sync_lock.python", f"{opts['sync-n']} x uncontended `with v.get_lock(): v.value += 1` ({method})",
         "µs", "lower", uncontended, opts["sync-n"]),
        ("sync_contend.python", f"2 processes x {opts['sync-contended']} increments of one Value under its lock ({method})",
         "increments/s", "higher", contended, opts["sync-contended"]),
    ]
    for _ in range(opts["queue-warmup"]):
        for m in metrics:
            m[4](m[5] // 10)
    values = [[] for _ in metrics]
    for r in range(opts["queue-rounds"]):
        for k in range(len(metrics)):
            i = (k + r) % len(metrics)
            values[i].append(metrics[i][4](metrics[i][5]))
    print_rates([m[:4] for m in metrics], values, digits=3)


def manager_metrics(opts):
    """bench_manager.ts's anchors: a Manager().list() appended to, and a Manager().dict() set and read,
    from one child that times itself (research/anchors-bench.md §6); col `python`."""
    ctx = mp.get_context()
    method = ctx.get_start_method()

    def run(kind, n):
        if kind == "many":
            return run_many(n)
        with ctx.Manager() as m:
            out = m.Value("d", 0.0)
            obj = m.list() if kind == "append" else m.dict()
            p = ctx.Process(target=manager_append if kind == "append" else manager_dict, args=(obj, n, out))
            p.start()
            p.join()
            return (n if kind == "append" else 2 * n) / out.value * 1000

    def run_many(n):
        each = -(-n // MANAGER_MANY)
        with ctx.Manager() as m:
            shared, times, ready = m.list(), m.list(), m.Barrier(MANAGER_MANY)
            ps = [ctx.Process(target=manager_many, args=(shared, each, ready, times)) for _ in range(MANAGER_MANY)]
            for p in ps:
                p.start()
            for p in ps:
                p.join()
            t = list(times)
            return MANAGER_MANY * each / (max(t[1::2]) - min(t[0::2]))

    metrics = [  # (id, label, unit, kind, n)
        ("mgr_append.python", f"Manager().list(): {opts['appends']} x shared.append(i) from one child ({method})",
         "appends/s", "append", opts["appends"]),
        ("mgr_dict.python", f"Manager().dict(): {opts['pairs']} x (d[k] = i, d[k]) from one child ({method})",
         "round trips/s", "dict", opts["pairs"]),
        ("mgr_many.python", f"Manager().list(): {MANAGER_MANY} children x {opts['appends'] // MANAGER_MANY} appends at once ({method})",
         "appends/s", "many", opts["appends"]),
    ]
    for _ in range(opts["queue-warmup"]):
        for m in metrics:
            run(m[3], m[4] // 10)
    values = [[] for _ in metrics]
    for r in range(opts["queue-rounds"]):
        for k in range(len(metrics)):
            i = (k + r) % len(metrics)
            values[i].append(run(metrics[i][3], metrics[i][4]))
    print_rates([(mid, label, unit, "higher") for mid, label, unit, _, _ in metrics], values)


def pool_metrics(opts):
    """bench_pool.ts's Python anchors; prints their ##RESULT lines."""
    ctx = mp.get_context()
    method = ctx.get_start_method()
    now = time.perf_counter

    # cpu(n) for ~cpu-ms ms here (as bench_pool.ts calibrates in its parent).
    n = 10_000
    while True:
        t0 = now()
        cpu(n)
        ms = (now() - t0) * 1000
        if ms > 20:
            guess = round(n * opts["cpu-ms"] / ms)
            times = []
            for _ in range(5):
                t0 = now()
                cpu(guess)
                times.append((now() - t0) * 1000)
            cpu_n = round(guess * opts["cpu-ms"] / statistics.median(times))
            break
        n *= 2
    task_ms = []

    def pool_map(chunksize):
        def run(pool):
            t0 = now()
            out = pool.map(sq, range(opts["tasks"]), chunksize)
            dt = now() - t0
            if out[-1] != (opts["tasks"] - 1) ** 2:
                raise RuntimeError("Pool.map: wrong result")
            return opts["tasks"] / dt
        return run

    def apply_async(pool):
        k = opts["apply-tasks"]
        t0 = now()
        rs = [pool.apply_async(sq, (i,)) for i in range(k)]
        out = [r.get() for r in rs]
        dt = now() - t0
        if out[-1] != (k - 1) ** 2:
            raise RuntimeError("apply_async: wrong result")
        return k / dt

    def round_trip(pool):
        for _ in range(opts["pool-trip-warmup"]):
            pool.apply_async(sq, (1,)).get()
        t0 = now()
        for _ in range(opts["pool-trips"]):
            pool.apply_async(sq, (1,)).get()
        return (now() - t0) * 1e6 / max(opts["pool-trips"], 1)

    def speedup(pool):
        ns = [cpu_n] * opts["cpu-tasks"]

        def serial():
            t0 = now()
            for x in ns:
                cpu(x)
            return now() - t0
        a = serial()
        t0 = now()
        pool.map(cpu, ns)
        b = now() - t0
        a2 = serial()
        task_ms.append((a + a2) / 2 / len(ns) * 1000)
        return (a + a2) / 2 / b

    metrics = [  # (id, label, unit, better, run)
        ("pool_map.python", f"Pool(2).map(sq, range({opts['tasks']})), default chunksize ({method})", "tasks/s",
         "higher", pool_map(None)),
        ("pool_submit.python", f"Pool(2).map(sq, range({opts['tasks']}), chunksize=1) ({method})", "tasks/s",
         "higher", pool_map(1)),
        ("pool_submit.python_apply", f"Pool(2): {opts['apply-tasks']} × apply_async(sq, (i,)), then every .get() "
         f"({method})", "tasks/s", "higher", apply_async),
        ("pool_rt.python", f"Pool(2): apply_async(sq, (1,)).get(), mean of {opts['pool-trips']} ({method})", "µs",
         "lower", round_trip),
        ("pool_cpu.python", f"Pool(2).map(cpu, {opts['cpu-tasks']} × ~{opts['cpu-ms']} ms) vs serial, ABA ({method})",
         "×", "higher", speedup),
    ]
    wall = now()
    work = ("tasks", "apply-tasks", "pool-trips", "cpu-tasks")
    full = {k: opts[k] for k in work}
    with ctx.Pool(2) as pool:
        # Warm the pool (not timed): 5,000 tasks of each kind, the round trip's warm-up, a few cpu tasks.
        opts.update({"tasks": 5_000, "apply-tasks": 5_000, "pool-trips": 0, "cpu-tasks": 4})
        for m in metrics:
            m[4](pool)
        opts.update({k: v // 10 for k, v in full.items()})
        for _ in range(opts["pool-warmup"]):
            for m in metrics:
                m[4](pool)
        opts.update(full)
        task_ms.clear()
        values = [[] for _ in metrics]
        for r in range(opts["pool-rounds"]):
            for k in range(len(metrics)):
                i = (k + r) % len(metrics)
                values[i].append(metrics[i][4](pool))
    print(f"\nCPython {sys.version.split()[0]} Pool ({method}): {opts['pool-rounds']} rounds after "
          f"{opts['pool-warmup']} warm-up, {now() - wall:.1f} s; cpu n = {cpu_n}, "
          f"{statistics.median(task_ms) if task_ms else float('nan'):.1f} ms per task in the serial runs (median)")
    r4 = lambda x: float(f"{x:.4g}")
    for (mid, label, unit, better, _), vs in zip(metrics, values):
        med = statistics.median(vs)
        extra = {"cpu_n": cpu_n} if mid == "pool_cpu.python" else {}
        print("##RESULT " + json.dumps({
            "id": mid, "runtime": "python", "col": "python", "label": label, "unit": unit, "better": better,
            "median": r4(med), "min": r4(min(vs)), "max": r4(max(vs)), "n": len(vs),
            "round_values": [r4(v) for v in vs], **extra,
        }, ensure_ascii=False))
        print(f"  {label:<75} {med:12.2f} {unit}  ({min(vs):.2f}–{max(vs):.2f})")


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


def subprocess_metrics(opts):
    """bench_subprocess.ts's anchor: subprocess.run(["true"]), spawn + wait, in ms (col `python`)."""
    samples = []
    for _ in range(10):
        subprocess.run(["true"])
    for _ in range(opts["rounds"]):
        xs = []
        for _ in range(20):
            t0 = time.perf_counter()
            subprocess.run(["true"])
            xs.append((time.perf_counter() - t0) * 1000)
        samples.append(xs)
    all_ = [x for xs in samples for x in xs]
    r2 = lambda x: round(x, 2)
    print("##RESULT " + json.dumps({
        "id": "subprocess.run", "runtime": "python", "col": "python", "label": 'subprocess.run(["true"])',
        "median_ms": r2(statistics.median(all_)), "min_ms": r2(min(all_)), "max_ms": r2(max(all_)), "n": len(all_),
        "round_medians_ms": [r2(statistics.median(xs)) for xs in samples],
    }))
    print(f"  subprocess.run([\"true\"]) {statistics.median(all_):7.2f} ms")


def main():
    adopt_orphans()
    opts = {"rounds": 5, "reps": 4, "warmup": 2, "gap": 10, "queue-rounds": 3, "queue-warmup": 1,
            "small": 200_000, "big": 20_000, "size": 10_240, "trips": 10_000, "trip-warmup": 1_000,
            "pool-rounds": 3, "pool-warmup": 1, "tasks": 100_000, "apply-tasks": 20_000, "pool-trips": 2_000,
            "pool-trip-warmup": 500, "cpu-tasks": 40, "cpu-ms": 10, "appends": 10_000, "pairs": 5_000,
            "sync-n": 200_000, "sync-contended": 100_000}
    only = {"start", "queue", "pool"}
    for arg in sys.argv[1:]:
        key, _, value = arg.lstrip("-").partition("=")
        if key == "only":
            only = set(value.split(","))
            continue
        if key not in opts or not value.isdigit():
            sys.exit(f"bench_python: unknown argument {arg}")
        opts[key] = int(value)
        if key == "rounds":
            opts["queue-rounds"] = opts["pool-rounds"] = int(value)
    if "subprocess" in only:
        subprocess_metrics(opts)
    if "manager" in only:
        manager_metrics(opts)
    if "sync" in only:
        sync_metrics(opts)
    if "pool" in only:
        pool_metrics(opts)
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
