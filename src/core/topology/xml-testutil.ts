/**
 * A strict XML well-formedness check for the tests of the topology picture (unit and e2e): parses
 * a document into elements, and throws, naming the offset, on anything XML 1.0 does not allow
 * in what svg.ts writes: unbalanced or crossed tags, an attribute twice or unquoted, a raw `<` or
 * `&` outside a reference, an unknown entity, a character that is not an XML character, text or
 * a second element outside the root. Enough for a generator's output; not a validating parser
 * (no DTD, no namespaces checked beyond the prefix syntax).
 */

export interface XmlElement {
  readonly name: string;
  readonly attrs: Readonly<Record<string, string>>;
  readonly children: readonly (XmlElement | string)[];
}

const NAME = /^[A-Za-z_:][A-Za-z0-9_:.-]*/;
const PREDEFINED: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
// why: XML 1.0 Char is #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]
const NOT_CHAR = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;

export class XmlError extends Error {}

function decode(raw: string, at: number): string {
  return raw.replace(/&([^;]*);?/g, (m, ref: string) => {
    if (!m.endsWith(';')) throw new XmlError(`a bare & at ${at}: ${JSON.stringify(raw.slice(0, 40))}`);
    if (ref in PREDEFINED) return PREDEFINED[ref] as string;
    const num = /^#(?:x([0-9A-Fa-f]+)|([0-9]+))$/.exec(ref);
    if (!num) throw new XmlError(`unknown entity &${ref}; at ${at}`);
    const code = num[1] !== undefined ? Number.parseInt(num[1], 16) : Number(num[2]);
    const ch = String.fromCodePoint(code);
    if (NOT_CHAR.test(ch)) throw new XmlError(`&${ref}; at ${at} is not an XML character`);
    return ch;
  });
}

/** The document's root element; throws XmlError when the document is not well-formed. */
export function parseXml(doc: string): XmlElement {
  const bad = NOT_CHAR.exec(doc);
  if (bad) throw new XmlError(`U+${bad[0].codePointAt(0)?.toString(16)} at ${bad.index} is not an XML character`);
  let i = 0;
  const stack: { name: string; attrs: Record<string, string>; children: (XmlElement | string)[] }[] = [];
  let root: XmlElement | undefined;
  const skipMisc = (): void => {
    for (;;) {
      const ws = /^\s*/.exec(doc.slice(i))?.[0].length ?? 0;
      i += ws;
      if (doc.startsWith('<!--', i)) {
        const end = doc.indexOf('-->', i + 4);
        if (end < 0) throw new XmlError(`unclosed comment at ${i}`);
        i = end + 3;
      } else if (doc.startsWith('<?', i)) {
        const end = doc.indexOf('?>', i + 2);
        if (end < 0) throw new XmlError(`unclosed processing instruction at ${i}`);
        i = end + 2;
      } else return;
    }
  };
  skipMisc();
  while (i < doc.length) {
    const top = stack[stack.length - 1];
    if (!top) {
      if (root) throw new XmlError(`content after the root element at ${i}`);
      if (doc[i] !== '<') throw new XmlError(`text outside the root element at ${i}`);
    }
    if (doc.startsWith('<!--', i)) {
      const end = doc.indexOf('-->', i + 4);
      if (end < 0 || doc.slice(i + 4, end).includes('--')) throw new XmlError(`bad comment at ${i}`);
      i = end + 3;
    } else if (doc.startsWith('<![CDATA[', i)) {
      const end = doc.indexOf(']]>', i);
      if (end < 0 || !top) throw new XmlError(`bad CDATA section at ${i}`);
      top.children.push(doc.slice(i + 9, end));
      i = end + 3;
    } else if (doc.startsWith('</', i)) {
      const m = /^<\/([^\s>]+)\s*>/.exec(doc.slice(i));
      const open = stack.pop();
      if (!m || !open || m[1] !== open.name) {
        throw new XmlError(`</${m?.[1] ?? '?'}> at ${i} does not close <${open?.name ?? '(nothing)'}>`);
      }
      i += m[0].length;
      const el: XmlElement = open;
      const parent = stack[stack.length - 1];
      if (parent) parent.children.push(el);
      else root = el;
      if (!parent) skipMisc();
    } else if (doc[i] === '<') {
      const name = NAME.exec(doc.slice(i + 1))?.[0];
      if (!name) throw new XmlError(`bad tag name at ${i}`);
      i += 1 + name.length;
      const attrs: Record<string, string> = {};
      for (;;) {
        const m = /^(\s*)(\/?>|([A-Za-z_:][A-Za-z0-9_:.-]*)\s*=\s*("[^"<]*"|'[^'<]*'))/.exec(doc.slice(i));
        if (!m || (m[3] !== undefined && m[1] === ''))
          throw new XmlError(`bad attribute or tag end in <${name}> at ${i}`);
        i += m[0].length;
        if (m[3] === undefined) {
          const el = { name, attrs, children: [] };
          if (m[2] === '/>') {
            const parent = stack[stack.length - 1];
            if (parent) parent.children.push(el);
            else {
              root = el;
              skipMisc();
            }
          } else stack.push(el);
          break;
        }
        if (m[3] in attrs) throw new XmlError(`attribute ${m[3]} twice in <${name}> at ${i}`);
        attrs[m[3]] = decode((m[4] as string).slice(1, -1), i);
      }
    } else {
      const end = doc.indexOf('<', i);
      const raw = doc.slice(i, end < 0 ? doc.length : end);
      if (raw.includes(']]>')) throw new XmlError(`]]> in text at ${i}`);
      top?.children.push(decode(raw, i));
      i += raw.length;
    }
  }
  if (stack.length > 0) throw new XmlError(`<${stack[stack.length - 1]?.name}> is never closed`);
  if (!root) throw new XmlError('no root element');
  return root;
}

/** Every element under `el` (itself included), depth first, that `pred` accepts. */
export function findAll(el: XmlElement, pred: (e: XmlElement) => boolean): XmlElement[] {
  const out: XmlElement[] = pred(el) ? [el] : [];
  for (const c of el.children) if (typeof c !== 'string') out.push(...findAll(c, pred));
  return out;
}

/** Elements with class `name` among their classes. */
export const hasClass =
  (name: string) =>
  (e: XmlElement): boolean =>
    (e.attrs.class ?? '').split(/\s+/).includes(name);

/** The text of `el` and everything under it, in order, but tooltips and style sheets: what one sees. */
export function textOf(el: XmlElement): string {
  return el.children
    .map((c) => (typeof c === 'string' ? c : c.name === 'title' || c.name === 'style' ? '' : textOf(c)))
    .join('');
}
