// Which gate the chat page connects to (pure functions: unit-tested in
// js-tests/gate.test.mjs).
//
// `?gate=HOST:PORT` picks the gate (tests run clusters on free ports), but
// only one of the gates the web server lists at /gates.json (the gates of
// its servers.json): a link to this page must not be able to send a user's
// name and messages to any host. Without `?gate=` the page uses the first
// listed gate, or, when the server lists none, its own host name and 3014.

/** `host:port` as /gates.json writes it (IPv6 hosts in brackets). */
export function formatGate({ host, port }) {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Parses `HOST:PORT`, `[IPv6]:PORT` or a bare port (on `fallbackHost`). */
export function parseGate(text, fallbackHost) {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text.trim());
  if (!m) {
    const port = Number(text);
    if (Number.isInteger(port) && port > 0 && port < 65536) return { host: fallbackHost, port };
    throw new Error(`bad ?gate= value "${text}" (expected HOST:PORT)`);
  }
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw new Error(`bad gate port in "${text}"`);
  return { host: m[1] || m[2] || fallbackHost, port };
}

/**
 * The gate to use: `?gate=` if it is one of `allowed` (the /gates.json
 * list), else an error saying which gates are allowed; without `?gate=`
 * the first allowed gate, or the page's host name and 3014.
 */
export function gateAddress(loc, allowed) {
  const fallbackHost = loc.hostname || '127.0.0.1';
  const param = new URLSearchParams(loc.search).get('gate');
  if (!param) {
    return allowed.length ? parseGate(allowed[0], fallbackHost) : { host: fallbackHost, port: 3014 };
  }
  const gate = parseGate(param, fallbackHost);
  if (!allowed.includes(formatGate(gate))) {
    const list = allowed.length ? allowed.join(', ') : 'none';
    throw new Error(`gate ${formatGate(gate)} is not one of this site's gates (allowed: ${list})`);
  }
  return gate;
}

/**
 * The web server's /gates.json: the allowed gates, and whether the
 * frontends serve `wss://` (`secure`). Empty and not secure on failure.
 */
export async function fetchGates(fetchFn = fetch) {
  try {
    const res = await fetchFn('gates.json', { cache: 'no-store' });
    if (!res.ok) return { gates: [], secure: false };
    const body = await res.json();
    const gates = Array.isArray(body.gates) ? body.gates.filter((g) => typeof g === 'string') : [];
    return { gates, secure: body.secure === true };
  } catch (err) {
    console.warn('gates.json:', err);
    return { gates: [], secure: false };
  }
}

/** The allowed gates from the web server's /gates.json (empty on failure). */
export async function fetchAllowedGates(fetchFn = fetch) {
  return (await fetchGates(fetchFn)).gates;
}
