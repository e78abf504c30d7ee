// A foreign rpcx client, written from docs/protocol.md (streaming calls: § 18),
// docs/marshalling.md and idl/payments.rpcx alone, to show that those documents are enough to talk to the Python
// server from another language. No dependencies: Node.js built-ins only.
//
//     node tests/integration/foreign_client.mjs HOST PORT
//
// It opens ONE TCP connection, exchanges prefaces, makes the calls below and prints one
// JSON line per step to stdout. Exit status 0 when every step ran (whatever each step's
// outcome), 1 on a protocol failure or a crash (the reason goes to stderr).

import net from "node:net";
import { randomBytes } from "node:crypto";

// ---------------------------------------------------------------------------------------
// CBOR (RFC 8949), the subset rpcx uses: definite lengths only, tag 4 for decimals.

/** A decimal fraction: mantissa × 10^exponent (marshalling.md: tag 4 [exponent, mantissa]). */
export class Decimal {
  constructor(exponent, mantissa) {
    this.exponent = exponent;
    this.mantissa = BigInt(mantissa);
  }

  /** Parses "3.99", "-0.5", "12": exact, no floating point. */
  static parse(text) {
    const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(text);
    if (!m) throw new Error(`not a decimal: ${text}`);
    const fraction = m[3] ?? "";
    return new Decimal(-fraction.length, BigInt(`${m[1]}${m[2]}${fraction}`));
  }

  toString() {
    const negative = this.mantissa < 0n;
    let digits = (negative ? -this.mantissa : this.mantissa).toString();
    if (this.exponent >= 0) {
      digits += "0".repeat(this.exponent);
    } else {
      const scale = -this.exponent;
      digits = digits.padStart(scale + 1, "0");
      digits = `${digits.slice(0, digits.length - scale)}.${digits.slice(digits.length - scale)}`;
    }
    return (negative ? "-" : "") + digits;
  }
}

/** Any other CBOR tag, kept as is. */
export class Tagged {
  constructor(tag, value) {
    this.tag = tag;
    this.value = value;
  }
}

function head(major, n) {
  const big = BigInt(n);
  if (big < 0n || big > 0xffffffffffffffffn) throw new RangeError(`CBOR argument ${n}`);
  const m = major << 5;
  if (big < 24n) return Buffer.from([m | Number(big)]);
  if (big < 0x100n) return Buffer.from([m | 24, Number(big)]);
  if (big < 0x10000n) {
    const b = Buffer.alloc(3);
    b[0] = m | 25;
    b.writeUInt16BE(Number(big), 1);
    return b;
  }
  if (big < 0x100000000n) {
    const b = Buffer.alloc(5);
    b[0] = m | 26;
    b.writeUInt32BE(Number(big), 1);
    return b;
  }
  const b = Buffer.alloc(9);
  b[0] = m | 27;
  b.writeBigUInt64BE(big, 1);
  return b;
}

function encodeInt(n) {
  const big = BigInt(n);
  return big >= 0n ? head(0, big) : head(1, -1n - big);
}

/**
 * Encodes a JS value: null, boolean, integer number or BigInt (a non-integer number is a
 * double), string (text), Buffer/Uint8Array (bytes), Array, Map (any keys) or plain object
 * (text keys), Decimal (tag 4), Tagged.
 */
export function encode(value) {
  const parts = [];
  const put = (v) => {
    if (v === null) parts.push(Buffer.from([0xf6]));
    else if (v === true) parts.push(Buffer.from([0xf5]));
    else if (v === false) parts.push(Buffer.from([0xf4]));
    else if (typeof v === "bigint") parts.push(encodeInt(v));
    else if (typeof v === "number") {
      if (Number.isInteger(v)) parts.push(encodeInt(v));
      else {
        const b = Buffer.alloc(9);
        b[0] = 0xfb;
        b.writeDoubleBE(v, 1);
        parts.push(b);
      }
    } else if (typeof v === "string") {
      const utf8 = Buffer.from(v, "utf8");
      parts.push(head(3, utf8.length), utf8);
    } else if (v instanceof Uint8Array) {
      parts.push(head(2, v.length), Buffer.from(v));
    } else if (Array.isArray(v)) {
      parts.push(head(4, v.length));
      v.forEach(put);
    } else if (v instanceof Decimal) {
      parts.push(head(6, 4), head(4, 2));
      put(BigInt(v.exponent));
      put(v.mantissa);
    } else if (v instanceof Tagged) {
      parts.push(head(6, v.tag));
      put(v.value);
    } else if (v instanceof Map) {
      parts.push(head(5, v.size));
      for (const [k, x] of v) {
        put(k);
        put(x);
      }
    } else if (typeof v === "object") {
      const entries = Object.entries(v);
      parts.push(head(5, entries.length));
      for (const [k, x] of entries) {
        put(k);
        put(x);
      }
    } else throw new TypeError(`cannot encode ${typeof v}`);
  };
  put(value);
  return Buffer.concat(parts);
}

function halfToNumber(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

/**
 * Decodes exactly one CBOR item filling `data`. Integers become numbers when safe, else
 * BigInt; maps become Map; byte strings Buffer; tag 4 a Decimal; other tags Tagged.
 * Indefinite lengths are refused (rpcx never writes them).
 */
export function decode(data, { maxDepth = 64 } = {}) {
  let pos = 0;
  const need = (n) => {
    if (pos + n > data.length) throw new Error("truncated CBOR");
  };
  const argument = (ai) => {
    if (ai < 24) return BigInt(ai);
    if (ai === 24) { need(1); return BigInt(data[pos++]); }
    if (ai === 25) { need(2); const v = data.readUInt16BE(pos); pos += 2; return BigInt(v); }
    if (ai === 26) { need(4); const v = data.readUInt32BE(pos); pos += 4; return BigInt(v); }
    if (ai === 27) { need(8); const v = data.readBigUInt64BE(pos); pos += 8; return v; }
    throw new Error(`unsupported CBOR additional info ${ai} (indefinite lengths are not used)`);
  };
  const small = (big) => (big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big);
  const item = (depth) => {
    if (depth > maxDepth) throw new Error("CBOR nested too deeply");
    need(1);
    const initial = data[pos++];
    const major = initial >> 5;
    const ai = initial & 0x1f;
    if (major === 7) {
      if (ai === 20) return false;
      if (ai === 21) return true;
      if (ai === 22) return null;
      if (ai === 23) return undefined;
      if (ai === 25) { need(2); const v = halfToNumber(data.readUInt16BE(pos)); pos += 2; return v; }
      if (ai === 26) { need(4); const v = data.readFloatBE(pos); pos += 4; return v; }
      if (ai === 27) { need(8); const v = data.readDoubleBE(pos); pos += 8; return v; }
      throw new Error(`unsupported CBOR simple value ${ai}`);
    }
    const arg = argument(ai);
    switch (major) {
      case 0: return small(arg);
      case 1: return small(-1n - arg);
      case 2: case 3: {
        const n = Number(arg);
        need(n);
        const chunk = data.subarray(pos, pos + n);
        pos += n;
        if (major === 2) return Buffer.from(chunk);
        return new TextDecoder("utf-8", { fatal: true }).decode(chunk);
      }
      case 4: {
        const out = [];
        for (let i = 0n; i < arg; i++) out.push(item(depth + 1));
        return out;
      }
      case 5: {
        const out = new Map();
        for (let i = 0n; i < arg; i++) {
          const k = item(depth + 1);
          if (out.has(k)) throw new Error(`duplicate CBOR map key ${String(k)}`);
          out.set(k, item(depth + 1));
        }
        return out;
      }
      case 6: {
        const inner = item(depth + 1);
        if (arg === 4n) {
          if (!Array.isArray(inner) || inner.length !== 2) throw new Error("bad decimal fraction");
          return new Decimal(Number(inner[0]), BigInt(inner[1]));
        }
        return new Tagged(small(arg), inner);
      }
      default: throw new Error("unreachable");
    }
  };
  const value = item(0);
  if (pos !== data.length) throw new Error(`${data.length - pos} trailing bytes after CBOR item`);
  return value;
}

/** A decoded CBOR value as plain JSON-friendly data (for printing). */
export function toJson(v) {
  if (v instanceof Map) {
    const out = {};
    for (const [k, x] of v) out[String(k)] = toJson(x);
    return out;
  }
  if (Array.isArray(v)) return v.map(toJson);
  if (Buffer.isBuffer(v)) return v.toString("hex");
  if (typeof v === "bigint") return v.toString();
  if (v instanceof Decimal) return v.toString();
  if (v instanceof Tagged) return { tag: v.tag, value: toJson(v.value) };
  return v === undefined ? null : v;
}

// ---------------------------------------------------------------------------------------
// The schema of idl/payments.rpcx, as much of it as this client uses.

const Currency = { GBP: 1, EUR: 2, USD: 3 };

/** Struct fields by tag: name and a check of the decoded CBOR type. */
const isString = (v) => typeof v === "string";
const isBool = (v) => typeof v === "boolean";
const SCHEMAS = {
  Result: { 1: ["success", isBool, true], 2: ["payment_id", isString, false] },
  "payments.CardDeclined": { 1: ["reason", isString, true] },
  "payments.NotFound": { 1: ["payment_id", isString, true] },
};

/** A struct / error map keyed by tag → an object keyed by field name (marshalling.md). */
function decodeStruct(name, value) {
  if (!(value instanceof Map)) throw new Error(`${name}: expected a map, got ${typeof value}`);
  const out = {};
  for (const [tag, [field, check, required]] of Object.entries(SCHEMAS[name])) {
    const v = value.get(Number(tag));
    if (v === undefined || v === null) {
      if (required) throw new Error(`${name}: missing required field '${field}'`);
      out[field] = null; // optional without a default
    } else if (!check(v)) {
      throw new Error(`${name}.${field}: unexpected ${typeof v}`);
    } else out[field] = v;
  }
  return out; // unknown tags are skipped
}

function card(number) {
  return new Map([[1, number], [2, "10/2030"], [3, "123"]]); // holder, tags: left out
}

function processPaymentArgs(number) {
  return new Map([
    [1, card(number)],
    [2, Decimal.parse("3.99")],
    [3, Currency.GBP],
    [4, "Acme Ltd"],
  ]);
}

// ---------------------------------------------------------------------------------------
// The wire protocol (protocol.md).

const PREFACE = Buffer.from([0x52, 0x50, 0x43, 0x58, 0x0d, 0x0a, 0x00, 0x01]);
const T = {
  REQUEST: 1, RESPONSE: 2, ERROR: 3, CANCEL: 4, PING: 5, PONG: 6, GOAWAY: 7,
  MESSAGE: 8, END: 9, WINDOW: 10, // streaming calls (§ 18)
};
const INITIAL_WINDOW = 65536; // § 18.2: each direction of each streaming call starts with it
const STATUS = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
  "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
  "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
  "UNAUTHENTICATED",
];
const MAX_FRAME_SIZE = 4 * 1024 * 1024 + 64 * 1024;

function frame(type, callId, meta, payload = Buffer.alloc(0), flags = 0) {
  const metaBytes = meta === null ? Buffer.alloc(0) : encode(meta);
  if (metaBytes.length > 0xffff) throw new Error("meta map too large");
  const header = Buffer.alloc(12);
  header.writeUInt32BE(metaBytes.length + payload.length, 0);
  header[4] = type;
  header[5] = flags;
  header.writeUInt16BE(metaBytes.length, 6);
  header.writeUInt32BE(callId, 8);
  return Buffer.concat([header, metaBytes, payload]);
}

class ProtocolError extends Error {}

class Connection {
  constructor(socket) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.prefaceSeen = false;
    this.lastCallId = 0;
    this.calls = new Map(); // call id -> { resolve, timer, method }
    this.streams = new Map(); // streaming call id -> { onMessage, credit, window, owed }
    this.windowsSent = 0;
    this.pings = new Map(); // ping id (bigint) -> resolve
    this.nextPing = 1n;
    this.goaway = null; // the server's GOAWAY, once received
    this.sentGoaway = false;
    this.pingsAnswered = 0;
    this.lateFrames = 0; // replies for calls this side already finished (§ 5)
    this.maxOpenAtReply = 0;
    this.closed = new Promise((resolve) => { this.onClosed = resolve; });
    this.prefaceReceived = new Promise((resolve, reject) => {
      this.onPreface = resolve;
      this.onPrefaceError = reject;
    });
    socket.on("data", (chunk) => this.received(chunk));
    socket.on("end", () => this.lost("connection closed by the server"));
    socket.on("close", () => this.lost("connection closed"));
    socket.on("error", (err) => this.lost(`connection error: ${err.message}`));
    socket.write(PREFACE); // each side sends its preface without waiting (§ 2)
  }

  received(chunk) {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    try {
      if (!this.prefaceSeen) {
        const n = Math.min(this.buffer.length, 8);
        if (!this.buffer.subarray(0, Math.min(n, 6)).equals(PREFACE.subarray(0, Math.min(n, 6)))) {
          throw new ProtocolError("peer is not speaking rpcx");
        }
        if (n < 8) return;
        const version = this.buffer.readUInt16BE(6);
        if (version !== 1) throw new ProtocolError(`server speaks rpcx protocol version ${version}, this side speaks 1`);
        this.prefaceSeen = true;
        this.buffer = this.buffer.subarray(8);
        this.onPreface();
      }
      while (this.buffer.length >= 12) {
        const bodyLength = this.buffer.readUInt32BE(0);
        if (bodyLength > MAX_FRAME_SIZE) throw new ProtocolError(`frame of ${bodyLength} bytes is too large for this client`);
        if (this.buffer.length < 12 + bodyLength) return;
        const type = this.buffer[4];
        const flags = this.buffer[5];
        const metaLength = this.buffer.readUInt16BE(6);
        const callId = this.buffer.readUInt32BE(8);
        if (metaLength > bodyLength) throw new ProtocolError("meta_length > body_length");
        const metaBytes = this.buffer.subarray(12, 12 + metaLength);
        const payload = Buffer.from(this.buffer.subarray(12 + metaLength, 12 + bodyLength));
        this.buffer = this.buffer.subarray(12 + bodyLength);
        let meta = new Map();
        if (metaLength > 0) {
          try {
            meta = decode(metaBytes, { maxDepth: 32 });
          } catch (err) {
            throw new ProtocolError(`bad meta: ${err.message}`);
          }
          if (!(meta instanceof Map)) throw new ProtocolError("meta is not a map");
        }
        for (const [k, v] of [...meta]) if (v === null) meta.delete(k); // null = absent
        this.frame(type, flags, callId, meta, payload);
      }
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.connectionError(err.message);
    }
  }

  frame(type, flags, callId, meta, payload) {
    const connectionFrame = type === T.PING || type === T.PONG || type === T.GOAWAY;
    if (type >= 1 && type <= 7 && connectionFrame !== (callId === 0)) {
      throw new ProtocolError(`frame type ${type} with call id ${callId}`);
    }
    switch (type) {
      case T.RESPONSE:
      case T.ERROR: {
        const call = this.calls.get(callId);
        if (call === undefined) {
          if (callId > this.lastCallId) throw new ProtocolError(`reply for call ${callId}, never started`);
          this.lateFrames += 1;
          return; // a late reply for a call already finished (§ 5): ignore
        }
        this.maxOpenAtReply = Math.max(this.maxOpenAtReply, this.calls.size);
        if (type === T.RESPONSE) {
          this.finish(callId, { ok: true, payload });
          return;
        }
        const status = meta.get(1);
        if (typeof status !== "number" || status === 0) throw new ProtocolError("ERROR without a valid status");
        const message = meta.get(2) ?? "";
        const details = meta.get(3) ?? new Map();
        const errorName = meta.get(4) ?? null;
        if (typeof message !== "string" || !(details instanceof Map)) throw new ProtocolError("bad ERROR meta");
        if (errorName === null && payload.length) throw new ProtocolError("ERROR payload without error_name");
        this.finish(callId, {
          ok: false,
          status: status < STATUS.length ? status : 2, // unknown codes read as UNKNOWN
          message, details, errorName, payload,
        });
        return;
      }
      case T.PING:
        if (payload.length !== 8) throw new ProtocolError("PING payload is not 8 bytes");
        this.pingsAnswered += 1;
        this.socket.write(frame(T.PONG, 0, null, payload)); // the same 8 bytes, promptly
        return;
      case T.PONG: {
        if (payload.length !== 8) throw new ProtocolError("PONG payload is not 8 bytes");
        const id = payload.readBigUInt64BE(0);
        const resolve = this.pings.get(id);
        this.pings.delete(id);
        if (resolve) resolve(); // an unmatched PONG is ignored
        return;
      }
      case T.GOAWAY: {
        const last = meta.get(1);
        if (typeof last !== "number") throw new ProtocolError("GOAWAY without last_call_id");
        const status = meta.get(2) ?? 0;
        this.goaway = { last_call_id: last, status, message: meta.get(3) ?? "" };
        for (const id of [...this.calls.keys()]) {
          if (status !== 0 || id > last) {
            this.finish(id, { ok: false, status: 14, message: `not processed: GOAWAY (last_call_id ${last})`, details: new Map(), errorName: null, payload: Buffer.alloc(0) });
          }
        }
        this.maybeClose();
        return;
      }
      case T.MESSAGE:
      case T.WINDOW: {
        // § 18.1: call id ≠ 0; a frame for a call already finished is late (§ 5)
        if (callId === 0) throw new ProtocolError(`stream frame type ${type} with call id 0`);
        if (!this.calls.has(callId)) {
          if (callId > this.lastCallId) throw new ProtocolError(`stream frame for call ${callId}, never started`);
          this.lateFrames += 1;
          return;
        }
        const stream = this.streams.get(callId);
        if (stream === undefined) return; // not a streaming call: nothing to do with it
        if (type === T.WINDOW) {
          if (payload.length !== 4) throw new ProtocolError("WINDOW payload is not 4 bytes");
          const increment = payload.readUInt32BE(0);
          if (increment === 0) throw new ProtocolError("WINDOW of 0");
          stream.credit += increment;
          return;
        }
        if (payload.length === 0) throw new ProtocolError("empty MESSAGE");
        // § 18.2: the server may send only while its credit (as granted by us) is positive
        if (stream.window <= 0) throw new ProtocolError(`MESSAGE for call ${callId} without credit`);
        stream.window -= payload.length;
        stream.onMessage(payload);
        return;
      }
      case T.REQUEST:
      case T.CANCEL:
      case T.END:
        throw new ProtocolError(`frame type ${type} sent to a client`);
      default:
        return; // unknown frame types are skipped (§ 3)
    }
  }

  finish(callId, outcome) {
    const call = this.calls.get(callId);
    if (!call) return;
    this.calls.delete(callId);
    this.streams.delete(callId);
    clearTimeout(call.timer);
    call.resolve({ call_id: callId, ...outcome });
    this.maybeClose();
  }

  maybeClose() {
    // § 13: once a GOAWAY was received and no calls remain open, close. After sending our
    // own GOAWAY we wait instead: the server closes once it has answered every open call
    // (and an early FIN from us would cancel those calls: there is no half-close).
    if (this.goaway && this.calls.size === 0) this.socket.end();
  }

  connectionError(message) {
    try {
      this.socket.write(frame(T.GOAWAY, 0, new Map([[1, 0], [2, 13], [3, message]])));
    } catch { /* best effort */ }
    this.socket.end();
    this.lost(`protocol error: ${message}`);
  }

  lost(reason) {
    if (this.lostReason === undefined) this.lostReason = reason;
    if (!this.prefaceSeen) this.onPrefaceError(new Error(reason));
    for (const id of [...this.calls.keys()]) {
      this.finish(id, { ok: false, status: 14, message: reason, details: new Map(), errorName: null, payload: Buffer.alloc(0) });
    }
    this.onClosed(reason);
  }

  /**
   * Starts a call; resolves to its outcome (never rejects). `timeout` (seconds) is the
   * deadline, sent as timeout_ms and enforced locally; `wireTimeoutMs` overrides what is
   * sent (to see the server enforce a deadline by itself); `cancelAfter` (seconds) cancels
   * the call with a CANCEL frame, as an application giving up would.
   */
  call(method, args, { timeout = null, wireTimeoutMs = null, cancelAfter = null,
    idempotencyKey = null, metadata = null } = {}) {
    if (this.goaway || this.sentGoaway) throw new Error("connection is going away");
    const callId = ++this.lastCallId;
    const meta = new Map([[1, method]]);
    if (wireTimeoutMs !== null) meta.set(2, wireTimeoutMs);
    else if (timeout !== null) meta.set(2, Math.max(0, Math.ceil(timeout * 1000))); // rounded up
    if (metadata !== null) meta.set(3, metadata);
    if (idempotencyKey !== null) meta.set(4, idempotencyKey);
    return new Promise((resolve) => {
      const call = { method, resolve, timer: null };
      if (timeout !== null) {
        call.timer = setTimeout(() => {
          // The deadline passed locally: fail the call and CANCEL it (§ 7).
          this.socket.write(frame(T.CANCEL, callId, null));
          this.finish(callId, { ok: false, status: 4, message: "deadline exceeded at the client", details: new Map(), errorName: null, payload: Buffer.alloc(0) });
        }, timeout * 1000);
      } else if (cancelAfter !== null) {
        call.timer = setTimeout(() => {
          // § 8: CANCEL, and the call is finished at once; the server sends nothing for it.
          this.socket.write(frame(T.CANCEL, callId, null));
          this.finish(callId, { ok: false, status: 1, message: "cancelled by the client", details: new Map(), errorName: null, payload: Buffer.alloc(0) });
        }, cancelAfter * 1000);
      }
      this.calls.set(callId, call);
      this.socket.write(frame(T.REQUEST, callId, meta, encode(args)));
    });
  }

  /**
   * Starts a server-streaming call (§ 18): `onMessage(payload)` gets each MESSAGE in
   * order; the promise resolves to the call's outcome (RESPONSE with an empty payload, or
   * ERROR) like call(). Credit is given back only through consume(), so a caller that does
   * not consume shows the server stopping at its window.
   */
  stream(method, args, onMessage, options = {}) {
    const callId = this.lastCallId + 1;
    this.streams.set(callId, { onMessage, credit: INITIAL_WINDOW, window: INITIAL_WINDOW, owed: 0 });
    return { callId, outcome: this.call(method, args, options) };
  }

  /** The application took `size` bytes of call `callId`'s items: give the credit back. */
  consume(callId, size) {
    const stream = this.streams.get(callId);
    if (stream === undefined) return;
    stream.owed += size;
    if (stream.owed >= INITIAL_WINDOW / 2) { // as the reference implementation does
      const increment = Buffer.alloc(4);
      increment.writeUInt32BE(stream.owed);
      this.socket.write(frame(T.WINDOW, callId, null, increment));
      stream.window += stream.owed;
      stream.owed = 0;
      this.windowsSent += 1;
    }
  }

  /** § 8: CANCEL the call; it is finished at once and the server sends nothing more. */
  cancel(callId) {
    if (!this.calls.has(callId)) return;
    this.socket.write(frame(T.CANCEL, callId, null));
    this.finish(callId, { ok: false, status: 1, message: "cancelled by the client", details: new Map(), errorName: null, payload: Buffer.alloc(0) });
  }

  ping(timeoutMs = 5000) {
    const id = this.nextPing++;
    const payload = Buffer.alloc(8);
    payload.writeBigUInt64BE(id);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no PONG")), timeoutMs);
      this.pings.set(id, () => { clearTimeout(timer); resolve(id); });
      this.socket.write(frame(T.PING, 0, null, payload));
    });
  }

  /** Graceful close (§ 13): GOAWAY last_call_id 0; the server closes when it is done. */
  goAway() {
    this.sentGoaway = true;
    this.socket.write(frame(T.GOAWAY, 0, new Map([[1, 0]])));
  }
}

// ---------------------------------------------------------------------------------------
// The calls.

/** One printable line for a call's outcome; `result` names the result schema. */
function report(step, outcome, result) {
  const line = { step, call_id: outcome.call_id, ok: outcome.ok };
  if (outcome.ok) {
    line.result = decodeStruct(result, decode(outcome.payload));
  } else {
    line.status = outcome.status;
    line.status_name = STATUS[outcome.status];
    line.message = outcome.message;
    line.details = toJson(outcome.details);
    line.error_name = outcome.errorName;
    if (outcome.errorName !== null) {
      line.error = outcome.errorName in SCHEMAS
        ? decodeStruct(outcome.errorName, decode(outcome.payload))
        : toJson(decode(outcome.payload)); // a declared error this client does not know
    }
  }
  return line;
}

function print(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

async function main() {
  const [host, portText] = process.argv.slice(2);
  const port = Number(portText);
  if (!host || !Number.isInteger(port)) {
    process.stderr.write("usage: node foreign_client.mjs HOST PORT\n");
    process.exit(2);
  }
  const socket = net.connect({ host, port });
  socket.setNoDelay(true);
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const conn = new Connection(socket);
  await conn.prefaceReceived;
  print({ step: "preface", ok: true });

  const PAY = "payments.Payments/process_payment";
  const GET = "payments.Payments/get_payment";

  // 1. the notes' call: process_payment(card, 3.99, GBP, "Acme Ltd"), keyed, with a deadline
  const key = randomBytes(16);
  const paid = await conn.call(PAY, processPaymentArgs("4111 1111 1111 1111"),
    { timeout: 5, idempotencyKey: key });
  const payLine = report("process_payment", paid, "Result");
  print(payLine);

  // 1b. a retry with the same idempotency key: the stored reply, not a second charge (§ 11)
  print(report("process_payment_retry", await conn.call(PAY,
    processPaymentArgs("4111 1111 1111 1111"), { timeout: 5, idempotencyKey: key }), "Result"));

  // 2. the declined test card: the declared error payments.CardDeclined
  const declined = await conn.call(PAY, processPaymentArgs("4000 0000 0000 0002"),
    { timeout: 5, idempotencyKey: randomBytes(16) });
  print(report("process_payment_declined", declined, "Result"));

  // 3. get_payment for the id of call 1
  const paymentId = payLine.result?.payment_id ?? "";
  print(report("get_payment", await conn.call(GET, new Map([[1, paymentId]]), { timeout: 2 }), "Result"));

  // 4. a method the server does not have
  print(report("unknown_method",
    await conn.call("payments.Payments/refund", new Map([[1, paymentId]]), { timeout: 2 }), "Result"));

  // 5. two calls in flight at once, replies matched by call id
  const first = conn.call(GET, new Map([[1, paymentId]]), { timeout: 2 });
  const second = conn.call(GET, new Map([[1, "pay_does_not_exist"]]), { timeout: 2 });
  const [a, b] = await Promise.all([first, second]);
  print({ ...report("pipelined_found", a, "Result"), open_at_first_reply: conn.maxOpenAtReply });
  print({ ...report("pipelined_missing", b, "Result"), open_at_first_reply: conn.maxOpenAtReply });

  // 6. keepalive: a PING is answered with a PONG carrying the same 8 bytes
  const pingId = await conn.ping();
  print({ step: "ping", ok: true, ping_id: Number(pingId) });

  // 7. cancellation (§ 8): a payment at the slow bank (3 s), cancelled after 0.3 s; the
  // server cancels the handler and sends nothing for the call (see late_frames below)
  print(report("cancelled", await conn.call(PAY, new Map([...processPaymentArgs("4111 1111 1111 1111")].map(([k, v]) => [k, k === 4 ? "slow bank" : v])),
    { cancelAfter: 0.3, idempotencyKey: randomBytes(16) }), "Result"));

  // 8. a deadline the server enforces (§ 7): timeout_ms 300 on the wire, while this side
  // waits 4 s (longer than the slow bank's 3 s, so a server that ignored timeout_ms would
  // charge); the server should answer ERROR DEADLINE_EXCEEDED after about 0.3 s
  const started = Date.now();
  const serverDeadline = await conn.call(PAY, new Map([...processPaymentArgs("4111 1111 1111 1111")].map(([k, v]) => [k, k === 4 ? "slow bank" : v])),
    { timeout: 4, wireTimeoutMs: 300, idempotencyKey: randomBytes(16) });
  print({ ...report("server_deadline", serverDeadline, "Result"), elapsed_ms: Date.now() - started });

  // 10. streaming (§ 18): watch(from_seq=1) first sends the events so far (the charge of
  // step 1, the decline of step 2), then each new one as it happens: a declined payment
  // made while the watch is open arrives on it; then the client cancels the watch.
  const WATCH = "payments.Payments/watch";
  const event = (payload) => {
    const m = decode(payload);
    return { seq: m.get(1), kind: m.get(2), amount: toJson(m.get(3)), currency: m.get(4),
      payment_id: m.get(5) ?? null, reason: m.get(6) ?? null };
  };
  const watched = [];
  let arrived = null;
  const watch = conn.stream(WATCH, new Map([[1, 1]]), (payload) => {
    watched.push(event(payload));
    conn.consume(watch.callId, payload.length);
    if (arrived) arrived();
  }, { timeout: 10 });
  const until = (n) => new Promise((resolve) => {
    arrived = () => { if (watched.length >= n) resolve(); };
    arrived();
  });
  await until(2);
  const live = conn.call(PAY, processPaymentArgs("4000 0000 0000 0002"),
    { timeout: 5, idempotencyKey: randomBytes(16) });
  await until(3);
  await live;
  conn.cancel(watch.callId);
  const watchOutcome = await watch.outcome;
  print({ step: "watch", items: watched, status_name: STATUS[watchOutcome.status] });

  // 11. flow control (§ 18.2): 1500 more declines make the history larger than the
  // initial window; a watch that gives no credit back must see the server stop at its
  // window, then get the rest once it does.
  for (let i = 0; i < 15; i++) {
    await Promise.all(Array.from({ length: 100 }, () => conn.call(PAY,
      processPaymentArgs("4000 0000 0000 0002"), { timeout: 10, idempotencyKey: randomBytes(16) })));
  }
  const total = watched.length + 1500;
  const held = [];
  let biggest = 0;
  const slow = conn.stream(WATCH, new Map([[1, 1]]), (payload) => {
    held.push(payload);
    biggest = Math.max(biggest, payload.length);
    if (arrived) arrived();
  }, { timeout: 20 });
  await new Promise((resolve) => setTimeout(resolve, 700)); // a reader that does not read
  const heldBytes = held.reduce((sum, p) => sum + p.length, 0);
  const heldItems = held.length;
  const before = conn.windowsSent;
  for (const payload of held) conn.consume(slow.callId, payload.length); // read at last
  await new Promise((resolve) => {
    arrived = () => {
      conn.consume(slow.callId, held[held.length - 1].length);
      if (held.length >= total) resolve();
    };
    if (held.length >= total) resolve();
  });
  conn.cancel(slow.callId);
  await slow.outcome;
  const seqs = held.map((p) => event(p).seq);
  print({
    step: "watch_flow_control", held_bytes: heldBytes, held_items: heldItems,
    biggest_item: biggest, total_items: held.length, expected_items: total,
    in_order: seqs.every((s, i) => s === i + 1), windows_sent: conn.windowsSent - before,
  });

  // 12. the deadline covers the stream (§ 18, § 7): timeout_ms 300 on the wire; the
  // items already there come first, then ERROR DEADLINE_EXCEEDED ends the call.
  const late = [];
  const timed = conn.stream(WATCH, new Map([[1, total]]), (payload) => {
    late.push(event(payload));
    conn.consume(timed.callId, payload.length);
  }, { timeout: 4, wireTimeoutMs: 300 });
  const timedOutcome = await timed.outcome;
  print({ step: "watch_deadline", items: late.map((e) => e.seq), ...report("watch_deadline", timedOutcome, "Result") });

  // 9. graceful close with one call still open: the server finishes it (§ 13)
  const last = conn.call(GET, new Map([[1, paymentId]]), { timeout: 2 });
  conn.goAway();
  const lastLine = report("get_payment_during_goaway", await last, "Result");
  print(lastLine);
  const closed = await Promise.race([
    conn.closed,
    new Promise((resolve) => setTimeout(() => resolve("timeout"), 5000)),
  ]);
  print({
    step: "close",
    ok: closed !== "timeout",
    reason: closed,
    server_goaway: conn.goaway,
    pings_answered: conn.pingsAnswered,
    late_frames: conn.lateFrames,
  });
  socket.destroy();
}

main().catch((err) => {
  process.stderr.write(`foreign client failed: ${err.stack ?? err}\n`);
  process.exit(1);
});
