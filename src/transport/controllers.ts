// The choice between congestion controllers (the interface is congestion.ts, which the controllers implement).
import type { CongestionController, CongestionName } from "./congestion.js";
import { Cubic } from "./cubic.js";
import { NewReno } from "./newreno.js";

export function createController(name: CongestionName, datagram: number): CongestionController {
  return name === "cubic" ? new Cubic(datagram) : new NewReno(datagram);
}
