// A hand-driven peer for hostile-input tests: it builds packets frame by frame (any epoch, packet number,
// stream id or offset, valid or not) and feeds them to a real mux, whose replies land in a CaptureLink.
import { decodePacket } from "../../src/transport/decode.js";
import { PacketWriter } from "../../src/transport/encode.js";
import type { Frame } from "../../src/transport/frames.js";
import type { DatagramLink } from "../../src/transport/link.js";
import { StreamMux } from "../../src/transport/mux.js";
import type { MuxOptions } from "../../src/transport/options.js";
import { SimClock } from "./sim-link.js";

export class CaptureLink implements DatagramLink {
  readonly sent: Buffer[] = [];
  mtu = 1400;
  full = false;

  send(payload: Uint8Array): boolean {
    if (this.full) return false;
    this.sent.push(Buffer.from(payload));
    return true;
  }

  maxPayload(): number {
    return this.mtu;
  }

  /** Every frame the mux sent, decoded, oldest first. */
  frames(): Frame[] {
    return this.sent.flatMap((p) => decodePacket(p).frames);
  }

  headers() {
    return this.sent.map((p) => decodePacket(p).header);
  }
}

export class RawPeer {
  pn = 0;
  private readonly w = new PacketWriter();

  constructor(public epoch = 0x0badcafe) {}

  /** One packet carrying `frames` (sent to `dstEpoch`, 0 = not yet known). */
  packet(frames: Frame[], dstEpoch = 0, pn = this.pn++): Buffer {
    this.w.begin(this.epoch, dstEpoch, pn, 65_535);
    for (const f of frames) this.w.write(f);
    return Buffer.from(this.w.finish());
  }
}

/** A mux under test fed by a RawPeer, on a virtual clock. */
export function rawSetup(opts: MuxOptions = {}) {
  const clock = new SimClock();
  const link = new CaptureLink();
  const mux = new StreamMux(link, { clock, ...opts });
  const peer = new RawPeer();
  const feed = (frames: Frame[], dstEpoch = 0) => mux.handleDatagram(peer.packet(frames, dstEpoch));
  return { clock, link, mux, peer, feed };
}

/** Lets the mux's end-of-turn flush run. */
export function settle(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}
