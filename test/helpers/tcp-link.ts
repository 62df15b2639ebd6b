// A TCP forwarder on 127.0.0.1 that a test can cut and mend: cut() refuses new connections and resets the open
// ones (as a lost route to a database would), mend() listens again on the same port. For one process's link to
// a server the others still reach directly.
import { connect, createServer, type Server, type Socket } from "node:net";

export interface TcpLink {
  port: number;
  cut(): Promise<void>;
  mend(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpLink(targetPort: number, targetHost = "127.0.0.1"): Promise<TcpLink> {
  const open = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const listen = () => new Promise<void>((resolve, reject) => {
    const s = createServer((client) => {
      const upstream = connect(targetPort, targetHost);
      for (const x of [client, upstream]) { open.add(x); x.on("close", () => open.delete(x)); x.on("error", () => { client.destroy(); upstream.destroy(); }); }
      client.pipe(upstream).pipe(client);
    });
    s.once("error", reject);
    s.listen(port, "127.0.0.1", () => { port = (s.address() as { port: number }).port; server = s; resolve(); });
  });
  const cut = async () => {
    const s = server;
    server = undefined;
    for (const x of open) x.resetAndDestroy();
    if (s) await new Promise<void>((r) => s.close(() => r()));
  };
  await listen();
  return { port, cut, mend: () => (server ? Promise.resolve() : listen()), close: cut };
}
