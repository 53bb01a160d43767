// The pump-out visits that explain a grease clue (`pumpouts` on the clue detail): one line
// each, so a reviewer sees why a trap's level drop was, or should have been, silenced.
import { t, fmtTime } from './i18n.js';

/** `visit 10:00 → 11:00 · registered by ann at 11:05 · manifest 77` (in the current language). */
export function pumpoutLine(p) {
  const line = t('clue.pumpout', { from: fmtTime(p.from_ms), to: fmtTime(p.to_ms), by: p.by, at: fmtTime(p.at_ms) });
  return p.note ? `${line} · ${p.note}` : line;
}
