// PomeloClient (public/js/pomelo-client.js) over a real WebSocket connection
// to a small scripted Pomelo frontend written here on node:http: handshake
// and ACK, the route dictionary (compressed requests and pushes), several
// packages in one frame, heartbeats both ways, closing on a silent server,
// kick, handshake refusal, request timeouts and closes.
//
// Needs a WebSocket client in node: built in from node 22, behind
// --experimental-websocket in node 20 (web-server/tests/js_unit.rs passes it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHash } from 'node:crypto';

import {
  PomeloClient,
  PackageType,
  MessageType,
  encodePackage,
  decodePackages,
  encodeMessage,
  decodeMessage,
  encodeBody,
  decodeBody,
} from '../public/js/pomelo-client.js';

assert.ok(
  typeof WebSocket === 'function',
  'no global WebSocket: run node >= 22, or node 20 with --experimental-websocket',
);

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const DICT = {
  'chat.chatHandler.send': 1,
  'connector.entryHandler.enter': 2,
  'gate.gateHandler.queryEntry': 3,
  onChat: 4,
};
const CODE_TO_ROUTE = Object.fromEntries(Object.entries(DICT).map(([r, c]) => [c, r]));

/**
 * A WebSocket server (RFC 6455 server side, binary frames only) on a free
 * loopback port. `onConnection(conn)` gets {send(bytes), close(), packages}
 * where `packages` is an async queue of decoded client packages.
 */
async function startServer(onConnection) {
  const sockets = new Set();
  const server = createServer((req, res) => res.writeHead(426).end());
  server.on('upgrade', (req, socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const accept = createHash('sha1').update(req.headers['sec-websocket-key'] + WS_GUID).digest('base64');
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    socket.setNoDelay(true);
    const queue = [];
    const waiters = [];
    const push = (item) => (waiters.length ? waiters.shift()(item) : queue.push(item));
    const conn = {
      closed: false,
      send(bytes) {
        const len = bytes.length;
        const head = len < 126 ? Buffer.from([0x82, len]) : Buffer.from([0x82, 126, len >> 8, len & 0xff]);
        socket.write(Buffer.concat([head, Buffer.from(bytes)]));
      },
      close() {
        socket.end(Buffer.from([0x88, 0]));
      },
      /** Next client package, or null when the socket closed; fails after `ms`. */
      next(ms = 3000) {
        if (queue.length) return Promise.resolve(queue.shift());
        return new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no client package within ${ms} ms`)), ms);
          waiters.push((item) => {
            clearTimeout(timer);
            resolve(item);
          });
        });
      },
    };
    let buf = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (buf.length < 2) return;
        const opcode = buf[0] & 0x0f;
        let len = buf[1] & 0x7f;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          off = 4;
        } else if (len === 127) {
          if (buf.length < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          off = 10;
        }
        const masked = (buf[1] & 0x80) !== 0;
        const maskOff = off;
        if (masked) off += 4;
        if (buf.length < off + len) return;
        const payload = Buffer.from(buf.subarray(off, off + len));
        if (masked) for (let i = 0; i < len; i++) payload[i] ^= buf[maskOff + (i % 4)];
        buf = buf.subarray(off + len);
        if (opcode === 0x8) {
          conn.closed = true;
          socket.end(Buffer.from([0x88, 0]));
          push(null);
          return;
        }
        if (opcode === 0x2) for (const pkg of decodePackages(payload)) push(pkg);
      }
    });
    socket.on('close', () => {
      conn.closed = true;
      push(null);
    });
    onConnection(conn);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Server side of handshake + ACK; returns the client's handshake body. */
async function acceptHandshake(conn, sys) {
  const hs = await conn.next();
  assert.equal(hs.type, PackageType.HANDSHAKE);
  conn.send(encodePackage(PackageType.HANDSHAKE, encodeBody({ code: 200, sys })));
  const ack = await conn.next();
  assert.equal(ack.type, PackageType.HANDSHAKE_ACK);
  return decodeBody(hs.body);
}

function once(client, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "${event}" event within ${ms} ms`)), ms);
    client.on(event, (arg) => {
      clearTimeout(timer);
      resolve(arg);
    });
  });
}

test('handshake, dictionary-compressed request, several packages in one frame', async () => {
  let serverDone;
  const finished = new Promise((r) => (serverDone = r));
  const server = await startServer(async (conn) => {
    try {
      const hello = await acceptHandshake(conn, {
        heartbeat: 30,
        dict: DICT,
        routeToCode: DICT,
        codeToRoute: CODE_TO_ROUTE,
        dictVersion: 'x',
        useDict: true,
      });
      assert.deepEqual(hello, { sys: { type: 'js-websocket', version: '0.0.1', rsa: {} } });
      // Server rule: a heartbeat right after the ACK.
      conn.send(encodePackage(PackageType.HEARTBEAT));

      const req = await conn.next();
      assert.equal(req.type, PackageType.DATA);
      assert.equal(req.body[0], 0x01, 'request flag with the compressed-route bit');
      const msg = decodeMessage(req.body, CODE_TO_ROUTE);
      assert.equal(msg.route, 'connector.entryHandler.enter');
      assert.deepEqual(decodeBody(msg.body), { username: 'amy', rid: 'r1' });

      // One frame: an uncompressed push, a compressed push, an unknown-id
      // response (dropped) and the real response.
      const frame = Buffer.concat([
        encodePackage(PackageType.DATA, encodeMessage({ type: MessageType.PUSH, route: 'onAdd', body: encodeBody({ user: 'bob' }) })),
        encodePackage(PackageType.DATA, encodeMessage({ type: MessageType.PUSH, route: 'onChat', body: encodeBody({ msg: 'hi', from: 'bob', target: '*' }) }, DICT)),
        encodePackage(PackageType.DATA, encodeMessage({ type: MessageType.RESPONSE, id: msg.id + 1000, body: encodeBody({ stray: true }) })),
        encodePackage(PackageType.DATA, encodeMessage({ type: MessageType.RESPONSE, id: msg.id, body: encodeBody({ users: ['amy', 'bob'] }) })),
      ]);
      assert.equal(frame[encodePackage(PackageType.DATA, encodeMessage({ type: MessageType.PUSH, route: 'onAdd', body: encodeBody({ user: 'bob' }) })).length + 4], 0x07, 'onChat push is compressed');
      conn.send(frame);

      const notify = await conn.next();
      const n = decodeMessage(notify.body, CODE_TO_ROUTE);
      assert.equal(n.type, MessageType.NOTIFY);
      assert.equal(notify.body[0], 0x03, 'compressed notify');
      assert.equal(n.route, 'chat.chatHandler.send');
      const plain = decodeMessage((await conn.next()).body, CODE_TO_ROUTE);
      assert.equal(plain.type, MessageType.NOTIFY);
      assert.equal(plain.compressRoute, false);
      assert.equal(plain.route, 'not.in.dict');
      serverDone();
    } catch (err) {
      serverDone(err);
    }
  });

  const client = new PomeloClient();
  const pushes = [];
  client.on('onAdd', (b) => pushes.push(['onAdd', b]));
  client.on('onChat', (b) => pushes.push(['onChat', b]));
  const sys = await client.init({ host: '127.0.0.1', port: server.port });
  assert.equal(sys.heartbeat, 30);
  assert.ok(client.connected);
  const reply = await client.request('connector.entryHandler.enter', { username: 'amy', rid: 'r1' });
  assert.deepEqual(reply, { users: ['amy', 'bob'] });
  // Pushes that came earlier in the same frame were delivered first.
  assert.deepEqual(pushes, [
    ['onAdd', { user: 'bob' }],
    ['onChat', { msg: 'hi', from: 'bob', target: '*' }],
  ]);
  client.notify('chat.chatHandler.send', { content: 'x' });
  client.notify('not.in.dict', {});
  const err = await finished;
  if (err) throw err;
  const disconnected = once(client, 'disconnect');
  client.disconnect();
  const info = await disconnected;
  assert.equal(info.byClient, true);
  assert.equal(client.connected, false);
  await assert.rejects(client.request('x.y.z', {}), /not connected/);
  await server.stop();
});

test('heartbeats: the client answers each server heartbeat after the interval', async () => {
  const times = [];
  let serverDone;
  const finished = new Promise((r) => (serverDone = r));
  const server = await startServer(async (conn) => {
    try {
      await acceptHandshake(conn, { heartbeat: 0.2 });
      const start = Date.now();
      conn.send(encodePackage(PackageType.HEARTBEAT));
      for (let i = 0; i < 3; i++) {
        const pkg = await conn.next(2000);
        assert.equal(pkg.type, PackageType.HEARTBEAT);
        times.push(Date.now() - start);
        conn.send(encodePackage(PackageType.HEARTBEAT)); // server rule: answer at once
      }
      serverDone();
    } catch (err) {
      serverDone(err);
    }
  });
  const client = new PomeloClient();
  await client.init({ host: '127.0.0.1', port: server.port });
  const err = await finished;
  if (err) throw err;
  // One client heartbeat per ~200 ms interval, never early.
  assert.ok(times[0] >= 180 && times[0] < 1500, `first heartbeat after ${times[0]} ms`);
  assert.ok(times[2] - times[0] >= 360, `heartbeats at ${times}`);
  assert.ok(client.connected, 'a healthy connection stays open');
  client.disconnect();
  await server.stop();
});

test('a server that stops sending heartbeats is closed after 2 x interval', async () => {
  const server = await startServer(async (conn) => {
    await acceptHandshake(conn, { heartbeat: 0.2 });
    conn.send(encodePackage(PackageType.HEARTBEAT));
    // ...then silence, but the TCP connection stays open.
  });
  const client = new PomeloClient();
  const timedOut = once(client, 'heartbeatTimeout', 5000);
  const disconnected = once(client, 'disconnect', 5000);
  const pending = client.init({ host: '127.0.0.1', port: server.port }).then(() =>
    client.request('slow.handler.never', {}),
  );
  const started = Date.now();
  await timedOut;
  const info = await disconnected;
  const elapsed = Date.now() - started;
  assert.match(info.reason, /heartbeat timeout/);
  assert.equal(info.byClient, false);
  // interval (0.2 s) + 2 x interval (0.4 s), with slack.
  assert.ok(elapsed >= 450 && elapsed < 4000, `closed after ${elapsed} ms`);
  await assert.rejects(pending, /connection closed before the response/);
  await server.stop();
});

test('a server that never sends its first heartbeat is also detected', async () => {
  const server = await startServer(async (conn) => {
    await acceptHandshake(conn, { heartbeat: 0.2 });
  });
  const client = new PomeloClient();
  const disconnected = once(client, 'disconnect', 5000);
  await client.init({ host: '127.0.0.1', port: server.port });
  const info = await disconnected;
  assert.match(info.reason, /heartbeat timeout/);
  await server.stop();
});

test('kick: the reason is reported, then disconnect', async () => {
  const server = await startServer(async (conn) => {
    await acceptHandshake(conn, {});
    conn.send(encodePackage(PackageType.KICK, encodeBody({ reason: 'kick' })));
    setTimeout(() => conn.close(), 20);
  });
  const client = new PomeloClient();
  const kicked = once(client, 'kick');
  const disconnected = once(client, 'disconnect');
  await client.init({ host: '127.0.0.1', port: server.port });
  assert.deepEqual(await kicked, { reason: 'kick' });
  const info = await disconnected;
  assert.equal(info.byClient, false);
  assert.deepEqual(info.kick, { reason: 'kick' });
  assert.match(info.reason, /kicked by the server: kick/);
  await server.stop();
});

test('handshake refusals and dead addresses reject init with a clear error', async () => {
  const codes = [501, 500];
  const server = await startServer(async (conn) => {
    await conn.next();
    conn.send(encodePackage(PackageType.HANDSHAKE, encodeBody({ code: codes.shift() })));
  });
  await assert.rejects(new PomeloClient().init({ host: '127.0.0.1', port: server.port }), /client version/);
  await assert.rejects(new PomeloClient().init({ host: '127.0.0.1', port: server.port }), /handshake failed \(code 500\)/);
  await server.stop();
  await assert.rejects(
    new PomeloClient().init({ host: '127.0.0.1', port: server.port, timeoutMs: 2000 }),
    /cannot connect|closed during the handshake/,
  );
});

test('silent handshake and unanswered requests time out', async () => {
  let second = false;
  const server = await startServer(async (conn) => {
    if (!second) {
      second = true;
      return; // never answers the handshake
    }
    await acceptHandshake(conn, {});
    // never answers requests; answers a request after its timeout (dropped).
    const req = await conn.next();
    const { id } = decodeMessage(req.body);
    setTimeout(() => conn.send(encodePackage(PackageType.DATA, encodeMessage({ type: MessageType.RESPONSE, id, body: encodeBody({ late: true }) }))), 300);
  });
  await assert.rejects(
    new PomeloClient().init({ host: '127.0.0.1', port: server.port, timeoutMs: 300 }),
    /no handshake .* within 300 ms/,
  );
  const client = new PomeloClient();
  await client.init({ host: '127.0.0.1', port: server.port, requestTimeoutMs: 150 });
  await assert.rejects(client.request('a.b.c', {}), /no response to a.b.c within 150 ms/);
  await new Promise((r) => setTimeout(r, 300)); // the late response arrives and is dropped
  assert.ok(client.connected);
  client.disconnect();
  await server.stop();
});

test('malformed frames from the server close the connection with a protocol error', async () => {
  const server = await startServer(async (conn) => {
    await acceptHandshake(conn, {});
    conn.send(Uint8Array.from([0x04, 0x00, 0x00, 0x09, 0x06])); // truncated package
  });
  const client = new PomeloClient();
  const errors = [];
  client.on('error', (e) => errors.push(e.message));
  const disconnected = once(client, 'disconnect');
  await client.init({ host: '127.0.0.1', port: server.port });
  const info = await disconnected;
  assert.match(info.reason, /protocol error: truncated package body/);
  assert.equal(errors.length, 1);
  await server.stop();
});
