// `kiln token …`: operator API tokens. Through the API (admin role), or with --db straight on
// the database, which is how the first admin token of an install is made.
import type { Command } from 'commander';
import { createToken, parseExpiry, tokenView } from '../../conductor/auth/tokens.ts';
import { openStore } from '../../conductor/store/open.ts';
import type { ApiRole, Store } from '../../conductor/store/store.ts';
import { KilnError } from '../../shared/errors.ts';
import type { ApiClient } from '../client.ts';
import { addOutputOptions, type ListSpec, outputOpts, print, renderList } from '../output.ts';

type View = ReturnType<typeof tokenView>;

async function withStore<T>(url: string, fn: (s: Store) => Promise<T>): Promise<T> {
  const store = await openStore(url);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

const TOKEN_LIST: ListSpec = {
  key: 'tokens',
  columns: ['id', 'name', 'role', 'created_at', 'expires_at', 'last_used_at', 'expired'],
};

export function registerTokenCommands(
  program: Command,
  ctx: () => { client: ApiClient; json: boolean },
): void {
  const token = program
    .command('token')
    .description('operator API tokens (admin); --db works on the database directly, to bootstrap');
  token
    .command('create')
    .description('create a token; it is printed once, on the last line, and kept only as a hash')
    .requiredOption('--name <name>', 'what events record as the actor')
    .requiredOption('--role <role>', 'admin, operator or reader')
    .option('--expires <when>', 'a duration (30d, 12h) or an ISO time; default never')
    .option('--db <url>', 'the database (sqlite:PATH or postgres://…) instead of the API')
    .action(async (o: { name: string; role: ApiRole; expires?: string; db?: string }) => {
      const { client, json } = ctx();
      const made = o.db
        ? await withStore(o.db, async (s) => {
            const { record, token } = await createToken(s.tokens, {
              name: o.name,
              role: o.role,
              expiresAt: parseExpiry(o.expires),
            });
            return { ...tokenView(record), token };
          })
        : await client.call<View & { token: string }>('POST', '/v1/tokens', {
            name: o.name,
            role: o.role,
            expires: o.expires,
          });
      // The secret goes to stdout only, last, so `| tail -1` captures it; nothing logs it.
      print(made, json, () =>
        [
          `created ${made.role} token ${made.name} (id ${made.id}${made.expires_at ? `, expires ${made.expires_at}` : ''})`,
          'it is shown only now; keep it in a file readable by you only and point KILN_TOKEN_FILE at it',
          made.token,
        ].join('\n'),
      );
    });
  addOutputOptions(
    token
      .command('list')
      .description('list API tokens')
      .option('--db <url>', 'the database instead of the API'),
    'list',
  ).action(async (o: { db?: string } & Parameters<typeof outputOpts>[0]) => {
    const { client, json } = ctx();
    const tokens = o.db
      ? await withStore(o.db, async (s) => (await s.tokens.list()).map(tokenView))
      : (await client.call<{ tokens: View[] }>('GET', '/v1/tokens')).tokens;
    process.stdout.write(
      `${renderList(tokens as unknown as Record<string, unknown>[], TOKEN_LIST, outputOpts(o, json))}\n`,
    );
  });
  token
    .command('revoke <token>')
    .description('revoke a token by id or name; it stops working at once')
    .option('--db <url>', 'the database instead of the API')
    .action(async (ident: string, o: { db?: string }) => {
      const { client, json } = ctx();
      if (o.db)
        await withStore(o.db, async (s) => {
          const t = await s.tokens.find(ident);
          if (!t) throw new KilnError('NOT_FOUND', `no API token ${ident}; see kiln token list --db ${o.db}`);
          await s.tokens.delete(t.id);
        });
      else await client.call('DELETE', `/v1/tokens/${encodeURIComponent(ident)}`);
      print({ revoked: ident }, json, () => `revoked ${ident}`);
    });
}
