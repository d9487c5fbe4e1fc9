/**
 * The broker's throughput: N payloads from a producer process to a consumer process
 * through one broker queue (what the "process" Queue rests on), in items/s and MB/s,
 * timed from when both children are connected. A payload is what a queue makes of a
 * number (a tag byte and a float64), padded to `bytes`. The consumer checks that
 * every item arrived once.
 *
 *   node --import tsx scripts/bench_broker.ts [N=200000] [rounds=3] [bytes=9]
 *   deno run -A scripts/bench_broker.ts 20000 3 10240
 *   bun scripts/bench_broker.ts
 */
import process from "node:process";
import { fromModule, getContext, isMainModule } from "../mod.ts";
import { getBroker } from "../src/_broker.ts";
import { runtime } from "../src/runtime/detect.ts";

const self = fromModule<typeof import("./bench_broker.ts")>(import.meta.url);

// What a queue does with a number: a tag byte and a float64.
function encode(i: number, size: number): Uint8Array {
  const bytes = new Uint8Array(Math.max(9, size));
  bytes[0] = 5;
  new DataView(bytes.buffer).setFloat64(1, i);
  return bytes;
}
const decode = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength).getFloat64(1);

export async function produce(q: number, go: number, ready: number, n: number, size: number): Promise<void> {
  const client = await getBroker();
  await client.put(ready, new Uint8Array([1]));
  await client.get(go);
  for (let i = 0; i < n; i++) await client.put(q, encode(i, size), { buffered: true });
  await client.flush(q);
}

export async function consume(q: number, go: number, ready: number, done: number, n: number): Promise<void> {
  const client = await getBroker();
  await client.put(ready, new Uint8Array([1]));
  await client.get(go);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += decode(await client.get(q));
  if (sum !== (n * (n - 1)) / 2) throw new Error(`lost or duplicated items: sum ${sum}`);
  await client.put(done, new Uint8Array([1]));
}

if (isMainModule(import.meta)) {
  const n = Number(process.argv[2] ?? 200_000);
  const rounds = Number(process.argv[3] ?? 3);
  const size = Number(process.argv[4] ?? 9);
  const client = await getBroker();
  const { Process } = getContext("process");
  for (let round = 0; round < rounds; round++) {
    const [q, go, ready, done] = await Promise.all([1, 2, 3, 4].map(() => client.create()));
    const procs = [
      new Process({ target: self.consume, args: [q, go, ready, done, n] }),
      new Process({ target: self.produce, args: [q, go, ready, n, size] }),
    ];
    procs.forEach((p) => p.start());
    // Timed from when both children are up and connected.
    await client.get(ready);
    await client.get(ready);
    const t0 = performance.now();
    await client.put(go, new Uint8Array([1]));
    await client.put(go, new Uint8Array([1]));
    await client.get(done);
    const ms = performance.now() - t0;
    await Promise.all(procs.map((p) => p.join()));
    const mb = (n * size) / ms / 1000;
    console.log(`${runtime.key}: ${n} × ${size} B in ${ms.toFixed(0)} ms = ${Math.round(n / ms * 1000)} items/s, ${mb.toFixed(0)} MB/s`);
    for (const id of [q, go, ready, done]) await client.release(id);
  }
}
