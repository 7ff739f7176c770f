import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ApiContext } from '../context';
import { SESSION_COOKIE, sessionValue } from '../session';

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Only a path of this server (not `//host`, not a URL): no open redirect. */
const safeNext = (next: string | undefined) => (next && /^\/(?!\/)[^\s\\]*$/.test(next) ? next : '/queues');

function page(next: string, error?: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Deferrable: log in</title>
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}input,button{font-size:1rem;padding:.4rem;width:100%;box-sizing:border-box;margin:.3rem 0}.error{color:#b00020}</style></head>
<body><h1>Deferrable</h1><p>Log in with an API token (<code>deferrable tokens create --role viewer --name you</code>).</p>
${error ? `<p class="error" role="alert">${escape(error)}</p>` : ''}
<form method="post" action="/login"><input type="hidden" name="next" value="${escape(next)}">
<label for="token">API token</label><input id="token" name="token" type="password" autocomplete="off" required>
<button type="submit">Log in</button></form></body></html>`;
}

/**
 * The login page exchanges an API token for a signed, HttpOnly, SameSite=Strict session cookie
 * that names the token (so revoking the token ends the session); logout clears it.
 */
export function sessionRoutes(ctx: ApiContext, opts: { ttlMs: number; secure: boolean }): FastifyPluginAsyncZod {
  return async (app) => {
    app.get('/login', { schema: { hide: true, querystring: z.object({ next: z.string().max(2000).optional() }) } }, async (req, reply) =>
      reply.type('text/html').send(page(safeNext(req.query.next))),
    );

    app.post(
      '/login',
      { schema: { hide: true, body: z.object({ token: z.string().max(200), next: z.string().max(2000).optional() }) } },
      async (req, reply) => {
        const next = safeNext(req.body.next);
        let tokenId: string;
        try {
          tokenId = (await ctx.tokens.authenticate(`Bearer ${req.body.token.trim()}`)).tokenId;
        } catch (err) {
          return reply
            .code(401)
            .type('text/html')
            .send(page(next, err instanceof Error ? err.message : 'not a valid token'));
        }
        reply.setCookie(SESSION_COOKIE, sessionValue(tokenId, opts.ttlMs), {
          signed: true,
          httpOnly: true,
          sameSite: 'strict',
          secure: opts.secure,
          path: '/',
          maxAge: Math.floor(opts.ttlMs / 1000),
        });
        return reply.redirect(next, 303);
      },
    );

    app.post('/logout', { schema: { hide: true } }, async (_req, reply) => {
      reply.clearCookie(SESSION_COOKIE, { path: '/' });
      return reply.redirect('/login', 303);
    });
  };
}
