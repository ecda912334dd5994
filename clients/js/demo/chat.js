// The chat demo: joins a room of the `chat` sample function through the wsfn client.
// The function's protocol: connect to /chat?room=ROOM&user=NAME, send text, and receive
// {"type":"join"|"message"|"leave","user":...,"text":...} (and {"type":"error",...}).

import { connect } from '../wsfn.js';

const $ = (id) => document.getElementById(id);
const status = $('status');
const messages = $('messages');
let chat = null;

function setStatus(state, text) {
  status.dataset.state = state;
  status.textContent = text;
}

/** Appends one line; text goes in as text, never as markup. */
function show(kind, user, text) {
  const item = document.createElement('li');
  item.className = kind;
  if (user !== undefined) {
    const who = document.createElement('span');
    who.className = 'user';
    who.textContent = `${user}:`;
    item.append(who);
  }
  item.append(text);
  messages.append(item);
  messages.scrollTop = messages.scrollHeight;
}

function onMessage(event) {
  const message = event.json;
  if (!message || typeof message !== 'object') {
    show('notice', undefined, String(event.data));
    return;
  }
  switch (message.type) {
    case 'message':
      show('message', message.user, message.text);
      break;
    case 'join':
      show('notice', undefined, `${message.user} joined`);
      break;
    case 'leave':
      show('notice', undefined, `${message.user} left`);
      break;
    case 'error':
      show('error', undefined, message.text);
      break;
    default:
      show('notice', undefined, event.data);
  }
}

function join(user, room) {
  chat = connect('chat', { query: { room, user } });
  let resumes = 0;
  let resuming = false;
  setStatus('connecting', 'connecting…');
  chat.addEventListener('open', () => setStatus('open', `connected as ${user}`));
  chat.addEventListener('message', onMessage);
  // A resumed session is the same connection: nothing was lost, so only the status says so.
  chat.addEventListener('resumed', () => {
    resumes += 1;
    setStatus('open', `connected as ${user} · resumed after ${resumes === 1 ? 'a drop' : `${resumes} drops`}`);
  });
  chat.addEventListener('reset', (event) =>
    show('notice', undefined, `the connection could not be resumed (${event.reason}): lines in flight may be lost`),
  );
  chat.addEventListener('reconnecting', (event) => {
    const what = resuming ? 'resuming' : 'reconnecting';
    setStatus('reconnecting', `${what} (attempt ${event.attempt}, in ${(event.delay / 1000).toFixed(1)} s)`);
  });
  chat.addEventListener('close', (event) => {
    resuming = event.willResume;
    if (event.willResume) return;
    if (event.willReconnect) {
      show('notice', undefined, `connection lost (${event.code})`);
      return;
    }
    setStatus('closed', `closed (${event.code}${event.reason ? `: ${event.reason}` : ''})`);
    $('join').hidden = false;
    $('chat').hidden = true;
  });
  $('where').textContent = `Room “${room}”`;
  messages.replaceChildren();
  $('join').hidden = true;
  $('chat').hidden = false;
  $('text').focus();
}

$('join').addEventListener('submit', (event) => {
  event.preventDefault();
  const user = $('user').value.trim();
  const room = $('room').value.trim();
  if (user && room) join(user, room);
});

$('compose').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('text').value;
  if (!text.trim() || !chat) return;
  if (chat.send(text)) {
    $('text').value = '';
  } else {
    show('error', undefined, 'not sent: the connection is closed or too much is waiting');
  }
});

$('leave').addEventListener('click', () => chat?.close(1000, 'left the room'));

// A page going away closes its socket with 1001, which leaves a session waiting for a resume
// that never comes: closing first tells the room at once.
addEventListener('pagehide', () => chat?.close(1000, 'left the page'));

// ?user=ann&room=lobby fills the form in, for links to a room.
const params = new URLSearchParams(location.search);
if (params.get('user')) $('user').value = params.get('user');
if (params.get('room')) $('room').value = params.get('room');
