// A tiny element builder: text is always set as text, never parsed as HTML (clue titles,
// device names and notes come from outside).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function toast(text) {
  const box = document.getElementById('toast');
  const d = h('div', {}, text);
  box.append(d);
  setTimeout(() => d.remove(), 4000);
}

/** `<select>` of `options` ([value, label]) with `value` selected. */
export function select(name, options, value, onchange) {
  return h('select', { name, onchange },
    options.map(([v, label]) => h('option', { value: v, selected: v === value }, label)));
}
