// @ts-check
// The chat page: chatofpomelo's client flow (`docs/protocol.md` §7.1)
// on our own Pomelo client.
//
//   login form → gate.gateHandler.queryEntry {uid} → connector host/port
//   → connector.entryHandler.enter {username, rid} → {users}
//   → chat.chatHandler.send {rid, content, from, target}
//   pushes: onChat {msg, from, target}, onAdd {user}, onLeave {user},
//           onSystem {msg} (an operator's `shaddock broadcast`)
//
// The gate comes from `?gate=HOST:PORT`, limited to the gates the web server
// lists (see gate.js).
//
// The messages' types come from the Rust types of `shared/` (generated into
// types/chat.d.ts): with `// @ts-check` above, an editor or `tsc -p
// web-server/public/js` checks every request body, reply and push here
// against them (see docs/chat.md).

import { PomeloClient } from './pomelo-client.js';
import { fetchGates, gateAddress } from './gate.js';

/** @typedef {import('./types/chat').QueryEntryResponse} QueryEntryResponse */
/** @typedef {import('./types/chat').EnterRequest} EnterRequest */
/** @typedef {import('./types/chat').EnterResponse} EnterResponse */
/** @typedef {import('./types/chat').SendRequest} SendRequest */
/** @typedef {import('./types/chat').SendResponse} SendResponse */
/** @typedef {import('./types/chat').OnChat} OnChat */
/** @typedef {import('./types/chat').UserEvent} UserEvent */
/** @typedef {import('./types/chat').OnSystem} OnSystem */

const NAME_PATTERN = /^[a-zA-Z0-9_\u4e00-\u9fa5]{1,20}$/;
const GATE_ROUTE = 'gate.gateHandler.queryEntry';
const ENTER_ROUTE = 'connector.entryHandler.enter';
const SEND_ROUTE = 'chat.chatHandler.send';
const EVERYONE = '*';

/** Page elements are not type-checked (only the messages are). @type {(id: string) => any} */
const $ = (id) => document.getElementById(id);

const ui = {
  login: $('login'),
  loginForm: $('login-form'),
  loginButton: $('login-button'),
  loginError: $('login-error'),
  loginNotice: $('login-notice'),
  name: $('name'),
  room: $('room'),
  gateAddress: $('gate-address'),
  chat: $('chat'),
  roomName: $('room-name'),
  selfName: $('self-name'),
  connection: $('connection'),
  leave: $('leave'),
  memberList: $('member-list'),
  memberCount: $('member-count'),
  messages: $('messages'),
  composer: $('composer'),
  target: $('target'),
  message: $('message'),
};

/** Session state while in a room; null on the login screen. */
let session = null;

// ---------------------------------------------------------------------------
// Gate address and validation
// ---------------------------------------------------------------------------

/** Gates the web server allows (fetched once, when the page loads). */
const gateList = fetchGates();
const allowedGates = gateList.then((g) => g.gates);
// wss:// when the web server says the frontends serve TLS (or the page
// itself came over https: a browser refuses ws:// from an https page).
const secureSockets = gateList.then((g) => g.secure || window.location.protocol === 'https:');

/** Null if valid, otherwise a sentence explaining what is wrong. */
export function validateField(label, value) {
  if (!value) return `${label} is required.`;
  if (value.length > 20) return `${label} must be at most 20 characters.`;
  if (!NAME_PATTERN.test(value)) {
    return `${label} may only contain letters, digits, _ and Chinese characters.`;
  }
  return null;
}

// ---------------------------------------------------------------------------
// Login
// ---------------------------------------------------------------------------

function showLoginError(text) {
  ui.loginError.textContent = text;
  ui.loginError.hidden = !text;
}

function showLoginNotice(text) {
  ui.loginNotice.textContent = text;
  ui.loginNotice.hidden = !text;
}

function setBusy(busy) {
  ui.loginButton.disabled = busy;
  ui.loginButton.textContent = busy ? 'Connecting…' : 'Join room';
}

/** @returns {Promise<QueryEntryResponse>} */
async function queryEntry(gate, name) {
  const client = new PomeloClient();
  try {
    await client.init({ host: gate.host, port: gate.port, secure: await secureSockets });
    return await client.request(GATE_ROUTE, { uid: name });
  } finally {
    client.disconnect();
  }
}

async function onLogin(event) {
  event.preventDefault();
  const name = ui.name.value.trim();
  const room = ui.room.value.trim();
  const problem = validateField('Name', name) || validateField('Room', room);
  if (problem) {
    showLoginError(problem);
    return;
  }
  showLoginError('');
  showLoginNotice('');
  setBusy(true);
  try {
    let gate;
    try {
      gate = gateAddress(window.location, await allowedGates);
    } catch (err) {
      showLoginError(err.message);
      return;
    }
    let entry;
    try {
      entry = await queryEntry(gate, name);
    } catch (err) {
      console.warn(err);
      showLoginError(`Cannot reach the gate at ${gate.host}:${gate.port}. Is the chat server running?`);
      return;
    }
    if (!entry || entry.code !== 200 || !entry.host || !entry.port) {
      showLoginError('No chat server is available right now. Try again in a moment.');
      return;
    }
    await enterRoom(name, room, entry.host, entry.port);
  } finally {
    setBusy(false);
  }
}

async function enterRoom(name, room, host, port) {
  const client = new PomeloClient();
  try {
    await client.init({ host, port, secure: await secureSockets });
  } catch (err) {
    console.warn(err);
    showLoginError(`Cannot connect to the chat server at ${host}:${port}.`);
    return;
  }
  /** @type {EnterResponse} */
  let reply;
  try {
    /** @type {EnterRequest} */
    const body = { username: name, rid: room };
    reply = await client.request(ENTER_ROUTE, body);
  } catch (err) {
    console.warn(err);
    client.disconnect();
    showLoginError('The chat server did not answer. Try again.');
    return;
  }
  if (!('users' in reply) || !Array.isArray(reply.users)) {
    client.disconnect();
    // code 400 carries the server's own check of name and room (the same
    // rules as validateField, in case this page and the server disagree).
    let problem = 'The chat server refused to let you in. Try again.';
    if ('error' in reply && reply.error) {
      problem = `The name "${name}" is taken in this room. Please choose another name.`;
    } else if ('message' in reply && reply.code === 400 && reply.message) {
      problem = String(reply.message);
    }
    showLoginError(problem);
    ui.name.focus();
    return;
  }
  session = { client, name, room, members: new Set(), connector: `${host}:${port}` };
  client.on('onChat', onChat);
  client.on('onAdd', (/** @type {UserEvent} */ push) => push && push.user && addMember(push.user, true));
  client.on('onLeave', (/** @type {UserEvent} */ push) => push && push.user && removeMember(push.user));
  client.on('onSystem', (/** @type {OnSystem} */ push) => push && addSystem(`System: ${String(push.msg ?? '')}`));
  client.on('kick', (info) => {
    if (session && session.client === client) session.kickReason = info && info.reason;
  });
  client.on('disconnect', (info) => onDisconnect(client, info));
  client.on('error', (err) => console.warn('pomelo:', err.message));
  showChat(reply.users);
}

// ---------------------------------------------------------------------------
// Chat screen
// ---------------------------------------------------------------------------

function showChat(users) {
  ui.roomName.textContent = session.room;
  ui.selfName.textContent = session.name;
  ui.connection.textContent = `connector ${session.connector}`;
  ui.connection.dataset.connector = session.connector;
  ui.memberList.textContent = '';
  ui.messages.textContent = '';
  ui.target.textContent = '';
  ui.target.append(new Option('Everyone', EVERYONE));
  for (const user of users) addMember(user, false);
  addSystem(`You joined #${session.room}.`);
  ui.login.hidden = true;
  ui.chat.hidden = false;
  ui.message.value = '';
  ui.message.focus();
}

function addMember(user, announce) {
  if (!session || session.members.has(user)) return;
  session.members.add(user);
  const li = document.createElement('li');
  li.dataset.testid = 'member';
  li.dataset.name = user;
  li.textContent = user;
  if (user === session.name) {
    li.classList.add('self');
    const you = document.createElement('span');
    you.className = 'you';
    you.textContent = ' (you)';
    li.append(you);
  } else {
    li.title = `Send a private message to ${user}`;
    li.addEventListener('click', () => {
      ui.target.value = user;
      ui.message.focus();
    });
    ui.target.append(new Option(`${user} (private)`, user));
  }
  ui.memberList.append(li);
  ui.memberCount.textContent = String(session.members.size);
  if (announce) addSystem(`${user} joined.`);
}

function removeMember(user) {
  if (!session || !session.members.delete(user)) return;
  for (const li of ui.memberList.querySelectorAll('li')) {
    if (li.dataset.name === user) li.remove();
  }
  for (const opt of [...ui.target.options]) {
    if (opt.value === user) opt.remove();
  }
  if (!ui.target.value) ui.target.value = EVERYONE;
  ui.memberCount.textContent = String(session.members.size);
  addSystem(`${user} left.`);
}

/** @param {OnChat} push */
function onChat(push) {
  if (!session || !push) return;
  const from = String(push.from ?? '');
  const target = String(push.target ?? EVERYONE);
  addMessage({ from, target, text: String(push.msg ?? ''), mine: from === session.name });
}

function time() {
  return new Date().toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

/** Appends a chat bubble. Private messages carry a visible "private" badge. */
function addMessage({ from, target, text, mine }) {
  const isPrivate = target !== EVERYONE;
  const el = document.createElement('article');
  el.className = 'msg';
  if (mine) el.classList.add('mine');
  if (isPrivate) el.classList.add('private');
  el.dataset.testid = 'message';
  el.dataset.from = from;
  el.dataset.target = target;
  el.dataset.private = String(isPrivate);

  const meta = document.createElement('div');
  meta.className = 'meta';
  const who = document.createElement('span');
  who.className = 'who';
  if (isPrivate) {
    who.textContent = mine ? `you → ${target}` : `${from} → you`;
    const badge = document.createElement('span');
    badge.className = 'badge';
    badge.dataset.testid = 'private-badge';
    badge.textContent = 'private';
    meta.append(who, badge);
  } else {
    who.textContent = mine ? 'you' : from;
    meta.append(who);
  }
  const when = document.createElement('time');
  when.textContent = time();
  meta.append(when);

  const body = document.createElement('div');
  body.className = 'text';
  body.dataset.testid = 'message-text';
  body.textContent = text;
  el.append(meta, body);
  appendToLog(el);
}

function addSystem(text, failed = false) {
  const el = document.createElement('p');
  el.className = failed ? 'system failed' : 'system';
  el.dataset.testid = 'system-message';
  el.textContent = text;
  appendToLog(el);
}

function appendToLog(el) {
  const log = ui.messages;
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(el);
  if (atBottom) log.scrollTop = log.scrollHeight;
}

async function onSend(event) {
  event.preventDefault();
  if (!session) return;
  const content = ui.message.value.trim();
  if (!content) return;
  const target = ui.target.value || EVERYONE;
  const { client, name, room } = session;
  ui.message.value = '';
  try {
    /** @type {SendRequest} */
    const body = { rid: room, content, from: name, target };
    /** @type {SendResponse} */
    const reply = await client.request(SEND_ROUTE, body);
    if (reply && 'code' in reply && (reply.code === 500 || reply.error)) {
      addSystem(`Could not deliver your message${target === EVERYONE ? '' : ` to ${target}`}.`, true);
      return;
    }
    // Private messages are not pushed back to the sender: echo them here.
    if (session && target !== EVERYONE && target !== name) {
      addMessage({ from: name, target, text: content, mine: true });
    }
  } catch (err) {
    console.warn(err);
    if (session) addSystem(`Sending failed: ${err.message}`, true);
  }
}

function onDisconnect(client, info) {
  if (!session || session.client !== client) return;
  const { room, kickReason } = session;
  session = null;
  ui.chat.hidden = true;
  ui.login.hidden = false;
  if (info && info.byClient) {
    showLoginNotice(`You left #${room}.`);
  } else if (kickReason) {
    showLoginNotice(`You were disconnected by the server (${kickReason}).`);
  } else {
    showLoginNotice('Lost the connection to the chat server. Please log in again.');
    ui.loginNotice.title = info?.reason || '';
    console.warn('chat: disconnected:', info?.reason);
  }
  ui.login.dataset.lastDisconnect = info?.byClient ? 'client' : 'server';
}

function onLeave() {
  session?.client.disconnect();
}

// ---------------------------------------------------------------------------
// Wiring
// ---------------------------------------------------------------------------

async function start() {
  // Wired first: a submit while /gates.json loads must not fall through to
  // the browser's own form submission.
  ui.loginForm.addEventListener('submit', onLogin);
  ui.composer.addEventListener('submit', onSend);
  ui.leave.addEventListener('click', onLeave);
  try {
    const gate = gateAddress(window.location, await allowedGates);
    ui.gateAddress.textContent = `${gate.host}:${gate.port}`;
  } catch (err) {
    ui.gateAddress.textContent = err.message;
  }
  document.body.dataset.ready = 'true';
  ui.name.focus();
}

start();
