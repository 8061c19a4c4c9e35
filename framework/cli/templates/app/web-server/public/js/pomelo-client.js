// Pomelo client for browsers (ES module), speaking the Pomelo 2.x hybrid
// WebSocket protocol as described in `docs/protocol.md`:
//
//   package  = type (1 byte) | body length (u24 BE) | body      (§2)
//   message  = flag | [varint id] | [route] | body               (§3)
//
// The file has two halves:
//   1. pure codec functions (exported, no I/O, unit-tested with `node --test`
//      against the §11 byte vectors: web-server/js-tests/);
//   2. `PomeloClient`: one WebSocket connection with handshake, ACK,
//      heartbeats, route dictionary, request/response matching, pushes,
//      kick and disconnect events.
//
// Text is UTF-8 via TextEncoder/TextDecoder (the old pomelo browser client's
// per-UTF-16-unit encoder mangles characters outside the BMP; this one does not).
// Bodies are JSON; protobuf bodies (useProto) are not supported.

// ---------------------------------------------------------------------------
// 1. Codec
// ---------------------------------------------------------------------------

/** Package types (§2.1). */
export const PackageType = Object.freeze({
  HANDSHAKE: 1,
  HANDSHAKE_ACK: 2,
  HEARTBEAT: 3,
  DATA: 4,
  KICK: 5,
});

/** Message types (§3.2). */
export const MessageType = Object.freeze({
  REQUEST: 0,
  NOTIFY: 1,
  RESPONSE: 2,
  PUSH: 3,
});

const HEADER_LEN = 4;
const MAX_BODY_LEN = 0xffffff;
const MAX_VARINT_BYTES = 5;

/** Thrown by the decoders on malformed input. */
export class ProtocolError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ProtocolError';
  }
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8'); // replaces invalid sequences with U+FFFD

/** UTF-8 bytes of a string. */
export function strencode(str) {
  return utf8Encoder.encode(str);
}

/** String from UTF-8 bytes (lenient: invalid sequences become U+FFFD). */
export function strdecode(bytes) {
  return utf8Decoder.decode(bytes);
}

function toBytes(data) {
  if (data == null) return new Uint8Array(0);
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (typeof data === 'string') return strencode(data);
  throw new TypeError('expected bytes (Uint8Array/ArrayBuffer) or a string');
}

/**
 * Encodes one package: type byte, u24 BE body length, body.
 * @param {number} type one of PackageType
 * @param {Uint8Array|ArrayBuffer|string} [body]
 * @returns {Uint8Array}
 */
export function encodePackage(type, body) {
  const bytes = toBytes(body);
  if (!Number.isInteger(type) || type < 1 || type > 5) {
    throw new ProtocolError(`unknown package type ${type}`);
  }
  if (bytes.length > MAX_BODY_LEN) {
    throw new ProtocolError(`package body of ${bytes.length} bytes exceeds the 16 MiB limit`);
  }
  const out = new Uint8Array(HEADER_LEN + bytes.length);
  out[0] = type;
  out[1] = (bytes.length >> 16) & 0xff;
  out[2] = (bytes.length >> 8) & 0xff;
  out[3] = bytes.length & 0xff;
  out.set(bytes, HEADER_LEN);
  return out;
}

/**
 * Decodes every package of a frame (a frame may carry several, §2.2).
 * Bodies are views into the input, not copies.
 * @param {Uint8Array|ArrayBuffer} data
 * @returns {{type:number, body:Uint8Array}[]}
 */
export function decodePackages(data) {
  const bytes = toBytes(data);
  const out = [];
  let offset = 0;
  while (offset < bytes.length) {
    if (bytes.length - offset < HEADER_LEN) {
      throw new ProtocolError(`truncated package header at byte ${offset} (${bytes.length - offset} bytes left)`);
    }
    const type = bytes[offset];
    const len = (bytes[offset + 1] << 16) | (bytes[offset + 2] << 8) | bytes[offset + 3];
    const start = offset + HEADER_LEN;
    if (start + len > bytes.length) {
      throw new ProtocolError(`truncated package body: header says ${len} bytes, ${bytes.length - start} present`);
    }
    out.push({ type, body: bytes.subarray(start, start + len) });
    offset = start + len;
  }
  return out;
}

/** Varint (least-significant group first, §3.3) bytes of a non-negative id. */
export function encodeVarint(value) {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new ProtocolError(`message id ${value} is not a u32`);
  }
  const out = [];
  let n = value;
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Uint8Array.from(out);
}

/**
 * Decodes a varint at `offset`.
 * @returns {{value:number, length:number}} the value and the bytes consumed
 */
export function decodeVarint(bytes, offset = 0) {
  let value = 0;
  for (let i = 0; i < MAX_VARINT_BYTES; i++) {
    if (offset + i >= bytes.length) throw new ProtocolError('truncated message id');
    const b = bytes[offset + i];
    value += (b & 0x7f) * 2 ** (7 * i);
    if (b < 0x80) return { value, length: i + 1 };
  }
  throw new ProtocolError(`message id longer than ${MAX_VARINT_BYTES} bytes`);
}

function hasId(type) {
  return type === MessageType.REQUEST || type === MessageType.RESPONSE;
}

function hasRoute(type) {
  return type === MessageType.REQUEST || type === MessageType.NOTIFY || type === MessageType.PUSH;
}

/**
 * Encodes a message (§3). The route is compressed to its 2-byte code when
 * `routeToCode` has it (never for RESPONSE, which has no route).
 * @param {{type:number, id?:number, route?:string, body?:Uint8Array|string}} msg
 * @param {Record<string, number>|null} [routeToCode] the handshake dictionary
 * @returns {Uint8Array}
 */
export function encodeMessage({ type, id = 0, route = '', body }, routeToCode = null) {
  if (!Number.isInteger(type) || type < 0 || type > 3) {
    throw new ProtocolError(`unknown message type ${type}`);
  }
  const parts = [];
  let code;
  if (hasRoute(type) && routeToCode && Object.prototype.hasOwnProperty.call(routeToCode, route)) {
    code = routeToCode[route];
  }
  const compressed = code !== undefined;
  parts.push(Uint8Array.of((type << 1) | (compressed ? 1 : 0)));
  if (hasId(type)) parts.push(encodeVarint(id));
  if (hasRoute(type)) {
    if (compressed) {
      if (!Number.isInteger(code) || code < 1 || code > 0xffff) {
        throw new ProtocolError(`route code ${code} for "${route}" is not in 1..65535`);
      }
      parts.push(Uint8Array.of((code >> 8) & 0xff, code & 0xff));
    } else {
      const r = strencode(route);
      if (r.length > 255) throw new ProtocolError(`route "${route}" is longer than 255 bytes`);
      parts.push(Uint8Array.of(r.length), r);
    }
  }
  parts.push(toBytes(body));
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/**
 * Decodes a message (§3). A compressed route is resolved with `codeToRoute`;
 * an unknown code leaves `route` as the decimal code string (as the Pomelo
 * client does) and sets `unknownRouteCode`.
 * @param {Uint8Array|ArrayBuffer} data
 * @param {Record<string, string>|null} [codeToRoute]
 * @returns {{type:number, id:number, route:string, compressRoute:boolean, unknownRouteCode?:number, body:Uint8Array}}
 */
export function decodeMessage(data, codeToRoute = null) {
  const bytes = toBytes(data);
  if (bytes.length < 1) throw new ProtocolError('empty message');
  const flag = bytes[0];
  const type = (flag >> 1) & 0x7;
  if (type > 3) throw new ProtocolError(`unknown message type ${type} (flag 0x${flag.toString(16)})`);
  const compressRoute = (flag & 1) === 1;
  let offset = 1;
  let id = 0;
  if (hasId(type)) {
    const v = decodeVarint(bytes, offset);
    id = v.value;
    offset += v.length;
  }
  const msg = { type, id, route: '', compressRoute: false, body: null };
  if (hasRoute(type)) {
    if (compressRoute) {
      if (offset + 2 > bytes.length) throw new ProtocolError('truncated route code');
      const code = (bytes[offset] << 8) | bytes[offset + 1];
      offset += 2;
      msg.compressRoute = true;
      const route = codeToRoute ? codeToRoute[code] : undefined;
      if (typeof route === 'string') {
        msg.route = route;
      } else {
        msg.route = String(code);
        msg.unknownRouteCode = code;
      }
    } else {
      if (offset + 1 > bytes.length) throw new ProtocolError('truncated route length');
      const len = bytes[offset];
      offset += 1;
      if (offset + len > bytes.length) throw new ProtocolError('truncated route');
      msg.route = strdecode(bytes.subarray(offset, offset + len));
      offset += len;
    }
  }
  msg.body = bytes.subarray(offset);
  return msg;
}

/** JSON body bytes of a value (`JSON.stringify`, UTF-8). */
export function encodeBody(value) {
  return strencode(JSON.stringify(value === undefined ? {} : value));
}

/** Parses a JSON body; an empty body is `{}`. Throws ProtocolError on bad JSON. */
export function decodeBody(bytes) {
  if (!bytes || bytes.length === 0) return {};
  const text = strdecode(bytes);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ProtocolError(`body is not JSON (${err.message}): ${text.slice(0, 80)}`);
  }
}

/** The handshake body this client sends (§4.1). */
export function handshakeBody(user) {
  const body = { sys: { type: 'js-websocket', version: '0.0.1', rsa: {} } };
  if (user !== undefined) body.user = user;
  return body;
}

/**
 * Reads the route dictionary of a handshake reply's `sys` (§4.2, §5.2).
 * A reply without `dict` means "no compression" for this connection.
 * @returns {{routeToCode: Record<string, number>|null, codeToRoute: Record<string, string>|null}}
 */
export function dictionaryFromHandshake(sys) {
  const routeToCode = sys && (sys.routeToCode || sys.dict);
  if (!routeToCode || typeof routeToCode !== 'object') {
    return { routeToCode: null, codeToRoute: null };
  }
  let codeToRoute = sys.codeToRoute;
  if (!codeToRoute || typeof codeToRoute !== 'object') {
    codeToRoute = {};
    for (const [route, code] of Object.entries(routeToCode)) codeToRoute[code] = route;
  }
  return { routeToCode, codeToRoute };
}

// ---------------------------------------------------------------------------
// 2. Connection
// ---------------------------------------------------------------------------

// Request ids come from one counter shared by every connection of the page,
// as in the Pomelo client (§5.4): the gate request is 1, the connector's
// requests continue at 2, 3, ...
let lastRequestId = 0;
function nextRequestId() {
  lastRequestId = lastRequestId >= 0xffffffff ? 1 : lastRequestId + 1;
  return lastRequestId;
}

const State = Object.freeze({ IDLE: 0, CONNECTING: 1, HANDSHAKING: 2, WORKING: 3, CLOSED: 4 });

// Slack before declaring a heartbeat timeout (the Pomelo client uses 100 ms).
const HEARTBEAT_GAP_THRESHOLD_MS = 100;

/**
 * One connection to a Pomelo frontend (gate or connector).
 *
 * Events (`on(name, fn)`): every push route (fn gets the decoded body);
 * `disconnect` ({code, reason, byClient}) once the socket is closed after a
 * successful `init`; `kick` ({reason}) when the server sends KICK;
 * `heartbeatTimeout` before the client closes a silent connection;
 * `error` (Error) for protocol errors the app may want to log.
 */
export class PomeloClient {
  constructor() {
    this.listeners = new Map();
    this.state = State.IDLE;
    this.socket = null;
    this.pending = new Map(); // id -> {route, resolve, reject, timer}
    this.routeToCode = null;
    this.codeToRoute = null;
    this.heartbeatInterval = 0;
    this.heartbeatTimeout = 0;
    this.heartbeatSendTimer = null;
    this.heartbeatTimeoutTimer = null;
    this.nextHeartbeatDeadline = 0;
    this.requestTimeoutMs = 10000;
    this.sys = null;
  }

  /** Subscribes to a push route or a client event. Returns `this`. */
  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
    return this;
  }

  /** Removes one listener, or all listeners of `event` when `fn` is omitted. */
  off(event, fn) {
    if (!fn) this.listeners.delete(event);
    else this.listeners.get(event)?.delete(fn);
    return this;
  }

  emit(event, ...args) {
    const set = this.listeners.get(event);
    if (!set || set.size === 0) {
      if (event === 'error') console.warn('pomelo-client:', args[0]?.message ?? args[0]);
      return false;
    }
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (err) {
        console.error(`pomelo-client: listener for "${event}" threw`, err);
      }
    }
    return true;
  }

  /** True once the handshake is done and until the socket closes. */
  get connected() {
    return this.state === State.WORKING;
  }

  /**
   * Opens the WebSocket, performs handshake and ACK. Resolves with the
   * handshake reply's `sys` object; rejects if the server refuses, the socket
   * fails, or nothing completes within `timeoutMs`.
   * @param {{host:string, port:number, path?:string, secure?:boolean, user?:any,
   *          timeoutMs?:number, requestTimeoutMs?:number, WebSocket?:any}} params
   */
  init(params) {
    const { host, port, path = '/', secure = false, user, timeoutMs = 5000 } = params || {};
    if (this.state !== State.IDLE) {
      return Promise.reject(new Error('pomelo-client: init() may be called once per client'));
    }
    if (!host || !Number.isInteger(Number(port))) {
      return Promise.reject(new Error(`pomelo-client: bad address host=${host} port=${port}`));
    }
    if (params.requestTimeoutMs) this.requestTimeoutMs = params.requestTimeoutMs;
    const WS = params.WebSocket || globalThis.WebSocket;
    if (!WS) return Promise.reject(new Error('pomelo-client: no WebSocket implementation available'));
    const hostPart = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
    const url = `${secure ? 'wss' : 'ws'}://${hostPart}:${port}${path}`;

    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.teardown();
        reject(err);
      };
      const timer = setTimeout(
        () => fail(new Error(`pomelo-client: no handshake from ${url} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.onHandshakeDone = (err, sys) => {
        if (err) return fail(err);
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(sys);
      };

      this.state = State.CONNECTING;
      let socket;
      try {
        socket = new WS(url);
      } catch (err) {
        fail(new Error(`pomelo-client: cannot open ${url}: ${err.message}`));
        return;
      }
      this.socket = socket;
      socket.binaryType = 'arraybuffer';
      socket.onopen = () => {
        this.state = State.HANDSHAKING;
        this.sendPackage(PackageType.HANDSHAKE, encodeBody(handshakeBody(user)));
      };
      socket.onmessage = (event) => this.onFrame(event.data);
      socket.onerror = () => {
        // Browsers give no detail here; the close event follows.
        if (!settled) fail(new Error(`pomelo-client: cannot connect to ${url}`));
      };
      socket.onclose = (event) => {
        if (!settled) {
          fail(new Error(`pomelo-client: ${url} closed during the handshake (code ${event.code})`));
          return;
        }
        this.onSocketClosed(event);
      };
    });
  }

  /**
   * Sends a REQUEST and resolves with the response body (§5.4). Rejects when
   * not connected, when the connection closes first, or after the request
   * timeout (default 10 s, `init({requestTimeoutMs})`).
   */
  request(route, msg = {}) {
    if (!this.connected) {
      return Promise.reject(new Error(`pomelo-client: cannot request ${route}: not connected`));
    }
    const id = nextRequestId();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`pomelo-client: no response to ${route} within ${this.requestTimeoutMs} ms`));
      }, this.requestTimeoutMs);
      this.pending.set(id, { route, resolve, reject, timer });
      try {
        this.sendMessage({ type: MessageType.REQUEST, id, route, body: encodeBody(msg) });
      } catch (err) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(err);
      }
    });
  }

  /** Sends a NOTIFY (no response). Throws when not connected. */
  notify(route, msg = {}) {
    if (!this.connected) throw new Error(`pomelo-client: cannot notify ${route}: not connected`);
    this.sendMessage({ type: MessageType.NOTIFY, route, body: encodeBody(msg) });
  }

  /** Closes the connection; `disconnect` is emitted with `byClient: true`. */
  disconnect() {
    if (this.state === State.CLOSED || this.state === State.IDLE) return;
    if (this.state !== State.WORKING) {
      // init() is still running: make it fail instead.
      this.onHandshakeDone?.(new Error('pomelo-client: disconnected before the handshake finished'));
      return;
    }
    this.closeNow({ code: 1000, reason: 'closed by the client', byClient: true });
  }

  // -- internals ------------------------------------------------------------

  sendPackage(type, body) {
    if (!this.socket || this.socket.readyState !== 1) return;
    this.socket.send(encodePackage(type, body));
  }

  sendMessage(msg) {
    this.sendPackage(PackageType.DATA, encodeMessage(msg, this.routeToCode));
  }

  onFrame(data) {
    if (typeof data === 'string') {
      this.protocolError(new ProtocolError('server sent a text frame; Pomelo servers send binary frames'));
      return;
    }
    let packages;
    try {
      packages = decodePackages(data);
    } catch (err) {
      this.protocolError(err);
      return;
    }
    // Any traffic from the server proves it is alive (§4.4 client rule 2).
    if (this.heartbeatTimeout) this.nextHeartbeatDeadline = Date.now() + this.heartbeatTimeout;
    for (const pkg of packages) {
      if (this.state === State.CLOSED) return;
      try {
        this.onPackage(pkg);
      } catch (err) {
        this.emit('error', err);
      }
    }
  }

  onPackage({ type, body }) {
    switch (type) {
      case PackageType.HANDSHAKE:
        return this.onHandshake(body);
      case PackageType.HEARTBEAT:
        return this.onHeartbeat();
      case PackageType.DATA:
        return this.onData(body);
      case PackageType.KICK:
        return this.onKick(body);
      default:
        this.emit('error', new ProtocolError(`ignoring package of unknown type ${type}`));
    }
  }

  onHandshake(body) {
    if (this.state !== State.HANDSHAKING) return;
    let reply;
    try {
      reply = decodeBody(body);
    } catch (err) {
      this.onHandshakeDone(err);
      return;
    }
    if (reply.code === 501) {
      this.onHandshakeDone(new Error('pomelo-client: handshake refused (501): client version not fulfilled'));
      return;
    }
    if (reply.code !== 200) {
      this.onHandshakeDone(new Error(`pomelo-client: handshake failed (code ${reply.code})`));
      return;
    }
    const sys = reply.sys || {};
    if (sys.useProto) {
      console.warn('pomelo-client: server announces protobuf bodies; this client sends and expects JSON');
    }
    const dict = dictionaryFromHandshake(sys);
    this.routeToCode = dict.routeToCode;
    this.codeToRoute = dict.codeToRoute;
    if (typeof sys.heartbeat === 'number' && sys.heartbeat > 0) {
      this.heartbeatInterval = sys.heartbeat * 1000;
      this.heartbeatTimeout = this.heartbeatInterval * 2;
    }
    this.sys = sys;
    this.sendPackage(PackageType.HANDSHAKE_ACK);
    this.state = State.WORKING;
    // The server answers the ACK with a heartbeat at once (§4.4 server rule
    // 1); arm the timeout now so a server that never sends one is noticed.
    if (this.heartbeatTimeout) this.armHeartbeatTimeout();
    this.onHandshakeDone(null, sys);
  }

  onHeartbeat() {
    if (!this.heartbeatInterval) return; // heartbeats not negotiated
    clearTimeout(this.heartbeatTimeoutTimer);
    this.heartbeatTimeoutTimer = null;
    if (this.heartbeatSendTimer) return; // a send is already scheduled
    this.heartbeatSendTimer = setTimeout(() => {
      this.heartbeatSendTimer = null;
      if (!this.connected) return;
      this.sendPackage(PackageType.HEARTBEAT);
      this.armHeartbeatTimeout();
    }, this.heartbeatInterval);
  }

  armHeartbeatTimeout() {
    clearTimeout(this.heartbeatTimeoutTimer);
    this.nextHeartbeatDeadline = Date.now() + this.heartbeatTimeout;
    const check = () => {
      const gap = this.nextHeartbeatDeadline - Date.now();
      if (gap > HEARTBEAT_GAP_THRESHOLD_MS) {
        this.heartbeatTimeoutTimer = setTimeout(check, gap);
        return;
      }
      this.heartbeatTimeoutTimer = null;
      this.emit('heartbeatTimeout', { timeoutMs: this.heartbeatTimeout });
      this.disconnectWithReason('server heartbeat timeout');
    };
    this.heartbeatTimeoutTimer = setTimeout(check, this.heartbeatTimeout);
  }

  onData(body) {
    if (this.state !== State.WORKING) return;
    const msg = decodeMessage(body, this.codeToRoute);
    if (msg.type === MessageType.RESPONSE) {
      const entry = this.pending.get(msg.id);
      if (!entry) return; // unknown or timed-out id: dropped (§5.4)
      this.pending.delete(msg.id);
      clearTimeout(entry.timer);
      try {
        entry.resolve(decodeBody(msg.body));
      } catch (err) {
        entry.reject(err);
      }
      return;
    }
    if (msg.type === MessageType.PUSH) {
      if (msg.unknownRouteCode !== undefined) {
        this.emit('error', new ProtocolError(`push with unknown route code ${msg.unknownRouteCode}`));
      }
      this.emit(msg.route, decodeBody(msg.body));
      return;
    }
    this.emit('error', new ProtocolError(`unexpected message type ${msg.type} from the server`));
  }

  onKick(body) {
    let info;
    try {
      info = decodeBody(body);
    } catch {
      info = { reason: strdecode(body) };
    }
    this.kickInfo = info;
    this.emit('kick', info);
  }

  protocolError(err) {
    this.emit('error', err);
    this.disconnectWithReason(`protocol error: ${err.message}`);
  }

  disconnectWithReason(reason) {
    if (this.state !== State.WORKING) {
      this.onHandshakeDone?.(new Error(`pomelo-client: ${reason}`));
      return;
    }
    this.closeNow({ code: 4000, reason, byClient: false });
  }

  // Closes the socket and reports `disconnect` at once: a browser may wait a
  // long time for a dead peer's closing handshake, the app should not.
  closeNow({ code, reason, byClient }) {
    if (this.state === State.CLOSED) return;
    this.teardown();
    this.emit('disconnect', { code, reason, byClient, kick: this.kickInfo || null });
  }

  onSocketClosed(event) {
    const reason = this.kickInfo
      ? `kicked by the server: ${this.kickInfo.reason}`
      : event.reason || `connection closed by the server (code ${event.code})`;
    this.closeNow({ code: event.code, reason, byClient: false });
  }

  teardown() {
    this.state = State.CLOSED;
    clearTimeout(this.heartbeatSendTimer);
    clearTimeout(this.heartbeatTimeoutTimer);
    this.heartbeatSendTimer = null;
    this.heartbeatTimeoutTimer = null;
    for (const [id, entry] of this.pending) {
      clearTimeout(entry.timer);
      entry.reject(new Error(`pomelo-client: connection closed before the response to ${entry.route}`));
      this.pending.delete(id);
    }
    if (this.socket) {
      this.socket.onopen = this.socket.onmessage = this.socket.onerror = this.socket.onclose = null;
      try {
        if (this.socket.readyState <= 1) this.socket.close();
      } catch {
        // ignore
      }
    }
  }
}
