// Unit tests of the pure codec half of public/js/pomelo-client.js against the
// byte vectors of shared/pomelo-protocol.md §11. Run: node --test web-server/js-tests/
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  PackageType,
  MessageType,
  ProtocolError,
  encodePackage,
  decodePackages,
  encodeVarint,
  decodeVarint,
  encodeMessage,
  decodeMessage,
  encodeBody,
  decodeBody,
  handshakeBody,
  dictionaryFromHandshake,
  strencode,
  strdecode,
} from '../public/js/pomelo-client.js';

/** "04 00 00 0B | 01 ..." → Uint8Array (separators and line breaks ignored). */
function hex(str) {
  const clean = str.replace(/[|\s]/g, '');
  assert.equal(clean.length % 2, 0, `odd hex string ${str}`);
  return Uint8Array.from(clean.match(/../g), (b) => parseInt(b, 16));
}

/** Concatenates byte arrays and ASCII strings (for vectors written as "route"). */
function bytes(...parts) {
  const arrays = parts.map((p) => (typeof p === 'string' ? strencode(p) : p));
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let o = 0;
  for (const a of arrays) {
    out.set(a, o);
    o += a.length;
  }
  return out;
}

const json = (obj) => strencode(JSON.stringify(obj));
const dataPackage = (msg, dict) => encodePackage(PackageType.DATA, encodeMessage(msg, dict));

const CHAT_DICT = {
  'chat.chatHandler.send': 1,
  'connector.entryHandler.enter': 2,
  'gate.gateHandler.queryEntry': 3,
};

test('11.1 heartbeat and 11.2 handshake ACK packages', () => {
  assert.deepEqual(encodePackage(PackageType.HEARTBEAT), hex('03 00 00 00'));
  assert.deepEqual(encodePackage(PackageType.HANDSHAKE_ACK), hex('02 00 00 00'));
  assert.deepEqual(decodePackages(hex('03 00 00 00')), [{ type: 3, body: new Uint8Array(0) }]);
});

test('11.3 client handshake package (with protoVersion, as the old client sends it)', () => {
  const body = '{"sys":{"type":"js-websocket","version":"0.0.1","rsa":{},"protoVersion":0}}';
  const expected = hex(`01 00 00 4B | 7B 22 73 79 73 22 3A 7B 22 74 79 70 65 22 3A 22 6A 73 2D 77
    65 62 73 6F 63 6B 65 74 22 2C 22 76 65 72 73 69 6F 6E 22 3A 22 30 2E 30
    2E 31 22 2C 22 72 73 61 22 3A 7B 7D 2C 22 70 72 6F 74 6F 56 65 72 73 69
    6F 6E 22 3A 30 7D 7D`);
  assert.deepEqual(encodePackage(PackageType.HANDSHAKE, body), expected);
});

test('our handshake body is exactly the documented sys object', () => {
  assert.equal(
    JSON.stringify(handshakeBody()),
    '{"sys":{"type":"js-websocket","version":"0.0.1","rsa":{}}}',
  );
  assert.equal(JSON.stringify(handshakeBody({ a: 1 })), '{"sys":{"type":"js-websocket","version":"0.0.1","rsa":{}},"user":{"a":1}}');
});

test('11.4 / 11.5 server handshake replies decode', () => {
  const [reply] = decodePackages(hex(`01 00 00 22 | 7B 22 63 6F 64 65 22 3A 32 30 30 2C 22 73 79 73 22 3A 7B 22
    68 65 61 72 74 62 65 61 74 22 3A 33 7D 7D`));
  assert.equal(reply.type, PackageType.HANDSHAKE);
  assert.deepEqual(decodeBody(reply.body), { code: 200, sys: { heartbeat: 3 } });
  const [reject] = decodePackages(hex('01 00 00 0C | 7B 22 63 6F 64 65 22 3A 35 30 31 7D'));
  assert.deepEqual(decodeBody(reject.body), { code: 501 });
});

test('11.6 request with an uncompressed route', () => {
  const expected = hex(`04 00 00 26 | 00 | 01 | 1C | 63 6F 6E 6E 65 63 74 6F 72 2E 65 6E 74 72 79
    48 61 6E 64 6C 65 72 2E 65 6E 74 65 72 | 7B 22 61 22 3A 31 7D`);
  const msg = { type: MessageType.REQUEST, id: 1, route: 'connector.entryHandler.enter', body: json({ a: 1 }) };
  assert.deepEqual(dataPackage(msg), expected);
  // A dictionary without this route leaves it uncompressed.
  assert.deepEqual(dataPackage(msg, { 'other.route.x': 9 }), expected);
  const [pkg] = decodePackages(expected);
  const decoded = decodeMessage(pkg.body);
  assert.equal(decoded.type, MessageType.REQUEST);
  assert.equal(decoded.id, 1);
  assert.equal(decoded.route, 'connector.entryHandler.enter');
  assert.equal(decoded.compressRoute, false);
  assert.deepEqual(decodeBody(decoded.body), { a: 1 });
});

test('11.7 request with the route compressed through the handshake dictionary', () => {
  const expected = hex('04 00 00 0B | 01 | 01 | 00 02 | 7B 22 61 22 3A 31 7D');
  const { routeToCode, codeToRoute } = dictionaryFromHandshake({ dict: CHAT_DICT });
  const msg = { type: MessageType.REQUEST, id: 1, route: 'connector.entryHandler.enter', body: json({ a: 1 }) };
  assert.deepEqual(dataPackage(msg, routeToCode), expected);
  const decoded = decodeMessage(decodePackages(expected)[0].body, codeToRoute);
  assert.equal(decoded.route, 'connector.entryHandler.enter');
  assert.equal(decoded.compressRoute, true);
  assert.equal(decoded.id, 1);
});

test('11.8 response id 300 (two-byte varint), no route', () => {
  const expected = hex('04 00 00 0F | 04 | AC 02 | 7B 22 63 6F 64 65 22 3A 32 30 30 7D');
  const msg = { type: MessageType.RESPONSE, id: 300, route: 'ignored.for.responses', body: json({ code: 200 }) };
  // Responses never carry a route, even if the dictionary knows it.
  assert.deepEqual(dataPackage(msg, { 'ignored.for.responses': 5 }), expected);
  const decoded = decodeMessage(decodePackages(expected)[0].body);
  assert.equal(decoded.type, MessageType.RESPONSE);
  assert.equal(decoded.id, 300);
  assert.equal(decoded.route, '');
  assert.deepEqual(decodeBody(decoded.body), { code: 200 });
});

test('11.9 push onChat with a JSON body', () => {
  const expected = hex(`04 00 00 2E | 06 | 06 | 6F 6E 43 68 61 74 | 7B 22 6D 73 67 22 3A 22 68 69 22
    2C 22 66 72 6F 6D 22 3A 22 62 6F 62 22 2C 22 74 61 72 67 65 74 22 3A 22 2A
    22 7D`);
  const body = { msg: 'hi', from: 'bob', target: '*' };
  assert.deepEqual(dataPackage({ type: MessageType.PUSH, route: 'onChat', body: json(body) }), expected);
  const decoded = decodeMessage(decodePackages(expected)[0].body, { 1: 'chat.chatHandler.send' });
  assert.equal(decoded.type, MessageType.PUSH);
  assert.equal(decoded.route, 'onChat');
  assert.deepEqual(decodeBody(decoded.body), body);
});

test('compressed push routes resolve through codeToRoute; unknown codes are reported', () => {
  const dict = dictionaryFromHandshake({
    dict: { onChat: 4 },
    routeToCode: { onChat: 4 },
    codeToRoute: { 4: 'onChat' },
  });
  const wire = encodeMessage({ type: MessageType.PUSH, route: 'onChat', body: json({}) }, dict.routeToCode);
  assert.deepEqual(wire, hex('07 00 04 7B 7D'));
  assert.equal(decodeMessage(wire, dict.codeToRoute).route, 'onChat');
  const unknown = decodeMessage(hex('07 00 09 7B 7D'), dict.codeToRoute);
  assert.equal(unknown.route, '9');
  assert.equal(unknown.unknownRouteCode, 9);
});

test('dictionaryFromHandshake: codeToRoute derived when absent; no dict means no compression', () => {
  const { codeToRoute } = dictionaryFromHandshake({ dict: CHAT_DICT });
  assert.equal(codeToRoute[3], 'gate.gateHandler.queryEntry');
  assert.deepEqual(dictionaryFromHandshake({ heartbeat: 3 }), { routeToCode: null, codeToRoute: null });
  assert.deepEqual(dictionaryFromHandshake(undefined), { routeToCode: null, codeToRoute: null });
});

test('11.11 notify chat.chatHandler.send with an empty object', () => {
  const expected = hex(`04 00 00 19 | 02 | 15 | 63 68 61 74 2E 63 68 61 74 48 61 6E 64 6C 65 72 2E 73 65 6E 64 | 7B 7D`);
  assert.deepEqual(dataPackage({ type: MessageType.NOTIFY, route: 'chat.chatHandler.send', body: encodeBody({}) }), expected);
  const decoded = decodeMessage(decodePackages(expected)[0].body);
  assert.equal(decoded.type, MessageType.NOTIFY);
  assert.equal(decoded.id, 0);
  assert.equal(decoded.route, 'chat.chatHandler.send');
  // Compressed notify: flag 0x03, no id.
  assert.deepEqual(
    encodeMessage({ type: MessageType.NOTIFY, route: 'chat.chatHandler.send', body: encodeBody({}) }, CHAT_DICT),
    hex('03 00 01 7B 7D'),
  );
});

test('11.12 kick package', () => {
  const wire = hex('05 00 00 11 | 7B 22 72 65 61 73 6F 6E 22 3A 22 6B 69 63 6B 22 7D');
  assert.deepEqual(encodePackage(PackageType.KICK, '{"reason":"kick"}'), wire);
  const [pkg] = decodePackages(wire);
  assert.equal(pkg.type, PackageType.KICK);
  assert.deepEqual(decodeBody(pkg.body), { reason: 'kick' });
});

test('11.13 several packages in one frame', () => {
  const frame = hex(`04 00 00 25 | 06 | 05 | 6F 6E 41 64 64 | 7B 22 72 6F 75 74 65 22 3A 22 6F 6E
    41 64 64 22 2C 22 75 73 65 72 22 3A 22 62 6F 62 22 7D
    04 00 00 29 | 06 | 07 | 6F 6E 4C 65 61 76 65 | 7B 22 72 6F 75 74 65 22 3A 22
    6F 6E 4C 65 61 76 65 22 2C 22 75 73 65 72 22 3A 22 61 6D 79 22 7D`);
  const pkgs = decodePackages(frame.buffer.slice(frame.byteOffset, frame.byteOffset + frame.byteLength));
  assert.equal(pkgs.length, 2);
  const [a, b] = pkgs.map((p) => decodeMessage(p.body));
  assert.equal(a.route, 'onAdd');
  assert.deepEqual(decodeBody(a.body), { route: 'onAdd', user: 'bob' });
  assert.equal(b.route, 'onLeave');
  assert.deepEqual(decodeBody(b.body), { route: 'onLeave', user: 'amy' });
  // Re-encoding both reproduces the frame byte for byte.
  const again = bytes(
    dataPackage({ type: MessageType.PUSH, route: 'onAdd', body: json({ route: 'onAdd', user: 'bob' }) }),
    dataPackage({ type: MessageType.PUSH, route: 'onLeave', body: json({ route: 'onLeave', user: 'amy' }) }),
  );
  assert.deepEqual(again, frame);
  // A heartbeat batched with data is found too.
  assert.deepEqual(decodePackages(bytes(hex('03 00 00 00'), frame)).map((p) => p.type), [3, 4, 4]);
});

test('11.14 chatofpomelo exchanges', () => {
  const gateReq = bytes(hex('04 00 00 2B 00 01 1B'), 'gate.gateHandler.queryEntry', '{"uid":"bob"}');
  assert.deepEqual(
    dataPackage({ type: MessageType.REQUEST, id: 1, route: 'gate.gateHandler.queryEntry', body: encodeBody({ uid: 'bob' }) }),
    gateReq,
  );
  const gateResp = bytes(hex('04 00 00 2D 04 01'), '{"code":200,"host":"127.0.0.1","port":3052}');
  const m = decodeMessage(decodePackages(gateResp)[0].body);
  assert.equal(m.id, 1);
  assert.deepEqual(decodeBody(m.body), { code: 200, host: '127.0.0.1', port: 3052 });

  const enterResp = bytes(hex('04 00 00 19 04 02'), '{"users":["amy","bob"]}');
  assert.deepEqual(decodeBody(decodeMessage(decodePackages(enterResp)[0].body).body), { users: ['amy', 'bob'] });
  const dup = bytes(hex('04 00 00 1B 04 02'), '{"code":500,"error":true}');
  assert.deepEqual(decodeBody(decodeMessage(decodePackages(dup)[0].body).body), { code: 500, error: true });
  const err = hex('04 00 00 0E | 04 | 02 | 7B 22 63 6F 64 65 22 3A 35 30 30 7D');
  assert.deepEqual(decodeBody(decodeMessage(decodePackages(err)[0].body).body), { code: 500 });

  const send = bytes(hex('04 00 00 3C 01 03 00 01'), '{"rid":"room1","content":"hi","from":"bob","target":"*"}');
  assert.deepEqual(
    dataPackage(
      {
        type: MessageType.REQUEST,
        id: 3,
        route: 'chat.chatHandler.send',
        body: encodeBody({ rid: 'room1', content: 'hi', from: 'bob', target: '*' }),
      },
      CHAT_DICT,
    ),
    send,
  );
  const sendResp = hex('04 00 00 04 | 04 | 03 | 7B 7D');
  const r = decodeMessage(decodePackages(sendResp)[0].body);
  assert.equal(r.id, 3);
  assert.deepEqual(decodeBody(r.body), {});
});

test('11.15 connector handshake reply of chatofpomelo-websocket: dictionary extracted', () => {
  const text =
    '{"code":200,"sys":{"heartbeat":3,"dict":{"chat.chatHandler.send":1,"connector.entryHandler.enter":2,"gate.gateHandler.queryEntry":3},"routeToCode":{"chat.chatHandler.send":1,"connector.entryHandler.enter":2,"gate.gateHandler.queryEntry":3},"codeToRoute":{"1":"chat.chatHandler.send","2":"connector.entryHandler.enter","3":"gate.gateHandler.queryEntry"},"dictVersion":"s2r1qfKDrbhWCkA6uf+PTA==","useDict":true,"protos":{"server":{"onChat":{"msg":{"option":"required","type":"string","tag":1},"from":{"option":"required","type":"string","tag":2},"target":{"option":"required","type":"string","tag":3},"__messages":{},"__tags":{"1":"msg","2":"from","3":"target"}}},"client":{},"version":"2zWPnSlRsRxjqgcU215Uxg=="},"useProto":true}}';
  const wire = encodePackage(PackageType.HANDSHAKE, text);
  assert.deepEqual(wire.subarray(0, 4), hex('01 00 02 D9'));
  const reply = decodeBody(decodePackages(wire)[0].body);
  const { routeToCode, codeToRoute } = dictionaryFromHandshake(reply.sys);
  assert.equal(routeToCode['chat.chatHandler.send'], 1);
  assert.equal(codeToRoute['2'], 'connector.entryHandler.enter');
});

test('11.16 varints', () => {
  const cases = [
    [0, '00'],
    [127, '7F'],
    [128, '80 01'],
    [255, 'FF 01'],
    [300, 'AC 02'],
    [16383, 'FF 7F'],
    [16384, '80 80 01'],
    [2097152, '80 80 80 01'],
    [268435456, '80 80 80 80 01'],
    [0xffffffff, 'FF FF FF FF 0F'],
  ];
  for (const [value, wire] of cases) {
    assert.deepEqual(encodeVarint(value), hex(wire), `encode ${value}`);
    assert.deepEqual(decodeVarint(hex(wire)), { value, length: hex(wire).length }, `decode ${value}`);
  }
  assert.throws(() => encodeVarint(-1), ProtocolError);
  assert.throws(() => decodeVarint(hex('80 80 80 80 80 01')), /longer than 5 bytes/);
  assert.throws(() => decodeVarint(hex('80 80')), /truncated/);
});

test('malformed input is a ProtocolError, never a crash or a silent success', () => {
  assert.throws(() => decodePackages(hex('04 00 00')), /truncated package header/);
  assert.throws(() => decodePackages(hex('04 00 00 05 01 02')), /truncated package body/);
  assert.throws(() => decodePackages(bytes(hex('03 00 00 00'), hex('04 00 00 09 00'))), ProtocolError);
  assert.throws(() => decodeMessage(new Uint8Array(0)), /empty message/);
  assert.throws(() => decodeMessage(hex('08 00')), /unknown message type/);
  assert.throws(() => decodeMessage(hex('00 81')), /truncated message id/);
  assert.throws(() => decodeMessage(hex('07 00')), /truncated route code/);
  assert.throws(() => decodeMessage(hex('06 05 6F 6E')), /truncated route/);
  assert.throws(() => decodeMessage(hex('06')), /truncated route length/);
  assert.throws(() => decodeBody(strencode('{nope')), /not JSON/);
  assert.throws(() => encodeMessage({ type: MessageType.NOTIFY, route: 'x'.repeat(256) }), /longer than 255 bytes/);
  assert.throws(() => encodeMessage({ type: 7, route: 'x' }), /unknown message type/);
  assert.throws(() => encodePackage(9), /unknown package type/);
  assert.deepEqual(decodeBody(new Uint8Array(0)), {});
  assert.deepEqual(decodePackages(new Uint8Array(0)), []);
});

test('the gzip flag bit (0x10) is ignored on input', () => {
  const m = decodeMessage(bytes(hex('16 02'), 'hi', '{}'));
  assert.equal(m.type, MessageType.PUSH);
  assert.equal(m.route, 'hi');
});

test('UTF-8 is real UTF-8, also outside the BMP (not the old CESU-8 encoder)', () => {
  assert.deepEqual(strencode('中文'), hex('E4 B8 AD E6 96 87'));
  assert.deepEqual(strencode('😀'), hex('F0 9F 98 80'));
  assert.equal(strdecode(hex('F0 9F 98 80')), '😀');
  assert.equal(strdecode(hex('FF 41')), '\uFFFDA'); // lenient, like Node's decoder
  const body = { msg: '你好 😀', from: '小明', target: '*' };
  const push = encodeMessage({ type: MessageType.PUSH, route: 'onChat', body: encodeBody(body) });
  assert.deepEqual(decodeBody(decodeMessage(push).body), body);
});
