// What every route with a JSON body checks before validation: the content type, and keys that name an
// object's prototype. Runs after access checks and body limits, before anything is read or created.
import type { MiddlewareHandler } from 'hono';
import type { Env } from '../env';
import type { FieldIssue } from '../../shared/protocol';
import type { ErrorBody } from './respond';

/** The media types Hono's JSON validator parses (application/json, application/*+json). */
const JSON_MEDIA_TYPE = /^application\/([\w.-]+\+)?json$/i;

/**
 * Keys refused anywhere in a body: `__proto__` can turn into a prototype instead of a field (and is then
 * silently lost), and `constructor`/`prototype` name the same machinery; no schema has such a field.
 */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Issues named in a refusal: a hostile body can hold millions of forbidden keys. */
const MAX_ISSUES = 20;

/** Where forbidden keys occur in a parsed JSON value, as issue paths ('model.__proto__', 'train.blocks.0.constructor'). */
export function forbiddenKeyIssues(value: unknown): FieldIssue[] {
  const issues: FieldIssue[] = [];
  // Iterative: a deeply nested body must not overflow the stack.
  const stack: { value: unknown; path: string }[] = [{ value, path: '' }];
  while (stack.length) {
    const { value: v, path } = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    for (const key of Object.keys(v)) {
      const at = path ? `${path}.${key}` : key;
      if (FORBIDDEN_KEYS.has(key)) issues.push({ path: at, message: `'${key}' is not allowed as a key` });
      else stack.push({ value: (v as Record<string, unknown>)[key], path: at });
    }
  }
  return issues.sort((a, b) => a.path.localeCompare(b.path));
}

/**
 * 415 unless the body is declared JSON; 400 naming each forbidden key. The body is parsed here with
 * JSON.parse (which keeps `__proto__` as an own key, so it can be seen) and that value is what the
 * route's validator or `c.req.json()` gets. A body that does not parse is left to the route to refuse.
 */
export function jsonBody(): MiddlewareHandler<{ Bindings: Env }> {
  return async (c, next) => {
    const got = c.req.header('content-type');
    const mediaType = (got ?? '').split(';')[0].trim();
    if (!JSON_MEDIA_TYPE.test(mediaType)) {
      const route = `${c.req.method} ${new URL(c.req.url).pathname}`;
      return c.json<ErrorBody>({ error: `${route} takes a JSON body: send content-type application/json (got ${got ? `'${got.slice(0, 100)}'` : 'no content-type'})`, reason: 'content-type' }, 415);
    }
    const text = await c.req.text();
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return next();
    }
    const issues = forbiddenKeyIssues(value);
    if (issues.length) {
      const shown = issues.slice(0, MAX_ISSUES);
      const more = issues.length > shown.length ? ` and ${issues.length - shown.length} more` : '';
      return c.json<ErrorBody>({ error: `the body uses ${shown.map((i) => i.path).join(', ')}${more}: keys '__proto__', 'constructor' and 'prototype' are refused`, reason: 'key', issues: shown }, 400);
    }
    c.req.bodyCache.json = Promise.resolve(value);
    return next();
  };
}
