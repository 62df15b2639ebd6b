// msgpack codecs for handshake payloads and control messages (never the per-packet data path).
// Every message is a map with an explicit version `v`; decoding checks the schema field by field and
// throws MessageError naming the first problem, so a hostile or garbled message never gets further.
import { Packr } from "msgpackr";
import { CONTROL_MESSAGE_VERSION, HANDSHAKE_PAYLOAD_VERSION, INIT_CLAIM_VERSION } from "./constants.js";
import { MAX_PROTOCOL_VERSION, MAX_SOFTWARE_VERSION_CHARS } from "./protocol.js";

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, int64AsType: "number" });

export class MessageError extends Error {}

/** Field checkers: each returns the checked value or throws MessageError naming the field. */
type Field<T> = (x: unknown, name: string) => T;

export const field = {
  bytes(min: number, max: number): Field<Uint8Array> {
    return (x, name) => {
      if (!(x instanceof Uint8Array)) throw new MessageError(`${name} must be bytes`);
      if (x.length < min || x.length > max) throw new MessageError(`${name} must be ${min === max ? min : `${min}-${max}`} bytes, got ${x.length}`);
      return x;
    };
  },
  uint(max = Number.MAX_SAFE_INTEGER): Field<number> {
    return (x, name) => {
      if (typeof x !== "number" || !Number.isSafeInteger(x) || x < 0 || x > max) throw new MessageError(`${name} must be an integer 0..${max}`);
      return x;
    };
  },
  string(maxLength: number): Field<string> {
    return (x, name) => {
      if (typeof x !== "string" || x.length > maxLength) throw new MessageError(`${name} must be a string of at most ${maxLength} characters`);
      return x;
    };
  },
  array<T>(item: Field<T>, min: number, max: number): Field<T[]> {
    return (x, name) => {
      if (!Array.isArray(x) || x.length < min || x.length > max) throw new MessageError(`${name} must be a list of ${min}-${max} items`);
      return x.map((e, i) => item(e, `${name}[${i}]`));
    };
  },
  optional<T>(inner: Field<T>): Field<T | undefined> {
    return (x, name) => (x === undefined || x === null ? undefined : inner(x, name));
  },
  oneOf<T extends string>(values: readonly T[]): Field<T> {
    return (x, name) => {
      if (typeof x !== "string" || !values.includes(x as T)) throw new MessageError(`${name} must be one of ${values.join(", ")}`);
      return x as T;
    };
  },
  record<T extends object>(shape: { [K in keyof T]: Field<T[K]> }): Field<T> {
    return (x, name) => {
      if (x === null || typeof x !== "object" || Array.isArray(x) || x instanceof Uint8Array) throw new MessageError(`${name} must be a map`);
      const out = {} as T;
      for (const k of Object.keys(shape) as (keyof T)[]) {
        const v = shape[k]((x as Record<string, unknown>)[k as string], `${name}.${String(k)}`);
        if (v !== undefined) out[k] = v;
      }
      return out;
    };
  },
};

/** A versioned message kind: encode adds `v`, decode checks `v` and the schema. */
export interface MessageCodec<T> {
  encode(m: T): Uint8Array;
  decode(bytes: Uint8Array): T & { v: number };
}

export function defineMessage<T extends object>(kind: string, version: number, shape: { [K in keyof T]: Field<T[K]> }): MessageCodec<T> {
  const check = field.record<T>(shape);
  return {
    encode: (m) => packr.pack({ v: version, ...m }),
    decode(bytes) {
      let x: unknown;
      try { x = packr.unpack(bytes); } catch (err) { throw new MessageError(`${kind} is not msgpack (${(err as Error).message})`); }
      if (x === null || typeof x !== "object" || Array.isArray(x)) throw new MessageError(`${kind} is not a map`);
      const v = (x as { v?: unknown }).v;
      if (v !== version) throw new MessageError(`${kind} version ${String(v)} is not ${version}`);
      return { v, ...check(x, kind) };
    },
  };
}

export interface HandshakePayload {
  /** DER certificates: leaf first, then intermediates. */
  chain: Uint8Array[];
  /** Ed25519 signature by the leaf key over STATIC_KEY_BINDING_CONTEXT || Noise static public key. */
  sig: Uint8Array;
  /** Sender's clock (ms) when it wrote the message: accepted only if newer than the last per identity. */
  ts: number;
  /**
   * The sender's protocol version (src/wire/protocol.ts) and software version. Optional fields, added in
   * protocol 2 without a new `v`: release 0.1.0 ignores them, and its own payloads, without them, mean protocol 1.
   */
  proto?: number;
  sw?: string;
}

/** Certificates in a presented chain: the leaf and up to three CAs (an extra intermediate, and the root). */
export const MAX_PRESENTED_CHAIN = 4;

const handshakePayload = defineMessage<HandshakePayload>("handshake payload", HANDSHAKE_PAYLOAD_VERSION, {
  chain: field.array(field.bytes(1, 4096), 1, MAX_PRESENTED_CHAIN),
  sig: field.bytes(64, 64),
  ts: field.uint(),
  proto: field.optional(field.uint(MAX_PROTOCOL_VERSION)),
  sw: field.optional(field.string(MAX_SOFTWARE_VERSION_CHARS)),
});

export function encodeHandshakePayload(p: HandshakePayload): Uint8Array {
  const m: HandshakePayload = { chain: p.chain.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength)), sig: Buffer.from(p.sig), ts: p.ts };
  if (p.proto !== undefined) m.proto = p.proto;
  if (p.sw !== undefined) m.sw = p.sw;
  return handshakePayload.encode(m);
}

export function decodeHandshakePayload(bytes: Uint8Array): HandshakePayload & { v: number } {
  return handshakePayload.decode(bytes);
}

/**
 * The initiator's claim in an INIT (sealed to whoever knows the responder's name and CA, docs/crypto.md): who
 * is asking, signed by its certificate key over the responder's name, the INIT's ephemeral key and `ts`, so
 * the responder refuses a sender outside its peer map before any Diffie-Hellman and without a word. `chain`
 * (leaf first) comes along when the responder may not have the initiator's certificate (static peers, a retry).
 */
export interface InitClaim {
  name: string;
  /** The initiator's handshake clock (ms), strictly increasing: a replayed INIT is refused. */
  ts: number;
  /** Ed25519 by the certificate key over CLAIM_SIGNATURE_CONTEXT || responder name || 0 || e || ts (u64 LE). */
  sig: Uint8Array;
  chain?: Uint8Array[];
}

const initClaim = defineMessage<InitClaim>("INIT claim", INIT_CLAIM_VERSION, {
  name: field.string(63),
  ts: field.uint(),
  sig: field.bytes(64, 64),
  chain: field.optional(field.array(field.bytes(1, 4096), 1, MAX_PRESENTED_CHAIN)),
});

export function encodeInitClaim(c: InitClaim): Uint8Array {
  const m: InitClaim = { name: c.name, ts: c.ts, sig: Buffer.from(c.sig) };
  if (c.chain) m.chain = c.chain.map((d) => Buffer.from(d.buffer, d.byteOffset, d.byteLength));
  return initClaim.encode(m);
}

export function decodeInitClaim(bytes: Uint8Array): InitClaim & { v: number } {
  return initClaim.decode(bytes);
}

/** A direct-path candidate as disco exchanges it (CALL_ME_MAYBE inside an encrypted DATA packet). */
export interface Candidate { ip: string; port: number }
export interface CallMeMaybe { candidates: Candidate[] }

export const callMeMaybe = defineMessage<CallMeMaybe>("call-me-maybe", CONTROL_MESSAGE_VERSION, {
  candidates: field.array(field.record<Candidate>({ ip: field.string(45), port: field.uint(65535) }), 0, 32),
});

/**
 * The request in a stream's OPEN (src/transport): which flow the opener asks for. The receiving node decides
 * it by policy as a flow to itself on `port`/`protocol`; `service` (when the client named one) must agree.
 */
export interface FlowOpen {
  port: number;
  protocol: "tcp" | "udp";
  service?: string;
  /**
   * Set only by a public edge (docs/external-access.md): the flow carries a connection from outside the mesh,
   * whose source address is here for the receiver's logs. The receiver admits it only from a peer whose
   * certificate grants role edge, and decides it as the `external` principal, not as the edge.
   */
  external?: ExternalOrigin;
}
export interface ExternalOrigin { source: string }

export const flowOpen = defineMessage<FlowOpen>("flow open", CONTROL_MESSAGE_VERSION, {
  port: field.uint(65535),
  protocol: field.oneOf(["tcp", "udp"] as const),
  service: field.optional(field.string(63)),
  external: field.optional(field.record<ExternalOrigin>({ source: field.string(64) })),
});
