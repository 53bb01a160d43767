// The camera wall: every camera's last frame and health state.
import * as api from './api.js';
import { t, fmtTime } from './i18n.js';
import { h, clear } from './dom.js';
import { session } from './state.js';

export async function camerasPage(main) {
  const cams = await api.get('/api/v1/cameras');
  const urls = [];
  const wall = h('div', { class: 'grid', id: 'camera-wall' }, cams.map((c) => {
    const bad = c.faults.length > 0;
    const pic = c.has_frame && session.me.may_read_clues
      ? h('img', { alt: c.camera })
      : h('div', { class: 'noframe' }, t('cam.noframe'));
    if (pic.tagName === 'IMG') {
      api.blobUrl(`/api/v1/cameras/${encodeURIComponent(c.camera)}/latest.jpg?site=${encodeURIComponent(c.site)}`)
        .then((u) => { urls.push(u); pic.src = u; }).catch(() => {});
    }
    return h('div', { class: `card cam${bad ? ' bad' : ''}`, dataset: { camera: c.camera, site: c.site, healthy: String(!bad) } },
      pic,
      h('p', {}, h('strong', {}, c.camera), ` · ${c.site}`),
      h('p', {}, bad
        ? c.faults.map((f) => h('span', { class: `tag ${f.escalated ? 'esc-red' : 'level-medium'}` }, t('cam.fault.' + f.kind)))
        : h('span', { class: 'tag level-low' }, t('cam.ok'))),
      h('p', { class: 'muted' }, `${t('dev.lastseen')}: ${fmtTime(c.last_seen_ms)}`),
      c.source ? sourceLine(c.source) : null);
  }));
  clear(main, h('h1', {}, t('cam.title')), wall, cams.length ? null : h('p', { class: 'muted' }, t('cam.empty')));
  const timer = setTimeout(() => { if (main.isConnected) camerasPage(main).catch(() => {}); }, 20000);
  return () => { clearTimeout(timer); urls.forEach((u) => URL.revokeObjectURL(u)); };
}

// A camera the gateway pulls (snapshot URL or RTSP): how its source is doing.
function sourceLine(s) {
  const state = h('span', { class: `tag ${s.state === 'ok' ? 'level-low' : s.state === 'failing' ? 'esc-red' : 'level-medium'}` },
    t('cam.src.' + s.state));
  return h('div', { class: 'muted cam-source', dataset: { sourceState: s.state } },
    h('p', {}, `${t('cam.src.' + s.kind)} · `, state),
    h('p', {}, `${t('cam.src.frames')}: ${s.frames} · ${t('cam.src.errors')}: ${s.errors} · ${t('cam.src.reconnects')}: ${s.reconnects}`),
    s.last_error ? h('p', { title: s.last_error }, `${t('cam.src.lasterror')}: ${s.last_error} (${fmtTime(s.last_error_ms)})`) : null);
}
