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
      api.blobUrl(`/api/v1/cameras/${encodeURIComponent(c.camera)}/latest.jpg`)
        .then((u) => { urls.push(u); pic.src = u; }).catch(() => {});
    }
    return h('div', { class: `card cam${bad ? ' bad' : ''}`, dataset: { camera: c.camera, site: c.site, healthy: String(!bad) } },
      pic,
      h('p', {}, h('strong', {}, c.camera), ` · ${c.site}`),
      h('p', {}, bad
        ? c.faults.map((f) => h('span', { class: `tag ${f.escalated ? 'esc-red' : 'level-medium'}` }, t('cam.fault.' + f.kind)))
        : h('span', { class: 'tag level-low' }, t('cam.ok'))),
      h('p', { class: 'muted' }, `${t('dev.lastseen')}: ${fmtTime(c.last_seen_ms)}`));
  }));
  clear(main, h('h1', {}, t('cam.title')), wall, cams.length ? null : h('p', { class: 'muted' }, t('cam.empty')));
  const timer = setTimeout(() => { if (location.hash === '#/cameras') camerasPage(main).catch(() => {}); }, 20000);
  return () => { clearTimeout(timer); urls.forEach((u) => URL.revokeObjectURL(u)); };
}
