// Caller-chosen text echoed into errors and stored reasons: cut to a bound, saying how long it was.

/** `s` when at most `max` characters; else its first `max` and the full length. */
export function clip(s: string, max = 80): string {
  return s.length <= max ? s : `${s.slice(0, max)}… (${s.length} characters)`;
}
