// `kiln secrets …`: the key that seals BMC passwords and agent tokens in the database. Works on
// the database and key files directly, never through the API: the conductors must be stopped
// while the key changes, or one still holding the old key would write values the others (and it,
// after a restart) cannot read.
import type { Command } from 'commander';
import { loadKeyFile, loadOrCreateKey } from '../../conductor/secrets/key.ts';
import { openStore } from '../../conductor/store/open.ts';
import { resealAll } from '../../conductor/store/sealed.ts';
import { KilnError } from '../../shared/errors.ts';
import { print } from '../output.ts';

export function registerSecretsCommands(program: Command): void {
  const json = () => Boolean(program.opts<{ json?: boolean }>().json);
  const secrets = program
    .command('secrets')
    .description('the key that seals node secrets (BMC passwords, agent tokens) in the database');

  secrets
    .command('rotate-key')
    .description(
      're-seal every node secret under a new key; stop the conductors first, then swap the key file and start them',
    )
    .requiredOption('--db <url>', 'the database (sqlite:PATH or postgres://…)')
    .requiredOption('--key-file <file>', 'the key the database is sealed with now')
    .requiredOption('--new-key-file <file>', 'the new key; created (0600) if it does not exist')
    .action(async (o: { db: string; keyFile: string; newKeyFile: string }) => {
      const from = await loadKeyFile(o.keyFile);
      // An empty env: a systemd credential must not stand in for the file the operator named.
      const to = await loadOrCreateKey(o.newKeyFile, { env: {} });
      if (from.keyId === to.keyId) {
        throw new KilnError(
          'VALIDATION_FAILED',
          `${o.keyFile} and ${o.newKeyFile} hold the same key (id ${to.keyId}); give a new key file`,
        );
      }
      const store = await openStore(o.db);
      let report: Awaited<ReturnType<typeof resealAll>>;
      try {
        report = await resealAll(store, to, { from: [from] });
      } finally {
        await store.close();
      }
      const out = { ...report, old_key_id: from.keyId, new_key_id: to.keyId };
      print(out, json(), () =>
        [
          `checked ${report.nodes} nodes; re-sealed ${report.resealed} secrets from key ${from.keyId} ` +
            `and sealed ${report.sealedPlain} plain-text ones, under key ${to.keyId}, on ${report.changed} nodes`,
          `now replace the key file: mv ${o.newKeyFile} ${o.keyFile} (or point secrets.key_file at it), ` +
            'then start the conductors; keep a backup of the new key with the database backups',
        ].join('\n'),
      );
    });

  secrets
    .command('key-id')
    .description('print the id of a key file (sealed values and "sealed with another key" errors name it)')
    .requiredOption('--key-file <file>', 'the key file')
    .action(async (o: { keyFile: string }) => {
      const box = await loadKeyFile(o.keyFile);
      print({ key_id: box.keyId }, json(), () => box.keyId);
    });
}
