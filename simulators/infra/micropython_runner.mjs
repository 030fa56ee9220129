// Runs a script under the real MicroPython interpreter (the official WebAssembly port) in Node.
// stdin: {"files": {"path": "<base64>"}, "steps": ["...", ...]}; the files land under /flash, which
// is the working directory and on sys.path, as on a board. The steps run one after another in the
// same interpreter; garbage is only collected between steps (this port cannot scan the WebAssembly
// stack, so gc.collect() inside a step frees nothing), which is where a RAM measurement must look. Python's output goes to stdout; an uncaught
// exception prints its traceback on stderr and exits 1.
import { createRequire } from "node:module";

const packageDir = process.argv[2];
const require = createRequire(packageDir + "/");
const { loadMicroPython } = await import(require.resolve("@micropython/micropython-webassembly-pyscript"));

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { files, steps, heap } = JSON.parse(input);

const out = [];
const err = [];
const mp = await loadMicroPython({
  heapsize: heap || 1024 * 1024,
  stdout: (line) => out.push(line),
  stderr: (line) => err.push(line),
  linebuffer: true,
});
mp.FS.mkdir("/flash");
for (const [path, data] of Object.entries(files)) {
  const parts = path.split("/");
  let dir = "/flash";
  for (const part of parts.slice(0, -1)) {
    dir += "/" + part;
    try { mp.FS.mkdir(dir); } catch (e) { /* exists */ }
  }
  mp.FS.writeFile("/flash/" + path, Buffer.from(data, "base64"));
}
let failed = false;
try {
  mp.runPython("import os, sys\nos.chdir('/flash')\nsys.path.insert(0, '/flash')\n");
  for (const step of steps) mp.runPython(step);
} catch (e) {
  failed = true;
  err.push(String(e && e.message ? e.message : e));
}
process.stdout.write(out.join("\n") + (out.length ? "\n" : ""));
if (err.length) process.stderr.write(err.join("\n") + "\n");
process.exit(failed ? 1 : 0);
