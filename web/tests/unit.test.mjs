// Unit tests of the dashboard's pure parts under node's test runner (no browser):
//   node --test tests/unit.test.mjs      (from web/; run by gateway/tests/e2e/dashboard_browser.rs)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseEvents } from '../public/js/api.js';
import { dict, t, setLang } from '../public/js/i18n.js';
import { rings, devicePoints } from '../public/js/map.js';
import { pumpoutLine } from '../public/js/pumpouts.js';
import { penaltyNote } from '../public/js/matters.js';

test('SSE events split across chunks, CRLF, multi-line data, keep-alives', () => {
  let r = parseEvents('event: clue\nid: 7\ndata: {"a":');
  assert.deepEqual(r.events, []);
  r = parseEvents(r.rest + '1}\n\n: keep-alive\n\nevent: clue\r\ndata: x\r\ndata: y\r\n\r\ndata: tail');
  assert.deepEqual(r.events, [{ name: 'clue', data: '{"a":1}' }, { name: 'clue', data: 'x\ny' }]);
  assert.equal(r.rest, 'data: tail');
  assert.deepEqual(parseEvents('data: plain\n\n').events, [{ name: 'message', data: 'plain' }]);
});

test('every text exists in Chinese and English', () => {
  const zh = Object.keys(dict.zh).sort();
  const en = Object.keys(dict.en).sort();
  assert.deepEqual(zh.filter((k) => !dict.en[k]), [], 'missing in English');
  assert.deepEqual(en.filter((k) => !dict.zh[k]), [], 'missing in Chinese');
  assert.equal(zh.length, en.length);
});

test('Chinese by default, English on request, placeholders filled', () => {
  assert.equal(t('nav.clues'), '线索');
  assert.equal(t('clues.count', { n: 3 }), '共 3 条');
  setLang('en');
  assert.equal(t('clues.count', { n: 3 }), '3 clues');
  assert.equal(t('no.such.key'), 'no.such.key');
  setLang('zh');
});

test('GeoJSON rings of polygons, multipolygons and collections', () => {
  const sq = [[0, 0], [1, 0], [1, 1], [0, 0]];
  assert.deepEqual(rings({ type: 'Polygon', coordinates: [sq] }), [sq]);
  assert.deepEqual(rings({ type: 'MultiPolygon', coordinates: [[sq], [sq]] }), [sq, sq]);
  const fc = { type: 'FeatureCollection', features: [{ type: 'Feature', geometry: { type: 'Polygon', coordinates: [sq] } }, { type: 'Feature', geometry: null }] };
  assert.deepEqual(rings(fc), [sq]);
  assert.deepEqual(rings({ type: 'Point', coordinates: [0, 0] }), []);
});

test('registered devices with a location become map points; the others do not', () => {
  const rows = [
    { site: 'r7', device: 'trap-1', registry: { kind: 'grease_trap', shop: 'Golden Dragon', location: { lat: 31.2304, lon: 121.4737 } } },
    { site: 'r7', device: 'cam-1', registry: { kind: 'kitchen_camera' } },
    { site: 'r8', device: 'x', registry: null },
    { site: 's2', device: 'cover/17', kind: 'manhole_cover', location: { lat: 31.2312, lon: 121.4751 } },
  ];
  const p = devicePoints(rows);
  assert.equal(p.length, 2);
  assert.deepEqual([p[0].lat, p[0].lon, p[0].site], [31.2304, 121.4737, 'r7']);
  assert.match(p[0].label, /Golden Dragon/);
  assert.notEqual(p[0].color, p[1].color, 'kinds differ in colour');
  assert.equal(p[1].href, '#/devices/s2/cover%2F17');
});

test('a pump-out that explains a clue names its visit, who registered it and the note', () => {
  setLang('en');
  const line = pumpoutLine({ site: 'a', device: 'trap-1', from_ms: 0, to_ms: 3600000, by: 'inspector:ann', at_ms: 7200000, note: 'manifest 77' });
  assert.match(line, /^pump-out .+ → .+ · registered by inspector:ann at .+ · manifest 77$/);
  assert.ok(!pumpoutLine({ from_ms: 0, to_ms: 1, by: 'x', at_ms: 2 }).includes('undefined'));
  setLang('zh');
});

test('the decision form warns of a penalty outside its band as the gateway judges it', () => {
  const m = {
    currency: 'CNY',
    bands: [{ id: 'low', penalty_min: 100, penalty_max: 500 }, { id: 'high', penalty_min: 500, penalty_max: 5000 }],
    leniency: [{ id: 'first', effect: 'no_penalty' }, { id: 'minor', effect: 'light_penalty' }],
  };
  assert.equal(penaltyNote(m, 'low', 300, []), null, 'inside the band');
  assert.equal(penaltyNote(m, 'low', 500, []), null, 'the maximum is inside');
  setLang('en');
  assert.match(penaltyNote(m, 'low', 900, []), /outside the band 100–500 CNY/);
  assert.match(penaltyNote(m, 'low', 0, []), /outside/, 'below the minimum with nothing applied');
  assert.equal(penaltyNote(m, 'low', 0, ['first']), null, 'no penalty under a no-penalty entry');
  assert.match(penaltyNote(m, 'low', 50, ['first']), /outside/, 'a no-penalty entry allows 0 only');
  assert.equal(penaltyNote(m, 'low', 50, ['minor']), null, 'a light-penalty entry allows less');
  assert.match(penaltyNote(m, 'low', 600, ['minor']), /outside/, 'never above the maximum');
  setLang('zh');
  assert.match(penaltyNote(m, 'high', 9000, []), /不在所选档次 500–5000 CNY/);
});
