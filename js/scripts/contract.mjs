// Build step: regenerate src/generated/contract.ts from the Python declaration
// where Python with traitlets and numpy is at hand. Where it is not (a wheel's
// isolated build environment, say), the committed file is used as it is: the
// test suite checks it against the declaration.
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const script = join(here, "contract.py");
const candidates = [process.env.PYTHON, "python3", "python"].filter(Boolean);

for (const python of candidates) {
  const run = spawnSync(python, [script, ...process.argv.slice(2)], { stdio: "inherit" });
  if (run.error) continue; // no such interpreter: try the next
  if (run.status === 3) break; // an interpreter without traitlets/numpy
  process.exit(run.status ?? 1);
}
console.log("contract: using the committed src/generated/contract.ts");
