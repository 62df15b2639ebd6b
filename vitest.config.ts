import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Multi-process and namespace tests bind real ports; forks keep each file's sockets apart.
    pool: "forks",
    // Daemons started by tests (and their children) ask no real gateway for a port mapping; the NAT lab's
    // port-mapping test sets EMBER_PORTMAP itself for nodes behind its own miniupnpd router.
    env: { EMBER_PORTMAP: "off" },
    reporters: ["default"],
  },
});
