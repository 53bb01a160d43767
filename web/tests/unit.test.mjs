// Unit tests of the dashboard's pure parts under node's test runner (no browser):
//   node --test tests/unit.test.mjs      (from web/; run by gateway/tests/dashboard_browser.rs)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseEvents } from '../public/js/api.js';
import { dict, t, setLang } from '../public/js/i18n.js';
import { rings } from '../public/js/map.js';

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
