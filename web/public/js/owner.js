// The owner's side of a clue: who told the owner and how (a person's record, or a notice sent
// through a configured channel with its delivery state), the time the owner has to answer
// (from the first notification that reached them: a queued or failed notice told nobody) and
// what the owner said.
import * as api from './api.js';
import { t, fmtTime } from './i18n.js';
import { h, toast } from './dom.js';

/** The tag colour of a notice's state: failed red, still queued yellow. */
const TAG = { delivered: 'status', queued: 'esc-yellow', failed: 'esc-red' };

function noticeItem(n) {
  const parts = [
    `${t('o.channel')}: ${n.channel}${n.template ? ` (${n.template})` : ''}`,
    `${t('o.to')}: ${n.contact}`,
    `${t('o.queued')}: ${fmtTime(n.queued_ms)} · ${n.queued_by}`,
    n.delivered_ms ? `${t('o.delivered')}: ${fmtTime(n.delivered_ms)}${n.provider_id ? ` · ${n.provider_id}` : ''}` : null,
    n.failed_ms ? `${t('o.failed')}: ${fmtTime(n.failed_ms)}` : null,
    n.attempts ? t('o.attempts', { n: n.attempts }) : null,
    n.state !== 'delivered' && n.last_error ? n.last_error : null,
    n.receipt_status ? `${t('o.receipt')}: ${n.receipt_status} · ${fmtTime(n.receipt_ms)}` : null,
  ].filter(Boolean);
  return h('li', { class: 'owner-notice', dataset: { state: n.state, notice: String(n.id) } },
    h('span', { class: `tag ${TAG[n.state] ?? 'status'}` }, t('o.st.' + n.state)), ' ', parts.join(' · '));
}

/** The configured channels (`GET /api/v1/owner-notify/channels`), read once per page load. */
let channelList = null;
function channels() {
  channelList ??= api.get('/api/v1/owner-notify/channels').catch((e) => {
    channelList = null;
    throw e;
  });
  return channelList;
}

/** Send a notice through a configured channel (picked from the configured ones, with the
 * channel's templates offered), or record that a person told the owner (then the free text
 * says how: phone, in_person, ...). */
function sendForm(d, reload) {
  const noticeChannel = h('select', { id: 'owner-notice-channel', disabled: true },
    h('option', { value: '' }, t('o.loading_channels')));
  const templates = h('datalist', { id: 'owner-templates' });
  const template = h('input', { id: 'owner-template', placeholder: t('o.template_hint'), size: 12, list: 'owner-templates' });
  const told = h('input', { id: 'owner-channel', placeholder: t('o.channel_hint'), size: 12 });
  const closed = d.status === 'closed';
  const send = h('button', { type: 'button', id: 'owner-send', disabled: true }, t('o.send'));
  let known = [];
  const offerTemplates = () => {
    const c = known.find((x) => x.name === noticeChannel.value);
    templates.replaceChildren(...(c?.templates ?? []).map((n) => h('option', { value: n })));
  };
  noticeChannel.addEventListener('change', offerTemplates);
  channels().then((list) => {
    known = list;
    noticeChannel.replaceChildren(...(list.length
      ? list.map((c) => h('option', { value: c.name }, `${c.name} (${t('o.contact.' + c.contact)})`))
      : [h('option', { value: '' }, t('o.no_channels'))]));
    noticeChannel.disabled = !list.length;
    send.disabled = closed || !list.length;
    noticeChannel.dataset.loaded = 'true';
    offerTemplates();
  }, (e) => {
    noticeChannel.replaceChildren(h('option', { value: '' }, t('act.failed', { e: e.message })));
  });
  const act = (body, channel, label) => async () => {
    if (!channel()) return toast(t('o.need_channel'));
    try {
      await api.post(`/api/v1/clues/${d.id}/actions`, { ...body(), channel: channel() });
      toast(t('act.done', { a: label }));
      await reload();
    } catch (e) {
      toast(t('act.failed', { e: e.message }));
    }
  };
  send.addEventListener('click', act(
    () => ({ action: 'send_owner_notice', template: template.value.trim() || null }),
    () => noticeChannel.value, t('o.send')));
  return h('div', {},
    h('div', { class: 'actions', style: 'margin-top:.5rem' }, noticeChannel, template, templates, send),
    h('div', { class: 'actions', style: 'margin-top:.5rem' }, told,
      h('button', {
        type: 'button', id: 'owner-record', disabled: closed,
        onclick: act(() => ({ action: 'notify_owner' }), () => told.value.trim(), t('o.record')),
      }, t('o.record'))));
}

/** The owner card of clue detail `d`; the send form for roles that work clues. */
export function ownerCard(d, mayWork, reload) {
  const o = d.owner ?? { notified: [], responses: [], notices: [] };
  const told = (o.notified ?? []).filter((n) => n.notice == null);
  const notices = o.notices ?? [];
  const due = o.answer_due_ms;
  return h('div', { class: 'card', id: 'owner' },
    h('h2', {}, t('o.title')),
    h('p', { id: 'owner-due', class: due ? null : 'muted', dataset: { due: due ? String(due) : '' } },
      due ? t('o.due', { at: fmtTime(due) }) : t('o.not_told')),
    notices.length ? h('ul', { id: 'owner-notices' }, notices.map(noticeItem)) : null,
    told.length ? h('ul', { id: 'owner-told' }, told.map((n) =>
      h('li', {}, [t('o.told'), n.channel, n.by, fmtTime(n.at_ms), n.note].filter(Boolean).join(' · ')))) : null,
    h('h3', {}, t('o.statements')),
    (o.responses ?? []).length
      ? h('ul', { id: 'owner-statements' }, o.responses.map((r) =>
        h('li', {}, [r.statement, r.channel, r.recorded_by, fmtTime(r.at_ms)].filter(Boolean).join(' · '))))
      : h('p', { class: 'muted', id: 'owner-no-statement' }, t('o.no_statement')),
    mayWork ? sendForm(d, reload) : null);
}
