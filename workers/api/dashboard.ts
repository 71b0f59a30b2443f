// GET /: the dashboard page (workers/dashboard/page.ts). The page itself is public, like any static
// asset: it holds no data and no secret; what it shows comes from the status reads, with the token
// the user gives it (or none under PUBLIC_READS). Its inline script and style are allowed by hash
// and nothing else is: no other scripts, styles, frames, forms or origins.
import { Hono } from 'hono';
import { DASHBOARD_HTML, DASHBOARD_SCRIPT, DASHBOARD_STYLE } from '../dashboard/page';
import type { Env } from '../env';

async function sha256Base64(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
  let binary = '';
  for (const byte of digest) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** The page's content-security-policy: its own inline script and style (by hash), fetches to this origin. */
export async function dashboardCsp(): Promise<string> {
  const [script, style] = await Promise.all([sha256Base64(DASHBOARD_SCRIPT), sha256Base64(DASHBOARD_STYLE)]);
  return [
    "default-src 'none'",
    `script-src 'sha256-${script}'`,
    `style-src 'sha256-${style}'`,
    "connect-src 'self'",
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** Computed on the first request (crypto is not available while a Worker's global scope runs). */
let csp: Promise<string> | undefined;

export const dashboard = new Hono<{ Bindings: Env }>().get('/', async (c) => {
  csp ??= dashboardCsp();
  return c.body(DASHBOARD_HTML, 200, {
    'content-type': 'text/html; charset=utf-8',
    'content-security-policy': await csp,
    'cache-control': 'no-cache',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  });
});
