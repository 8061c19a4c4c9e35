// The page's gate choice (public/js/gate.js): `?gate=` only among the gates
// the web server lists at /gates.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { fetchAllowedGates, fetchGates, formatGate, gateAddress, parseGate } from '../public/js/gate.js';

const at = (search, hostname = 'chat.example') => ({ search, hostname });
const ALLOWED = ['127.0.0.1:3014', 'gate.example:443', '[::1]:3014'];

test('an allowed ?gate= is used', () => {
  assert.deepEqual(gateAddress(at('?gate=127.0.0.1:3014'), ALLOWED), { host: '127.0.0.1', port: 3014 });
  assert.deepEqual(gateAddress(at('?gate=gate.example:443'), ALLOWED), { host: 'gate.example', port: 443 });
  assert.deepEqual(gateAddress(at('?gate=[::1]:3014'), ALLOWED), { host: '::1', port: 3014 });
});

test('a ?gate= not in the list is refused, naming the allowed ones', () => {
  for (const bad of ['evil.example:3014', '127.0.0.1:3015', '127.0.0.2:3014', '[::2]:3014']) {
    assert.throws(
      () => gateAddress(at(`?gate=${bad}`), ALLOWED),
      /is not one of this site's gates \(allowed: 127\.0\.0\.1:3014, gate\.example:443, \[::1\]:3014\)/,
      bad,
    );
  }
  // A bare port means the page's host, which must be listed too.
  assert.throws(() => gateAddress(at('?gate=3014'), ALLOWED), /chat\.example:3014 is not one/);
  assert.deepEqual(gateAddress(at('?gate=3014', '127.0.0.1'), ALLOWED), { host: '127.0.0.1', port: 3014 });
  // No list at all: no ?gate= is accepted.
  assert.throws(() => gateAddress(at('?gate=127.0.0.1:3014'), []), /allowed: none/);
});

test('without ?gate= the first listed gate, else the page host and 3014', () => {
  assert.deepEqual(gateAddress(at(''), ALLOWED), { host: '127.0.0.1', port: 3014 });
  assert.deepEqual(gateAddress(at(''), []), { host: 'chat.example', port: 3014 });
});

test('malformed gates are errors', () => {
  assert.throws(() => parseGate('a:b:c', 'h'), /bad \?gate= value/);
  assert.throws(() => parseGate('host:99999', 'h'), /bad gate port/);
  assert.equal(formatGate({ host: '::1', port: 1 }), '[::1]:1');
});

test('the allowed list comes from gates.json, empty when it cannot be read', async () => {
  const ok = async () => ({ ok: true, json: async () => ({ gates: ['a:1', 7, 'b:2'] }) });
  assert.deepEqual(await fetchAllowedGates(ok), ['a:1', 'b:2']);
  assert.deepEqual(await fetchAllowedGates(async () => ({ ok: false })), []);
  const failing = async () => {
    throw new Error('offline');
  };
  const warn = console.warn;
  console.warn = () => {};
  try {
    assert.deepEqual(await fetchAllowedGates(failing), []);
  } finally {
    console.warn = warn;
  }
});

test('gates.json says whether the frontends serve wss://', async () => {
  const secure = async () => ({ ok: true, json: async () => ({ gates: ['a:1'], secure: true }) });
  assert.deepEqual(await fetchGates(secure), { gates: ['a:1'], secure: true });
  const plain = async () => ({ ok: true, json: async () => ({ gates: ['a:1'] }) });
  assert.deepEqual(await fetchGates(plain), { gates: ['a:1'], secure: false });
  const odd = async () => ({ ok: true, json: async () => ({ gates: [], secure: 'yes' }) });
  assert.equal((await fetchGates(odd)).secure, false, 'only a JSON true turns wss:// on');
});
