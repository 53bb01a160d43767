// The dashboard shell: sign-in, navigation (hash routes), the live clue stream, language.
import * as api from './api.js';
import { t, translate, setLang, getLang } from './i18n.js';
import { h, clear } from './dom.js';
import { cluesPage, cluePage } from './clues.js';
import { devicesPage, devicePage } from './devices.js';
import { camerasPage } from './cameras.js';
import { flightsPage } from './flights.js';
import { statsPage } from './stats.js';
import { oversightPage } from './oversight.js';

const main = document.getElementById('main');
import { session } from './state.js';

// Each page draws into the `view` it is given (see `render`).
const routes = [
  [/^#\/clues\/(\d+)$/, (m, view) => cluePage(view, Number(m[1]))],
  [/^#\/clues$/, (m, view) => cluesPage(view)],
  [/^#\/devices\/([^/]+)\/([^/]+)$/, (m, view) => devicePage(view, decodeURIComponent(m[1]), decodeURIComponent(m[2]))],
  [/^#\/devices$/, (m, view) => devicesPage(view)],
  [/^#\/cameras$/, (m, view) => camerasPage(view)],
  [/^#\/flights$/, (m, view) => flightsPage(view)],
  [/^#\/stats$/, (m, view) => statsPage(view)],
  [/^#\/oversight$/, (m, view) => oversightPage(view)],
];

let leave = null;
// Each render gets its own view element: a page whose data arrives after the user has moved on
// (signed in, then opened another page at once) draws into a detached view, never over the
// page now shown, and its clean-up runs at once.
let generation = 0;

async function render() {
  const mine = ++generation;
  if (leave) { leave(); leave = null; }
  translate();
  if (!session.me) return signIn();
  let hash = location.hash || '';
  if (!routes.some(([re]) => re.test(hash))) {
    hash = session.me.may_read_clues ? '#/clues' : '#/devices';
    history.replaceState(null, '', hash);
  }
  const page = hash.split('/')[1];
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.page === page);
  for (const [re, fn] of routes) {
    const m = hash.match(re);
    if (m) {
      const view = h('div', { class: 'view' }, h('p', { class: 'muted' }, '…'));
      clear(main, view);
      try {
        const done = (await fn(m, view)) ?? null;
        if (mine === generation) leave = done;
        else done?.();
      } catch (e) {
        clear(view, h('p', { class: 'error', id: 'page-error' },
          e.status === 403 ? `${t('err.forbidden')} (${e.message})` : t('err.load', { e: e.message })));
      }
      return;
    }
  }
}

function signIn(error) {
  document.getElementById('nav').hidden = true;
  document.getElementById('signout').hidden = true;
  document.getElementById('live').hidden = true;
  document.getElementById('who').textContent = '';
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'off', placeholder: 'gwt_…' });
  const form = h('form', { class: 'card signin', id: 'signin', onsubmit: async (e) => {
    e.preventDefault();
    api.setToken(input.value.trim());
    await start();
  } },
  h('h1', {}, t('signin.title')),
  h('label', { for: 'token' }, t('signin.token')),
  input,
  h('p', { class: 'muted' }, t('signin.help')),
  error ? h('p', { class: 'error', id: 'signin-error' }, error) : null,
  h('button', { type: 'submit' }, t('signin.go')));
  clear(main, form);
  input.focus();
}

async function start() {
  if (!api.token()) return signIn();
  try {
    session.me = await api.get('/api/v1/whoami');
  } catch (e) {
    api.setToken(null);
    session.me = null;
    return signIn(e.status === 401 ? t('signin.bad') : t('err.load', { e: e.message }));
  }
  const me = session.me;
  document.getElementById('nav').hidden = false;
  document.getElementById('signout').hidden = false;
  for (const a of document.querySelectorAll('#nav a')) {
    const needsClues = ['clues', 'stats', 'oversight'].includes(a.dataset.page);
    a.hidden = needsClues && !me.may_read_clues;
  }
  showWho();
  if (me.may_read_clues) startStream();
  render();
}

function showWho() {
  const me = session.me;
  if (!me) return;
  const sites = me.all_sites ? t('all.sites') : me.sites.join(', ');
  const org = [me.unit ? `${t('who.unit')} ${me.unit}` : null, me.department ? `${t('who.department')} ${me.department}` : null]
    .filter(Boolean).map((s) => ` · ${s}`).join('');
  document.getElementById('who').textContent = `${me.actor} · ${t('role.' + me.role)} · ${sites}${org}`;
}

function startStream() {
  const badge = document.getElementById('live');
  badge.hidden = false;
  const ctl = new AbortController();
  session.stream = ctl;
  let wasOn = null;
  const state = (on) => {
    if (on && wasOn === false) window.dispatchEvent(new CustomEvent('stream-reconnected'));
    if (wasOn !== null || on) wasOn = on;
    badge.classList.toggle('on', on);
    badge.dataset.state = on ? 'on' : 'off';
    badge.textContent = t(on ? 'live.on' : 'live.off');
  };
  state(false);
  api.streamEvents('/api/v1/clues/stream', (name, data) => {
    // Missed changes (the gateway's buffer overflowed for this client): reload what is shown.
    if (name === 'lagged') window.dispatchEvent(new CustomEvent('stream-reconnected'));
    if (name !== 'clue') return;
    try {
      window.dispatchEvent(new CustomEvent('clue-change', { detail: JSON.parse(data) }));
    } catch { /* a malformed event is skipped */ }
  }, state, ctl.signal);
}

function signOut() {
  session.stream?.abort();
  session.me = null;
  api.setToken(null);
  history.replaceState(null, '', '#');
  render();
}

document.getElementById('lang').addEventListener('click', () => {
  setLang(getLang() === 'zh' ? 'en' : 'zh');
  document.getElementById('lang').textContent = getLang() === 'zh' ? 'EN' : '中文';
  showWho();
  const badge = document.getElementById('live');
  if (badge.dataset.state) badge.textContent = t(badge.dataset.state === 'on' ? 'live.on' : 'live.off');
  render();
});
document.getElementById('signout').addEventListener('click', signOut);
window.addEventListener('hashchange', render);
window.addEventListener('unauthorized', () => { if (session.me) signOut(); });

setLang(getLang());
document.getElementById('lang').textContent = getLang() === 'zh' ? 'EN' : '中文';
start();
