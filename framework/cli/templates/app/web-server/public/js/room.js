// The room example's browser client, on the Pomelo client of
// `pomelo-client.js`:
//
//   gate.gateHandler.queryEntry {uid}       → {code, host, port} of a connector
//   connector.entryHandler.enter {uid, rid} → {code, users}
//   room.roomHandler.say {content}          → {code}
//   pushes: onChat {from, content, server}, onAdd {user}, onLeave {user}

import { PomeloClient } from './pomelo-client.js';

const $ = (id) => document.getElementById(id);

/** The gate: `?gate=HOST:PORT`, else this page's host and port 3014. */
function gateAddress() {
  const [host, port] = (new URLSearchParams(location.search).get('gate') || '').split(':');
  return { host: host || location.hostname || '127.0.0.1', port: Number(port) || 3014 };
}

/** The connected client, for the browser console: `await pomelo.request(route, msg)`. */
let client = null;

function log(text, system = false) {
  const p = document.createElement('p');
  p.textContent = text;
  if (system) p.className = 'system';
  $('log').append(p);
  $('log').scrollTop = $('log').scrollHeight;
}

function setMembers(users) {
  $('members').replaceChildren(
    ...users.map((user) => {
      const li = document.createElement('li');
      li.textContent = user;
      return li;
    }),
  );
}

function members() {
  return [...$('members').children].map((li) => li.textContent);
}

async function enter(event) {
  event.preventDefault();
  const uid = $('name').value.trim();
  const rid = $('rid').value.trim();
  const status = $('status');
  try {
    // 1. Ask the gate which connector to use, then hang up.
    const gate = new PomeloClient();
    let entry;
    try {
      await gate.init(gateAddress());
      entry = await gate.request('gate.gateHandler.queryEntry', { uid });
    } finally {
      gate.disconnect();
    }
    if (entry.code !== 200) throw new Error('no connector available');
    // 2. Connect to that connector and enter the room.
    const conn = new PomeloClient();
    await conn.init({ host: entry.host, port: entry.port });
    const reply = await conn.request('connector.entryHandler.enter', { uid, rid });
    if (reply.code !== 200) {
      conn.disconnect();
      throw new Error(reply.error || 'cannot enter');
    }
    client = window.pomelo = conn;
    conn.on('onChat', (m) => log(`${m.from}: ${m.content}`));
    conn.on('onAdd', (m) => {
      setMembers([...members(), m.user]);
      log(`${m.user} joined`, true);
    });
    conn.on('onLeave', (m) => {
      setMembers(members().filter((u) => u !== m.user));
      log(`${m.user} left`, true);
    });
    conn.on('disconnect', () => {
      client = window.pomelo = null;
      $('room').hidden = true;
      $('login').hidden = false;
      status.textContent = 'disconnected';
    });
    $('room-name').textContent = rid;
    setMembers(reply.users);
    $('login').hidden = true;
    $('room').hidden = false;
    $('content').focus();
  } catch (err) {
    status.textContent = `cannot enter: ${err.message}`;
  }
}

async function say(event) {
  event.preventDefault();
  const content = $('content').value;
  $('content').value = '';
  try {
    const reply = await client.request('room.roomHandler.say', { content });
    if (reply.code !== 200) log(`not sent: ${JSON.stringify(reply)}`, true);
  } catch (err) {
    log(`not sent: ${err.message}`, true);
  }
}

$('gate').textContent = `${gateAddress().host}:${gateAddress().port}`;
$('login-form').addEventListener('submit', enter);
$('say-form').addEventListener('submit', say);
