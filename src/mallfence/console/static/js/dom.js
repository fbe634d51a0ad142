// Building DOM and SVG nodes without innerHTML: text from the API only ever becomes a text node or an
// attribute value, so a zone called "<img onerror=…>" stays a name.
export const SVG_NS = "http://www.w3.org/2000/svg";

function fill(node, attrs, children) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const el = (tag, attrs = {}, ...children) => fill(document.createElement(tag), attrs, children);
export const svg = (tag, attrs = {}, ...children) => fill(document.createElementNS(SVG_NS, tag), attrs, children);
export const $ = (selector) => document.querySelector(selector);

export function show(node, visible) {
  node.hidden = !visible;
}
