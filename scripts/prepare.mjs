// npm's prepare step (npm ci, npm install in a checkout, npm pack, npm link): builds dist/ from the sources. An
// installed package (from the tarball) ships its build and no sources: nothing to do there, so `npm link embernet`
// after a global install needs no compiler toolchain.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const root = new URL("..", import.meta.url).pathname;
if (!existsSync(new URL("../src/cli/main.ts", import.meta.url))) {
  if (!existsSync(new URL("../dist/bundle/ember.js", import.meta.url))) {
    console.error("embernet: neither sources (src/) nor a build (dist/) here: the package is incomplete");
    process.exit(1);
  }
  process.exit(0);
}
const r = spawnSync("npm", ["run", "build"], { cwd: root, stdio: "inherit" });
process.exit(r.status ?? 1);
