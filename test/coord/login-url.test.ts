// `ember login` prints the console page where a person approves the device. With the console on a listener of
// its own (`--console-listen`, the console URL ends in /ui/) it printed https://HOST:PORT/ui//ui/device, a 404.
// Real `ember coord` and `ember up` children; the printed URL is fetched.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { EMBER } from "../helpers/cli.js";
import { startNode, type NodeProc } from "../helpers/nodes.js";
import { makeMesh, spawnCoord, type CoordProcess, type Mesh } from "./helpers.js";

let mesh: Mesh;
let coord: CoordProcess;
let node: NodeProc;

const get = (url: string) => new Promise<{ status: number; location?: string }>((resolve, reject) => {
  httpsRequest(url, { rejectUnauthorized: false }, (res) => { res.resume(); resolve({ status: res.statusCode ?? 0, location: res.headers.location }); }).on("error", reject).end();
});

beforeAll(async () => {
  mesh = await makeMesh();
  coord = await spawnCoord(mesh, 0, ["--console-listen", "127.0.0.1:0"]);
  const { token } = await mesh.admin().createToken({ tenant: "acme", groups: ["eng"], roles: [], ttlMs: 600_000, uses: 1, certTtlMs: 3_600_000 });
  node = await startNode({ name: "laptop-1", dir: join(mesh.dir, "laptop-1"), extraArgs: ["--coord", coord.url, "--token", token, "--name", "laptop-1"] });
}, 60_000);

afterAll(async () => { await node?.stop(); await coord?.kill9(); mesh?.cleanup(); }, 30_000);

describe("ember login", () => {
  it("prints a console URL that opens the device page", async () => {
    const login = spawn(process.execPath, [EMBER, "login", "--state", node.dir], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      const lines = await new Promise<string[]>((resolve, reject) => {
        const got: string[] = [];
        const t = setTimeout(() => reject(new Error(`no URL printed: ${got.join("\n")}`)), 20_000);
        createInterface({ input: login.stderr! }).on("line", (l) => { got.push(l); if (/^\(or open /.test(l)) { clearTimeout(t); resolve(got); } });
      });
      const [, url, code] = /^To log in, open (\S+) and enter the code ([A-Z]{4}-[A-Z]{4})$/.exec(lines[0]) ?? [];
      expect(url, lines.join("\n")).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/ui\/device$/);
      expect(lines[1]).toBe(`(or open ${url}?code=${code})`);
      // The page is there: without a session it sends the person to log in first, and back to it.
      const page = await get(url);
      expect(page.status, JSON.stringify(page)).toBe(302);
      expect(page.location).toMatch(/^\/ui\/login\?.*next=%2Fui%2Fdevice/);
      expect((await get(new URL(page.location!, url).href)).status).toBe(200);
    } finally { login.kill("SIGINT"); }
  }, 60_000);
});
