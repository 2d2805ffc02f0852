// JSON exactly as Go's encoding/json marshals a map[string]string: keys sorted
// bytewise (UTF-8), and <, >, &, U+2028, U+2029 escaped as \u00XX. Providers
// are Go programs that parse these strings; matching the bytes upstream sends
// keeps any provider that compares, hashes or logs them behaving the same.

const GO_ESCAPES: Record<string, string> = {
  '<': '\\u003c',
  '>': '\\u003e',
  '&': '\\u0026',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
};

function goString(s: string): string {
  // JSON.stringify already produces Go's escapes for quotes, backslash and
  // control characters (\b \f \n \r \t short forms, \u00XX otherwise).
  return JSON.stringify(s).replace(/[<>&\u2028\u2029]/g, (c) => GO_ESCAPES[c]!);
}

function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Go's json.Marshal of a map[string]string; a nil map (null/undefined) is `null`. */
export function goMarshalStringMap(m: Readonly<Record<string, string>> | null | undefined): string {
  if (m === null || m === undefined) return 'null';
  const keys = Object.keys(m).sort(compareUtf8);
  return `{${keys.map((k) => `${goString(k)}:${goString(m[k]!)}`).join(',')}}`;
}
