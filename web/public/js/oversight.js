// Supervision (督办): the oversight warnings and the notices made from them, red first (the
// gateway sends both lists in that order). Supervisors turn a warning into a notice to a unit
// and close, reopen or escalate notices; the unit's officers acknowledge and report the fix;
// auditors read. The gateway decides who may do what; buttons only follow the role.
import * as api from './api.js';
import { t, fmtTime } from './i18n.js';
import { h, clear, toast } from './dom.js';
import { session } from './state.js';

const DIRECTS = ['supervisor', 'admin'];
const ANSWERS = ['inspector', 'platform', 'admin'];

function levelTag(level) {
  return level && level !== 'none' ? h('span', { class: `tag esc-${level}` }, t('esc.' + level)) : h('span', { class: 'muted' }, '–');
}

async function run(path, body, what, reload) {
  try {
    await api.post(path, body);
    toast(t('act.done', { a: what }));
    await reload();
  } catch (e) {
    toast(t('act.failed', { e: e.message }));
  }
}

function issueForm(w, reload) {
  const unit = h('input', { id: `notice-unit-${w.id}`, placeholder: t('sv.unit_hint') });
  const days = h('input', { id: `notice-days-${w.id}`, type: 'number', min: '1', step: '1', value: '15', class: 'short' });
  const note = h('input', { id: `notice-note-${w.id}`, placeholder: t('sv.note') });
  const go = () => {
    if (!unit.value.trim()) return toast(t('sv.need_unit'));
    return run(`/api/v1/oversight/warnings/${w.id}/notice`,
      { unit: unit.value.trim(), due_days: Number(days.value), note: note.value.trim() }, t('sv.issue'), reload);
  };
  return h('div', { class: 'actions' }, unit, h('label', {}, `${t('sv.days')} `, days), note,
    h('button', { type: 'button', id: `issue-${w.id}`, onclick: go }, t('sv.issue')));
}

function warningsCard(list, role, noticed, reload) {
  const rows = list.map((w) => h('tr', { class: `esc-row-${w.level}`, id: `warning-${w.id}`, dataset: { level: w.level, model: w.model } },
    h('td', {}, levelTag(w.level)),
    h('td', {}, w.model),
    h('td', {}, w.site ?? t('all.sites')),
    h('td', {}, w.clue_id != null ? h('a', { href: `#/clues/${w.clue_id}` }, `#${w.clue_id}`) : '–'),
    h('td', {}, w.message,
      noticed.has(w.id) ? h('div', { class: 'muted' }, t('sv.has_notice', { n: noticed.get(w.id) }))
        : DIRECTS.includes(role) ? issueForm(w, reload) : null),
    h('td', {}, fmtTime(w.updated_ms))));
  return h('div', { class: 'card', id: 'warnings' },
    h('h2', {}, t('sv.warnings')),
    rows.length
      ? h('table', {}, h('thead', {}, h('tr', {}, ['col.level', 'sv.model', 'col.site', 'sv.clue', 'sv.message', 'sv.updated'].map((k) => h('th', {}, t(k))))),
        h('tbody', {}, rows))
      : h('p', { class: 'muted' }, t('sv.nowarnings')));
}

function noticeActions(n, role, reload) {
  if (n.state === 'closed') return null;
  const text = h('input', { id: `notice-text-${n.id}`, placeholder: t('sv.text_hint') });
  const path = `/api/v1/oversight/notices/${n.id}/actions`;
  const b = (action, body, label) => h('button', {
    type: 'button', id: `notice-${action}-${n.id}`, onclick: () => run(path, { action, ...body() }, label, reload),
  }, label);
  const buttons = [];
  if (ANSWERS.includes(role) && n.state === 'issued') buttons.push(b('acknowledge', () => ({ note: text.value.trim() }), t('sv.ack')));
  if (ANSWERS.includes(role) && n.state === 'acknowledged') buttons.push(b('report_fixed', () => ({ statement: text.value.trim() }), t('sv.fixed')));
  if (DIRECTS.includes(role)) {
    buttons.push(b('close', () => ({ note: text.value.trim() }), t('sv.close')));
    if (n.state === 'fixed') buttons.push(b('reopen', () => ({ note: text.value.trim() }), t('sv.reopen')));
    buttons.push(b('escalate', () => ({ to: text.value.trim() }), t('sv.escalate')));
  }
  return buttons.length ? h('div', { class: 'actions' }, text, buttons) : null;
}

function noticesCard(list, role, reload) {
  const rows = list.map((n) => h('tr', { class: `esc-row-${n.level}`, id: `notice-${n.id}`, dataset: { level: n.level, state: n.state } },
    h('td', {}, levelTag(n.level)),
    h('td', {}, h('span', { class: 'tag status' }, t('sv.st.' + n.state))),
    h('td', {}, n.unit, n.escalated_to ? h('div', { class: 'muted' }, `${t('sv.escalated_to')}: ${n.escalated_to}`) : null),
    h('td', {}, n.site ?? t('all.sites')),
    h('td', {}, fmtTime(n.deadline_ms)),
    h('td', {}, `${n.model}: ${n.message}`,
      n.note ? h('div', { class: 'muted' }, `${t('sv.note')}: ${n.note}`) : null,
      n.statement ? h('div', {}, `${t('sv.statement')}: ${n.statement}`) : null,
      noticeActions(n, role, reload))));
  return h('div', { class: 'card', id: 'notices' },
    h('h2', {}, t('sv.notices')),
    rows.length
      ? h('table', {}, h('thead', {}, h('tr', {}, ['col.level', 'col.status', 'sv.unit', 'col.site', 'col.deadline', 'sv.about'].map((k) => h('th', {}, t(k))))),
        h('tbody', {}, rows))
      : h('p', { class: 'muted' }, t('sv.nonotices')));
}

export async function oversightPage(main) {
  const me = session.me;
  const reload = () => oversightPage(main);
  const [warnings, notices] = await Promise.all([
    me.may_read_warnings ? api.get('/api/v1/oversight/warnings') : Promise.resolve(null),
    api.get('/api/v1/oversight/notices'),
  ]);
  clear(main,
    h('h1', {}, t('sv.title')),
    h('p', { class: 'muted' }, t('sv.help')),
    // A warning with an open notice shows it instead of the form (one open notice per warning).
    warnings ? warningsCard(warnings, me.role, new Map(notices.map((n) => [n.warning_id, n.id])), reload) : null,
    noticesCard(notices, me.role, reload));
}
