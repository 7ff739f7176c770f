import { createApiToken, listApiTokens, revokeApiToken, type ApiTokenRow } from '@deferrable/db';
import { DeferrableError } from '@deferrable/domain';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ApiContext } from '../context';

const TokenSchema = z.object({
  id: z.uuid(),
  name: z.string(),
  role: z.enum(['viewer', 'operator', 'admin']),
  createdAt: z.string(),
  expiresAt: z.string().nullable(),
  lastUsedAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
});

const iso = (d: Date | null) => (d ? d.toISOString() : null);
const view = (t: ApiTokenRow) => ({
  id: t.id,
  name: t.name,
  role: t.role,
  createdAt: t.created_at.toISOString(),
  expiresAt: iso(t.expires_at),
  lastUsedAt: iso(t.last_used_at),
  revokedAt: iso(t.revoked_at),
});

/** API tokens, for admins: list, create (the secret is in this one response only), revoke. */
export function tokenRoutes(ctx: ApiContext): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/tokens',
      { config: { role: 'admin' }, schema: { summary: 'API tokens (never their secrets)', response: { 200: z.object({ items: z.array(TokenSchema) }) } } },
      async () => ({
        items: (await listApiTokens(ctx.db.pool)).map(view),
      }),
    );

    app.post(
      '/tokens',
      {
        config: { role: 'admin' },
        schema: {
          summary: 'Create a token; its secret is returned this once',
          body: z
            .object({
              name: z.string().regex(/^[A-Za-z0-9_.@-]{1,100}$/, '1 to 100 letters, digits and _ . @ -'),
              role: z.enum(['viewer', 'operator', 'admin']),
              expiresInMs: z
                .number()
                .int()
                .min(60_000)
                .max(10 * 365 * 86_400_000)
                .optional(),
            })
            .strict(),
          response: { 201: TokenSchema.extend({ secret: z.string() }) },
        },
      },
      async (req, reply) => {
        const expiresAt = req.body.expiresInMs === undefined ? null : new Date(Date.now() + req.body.expiresInMs);
        const { token, secret } = await createApiToken(ctx.db.pool, { name: req.body.name, role: req.body.role, expiresAt });
        return reply.code(201).send({ ...view(token), secret });
      },
    );

    app.post(
      '/tokens/:id/revoke',
      { config: { role: 'admin' }, schema: { summary: 'Revoke a token for good', params: z.object({ id: z.uuid() }), response: { 204: z.null() } } },
      async (req, reply) => {
        if (!(await revokeApiToken(ctx.db.pool, req.params.id)))
          throw new DeferrableError('NOT_FOUND', `no live API token ${req.params.id}`, { retryable: false });
        return reply.code(204).send(null);
      },
    );
  };
}
