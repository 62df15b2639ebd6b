// The EmberNet SDK in one file: two nodes embedded in this process, each with its own certificate, reach each
// other by identity name. node-b serves "echo" from JavaScript (no port opened on the machine); node-a dials
// "echo.node-b", and each side sees the other's verified identity. Run it from a clone after `npm ci`:
//
//   node examples/sdk/echo.mjs
//
// It makes a throwaway CA and two certificates with the ember CLI (what an operator would do once), writes a
// policy that lets @clients reach node-b's echo service, and cleans everything up at the end.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createSocket } from "node:dgram";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { EmberNode } from "embernet";

const ember = (...args) => execFileSync(process.execPath, [fileURLToPath(new URL("../../bin/ember.mjs", import.meta.url)), ...args], { stdio: "pipe" });
const freePort = () => new Promise((resolve) => { const s = createSocket("udp4"); s.bind(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); }); });

const dir = mkdtempSync(join(tmpdir(), "ember-sdk-example-"));
try {
  // 1. Identities: a CA, and a certificate per node (tenant "demo"; node-a in group "clients").
  ember("ca", "init", "--dir", join(dir, "ca"), "--trust-domain", "sdk.example");
  for (const [name, groups] of [["node-a", "clients"], ["node-b", "servers"]]) {
    const state = join(dir, name);
    mkdirSync(state);
    ember("cert", "issue", "--ca-dir", join(dir, "ca"), "--name", name, "--tenant", "demo", "--groups", groups, "--ttl", "1h", "--out", join(state, "id"));
    renameSync(join(state, "id.crt"), join(state, "cert.pem"));
    renameSync(join(state, "id.key"), join(state, "key.pem"));
    copyFileSync(join(dir, "ca", "bundle.pem"), join(state, "bundle.pem"));
  }
  // 2. Policy (no coordination server here, so each node reads it locally): clients may reach echo.
  const policy = join(dir, "policy.yaml");
  writeFileSync(policy, `rules:\n  - allow: {source: "@clients", target: node-b, protocol: tcp, ports: [7]}\n`);

  // 3. Two embedded nodes that know each other's address (a static mesh).
  const [portA, portB] = [await freePort(), await freePort()];
  const b = await EmberNode.start({ stateDir: join(dir, "node-b"), listen: `127.0.0.1:${portB}`, peers: [`node-a=127.0.0.1:${portA}`], policyFile: policy });
  const a = await EmberNode.start({ stateDir: join(dir, "node-a"), listen: `127.0.0.1:${portA}`, peers: [`node-b=127.0.0.1:${portB}`], policyFile: policy });

  // 4. node-b serves "echo" on mesh port 7 from this process; each connection says who it comes from.
  b.listen("echo", { port: 7 }).on("connection", (socket) => {
    console.log(`node-b: connection from ${socket.peer.name} (tenant ${socket.peer.tenant}, groups ${socket.peer.groups.join(",")})`);
    socket.pipe(socket);
  });

  // 5. node-a dials by name; the stream is a Duplex like a net.Socket.
  const socket = await a.dial("node-b", 7);
  console.log(`node-a: connected to ${socket.peer.name} (tenant ${socket.peer.tenant})`);
  const reply = await new Promise((resolve, reject) => {
    let text = "";
    socket.setEncoding("utf8");
    socket.on("data", (d) => (text += d));
    socket.on("end", () => resolve(text));
    socket.on("error", reject);
    socket.end("hello over the mesh");
  });
  console.log(`node-a: echo: ${reply}`);
  await a.close();
  await b.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
