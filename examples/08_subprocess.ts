// Python: p = subprocess.Popen(["ls"], cwd="lsdemo"); ...; p.wait()   (research §3.5)
//         p = subprocess.Popen(["ls"], cwd="lsdemo", stdout=PIPE, text=True); p.communicate()   (§3.6)
// Run: deno run --allow-read --allow-run --allow-env examples/08_subprocess.ts
//      bun examples/08_subprocess.ts    node --import tsx examples/08_subprocess.ts
// (A start method given as argument, as for the other examples, is ignored: no polyproc child here.)
// ls writes straight to the terminal while the parent prints, so its two lines may come
// before or after the parent's first two, in Python as here.
import { isMainModule, Popen } from "../mod.ts";

if (isMainModule(import.meta)) {
  const lsdemo = new URL("./lsdemo/", import.meta.url);

  const p = new Popen(["ls"], { cwd: lsdemo }); // stdout inherited, not captured
  console.log("parent: Popen() returned immediately; ls runs asynchronously");
  console.log("parent: returncode before wait =", p.returncode);
  const rc = await p.wait();
  console.log("parent: ls exited with", rc);

  const q = new Popen(["ls"], { cwd: lsdemo, stdout: "pipe", text: true });
  console.log("parent: returncode before communicate =", q.returncode); // null until reaped
  const { stdout, stderr } = await q.communicate();
  console.log("captured:", JSON.stringify(stdout!.split(/\s+/).filter(Boolean)));
  console.log("err:", stderr, "returncode:", q.returncode);
}
