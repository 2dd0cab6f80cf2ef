// `kiln completion bash|zsh`: a completion script made from the command tree itself, so it never
// falls behind the commands. Node and image names are asked of the API only when a word needs
// one (`kiln node list -f value -c name`), with the same KILN_API and token as any kiln call.
import type { Command, Option } from 'commander';
import { DRIVERS } from '../shared/bmc.ts';
import { PROVISION_STATES } from '../shared/states.ts';
import { CliError, EXIT } from './client.ts';

/** What can follow an option or fill a positional argument, by the option's or argument's name. */
const VALUES: Record<string, string> = {
  '--provision-state': `@words:${PROVISION_STATES.join(',')}`,
  '--state': '@files',
  '--driver': `@words:${DRIVERS.join(',')}`,
  '--role': '@words:admin,reader,operator',
  '--bmc': '@words:ipmi,redfish',
  '--firmware': '@words:bios,uefi',
  '--node': '@nodes',
  '--image': '@images',
  '--config': '@files',
  '--key-file': '@files',
  '--new-key-file': '@files',
};

const ARGS: Record<string, string> = {
  node: '@nodes',
  image: '@images',
  file: '@files',
  action: '@words:on,off,soft-off,reboot,soft-reboot,status',
};

interface Entry {
  path: string;
  subs: string[];
  options: string[];
  /** Options that take a value (the next word is theirs). */
  valued: string[];
  values: [string, string][];
  args: string[];
}

function optionValues(o: Option): string | undefined {
  if (o.argChoices?.length) return `@words:${o.argChoices.join(',')}`;
  return o.long ? VALUES[o.long] : undefined;
}

function argKind(name: string): string {
  if (name.includes('|')) return `@words:${name.split('|').join(',')}`;
  return ARGS[name] ?? '';
}

function walk(cmd: Command, path: string, out: Entry[]): void {
  const opts = (cmd.options as Option[]).filter((o) => !o.hidden);
  const flags = opts.flatMap((o) => [o.short, o.long].filter((f): f is string => Boolean(f)));
  const valuedOpts = opts.filter((o) => o.required);
  out.push({
    path,
    subs: cmd.commands.flatMap((c) => [c.name(), ...c.aliases()]),
    options: [...flags, '--help'],
    valued: valuedOpts.flatMap((o) => [o.short, o.long].filter((f): f is string => Boolean(f))),
    values: valuedOpts.flatMap((o) => {
      const v = optionValues(o);
      return v
        ? [o.short, o.long].filter((f): f is string => Boolean(f)).map((f) => [f, v] as [string, string])
        : [];
    }),
    args: cmd.registeredArguments.map((a) => argKind(a.name())),
  });
  for (const c of cmd.commands) walk(c, path ? `${path} ${c.name()}` : c.name(), out);
}

/** A bash single-quoted word. */
function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function bashScript(program: Command): string {
  const entries: Entry[] = [];
  walk(program, '', entries);
  const name = program.name();
  const fn = `_${name}`;
  const caseOf = (what: (e: Entry) => string) =>
    entries
      .map((e) => [e.path, what(e)] as const)
      .filter(([, v]) => v !== '')
      .map(([p, v]) => `    ${q(p)}) printf '%s\\n' ${q(v)} ;;`)
      .join('\n');
  const valueCase = entries
    .flatMap((e) => e.values.map(([f, v]) => `    ${q(`${e.path}|${f}`)}) printf '%s\\n' ${q(v)} ;;`))
    .join('\n');
  return `# ${name} completion for bash (and zsh, through bashcompinit); made by '${name} completion'.
# Install: source <(${name} completion bash)   or   ${name} completion bash > ~/.local/share/bash-completion/completions/${name}

${fn}_subs() {
  case "$1" in
${caseOf((e) => e.subs.join(' '))}
  esac
}

${fn}_opts() {
  case "$1" in
${caseOf((e) => e.options.join(' '))}
  esac
}

# Options whose value is the next word.
${fn}_valued() {
  case "$1" in
${caseOf((e) => e.valued.join(' '))}
  esac
}

# Positional arguments: @nodes, @images, @files or @words:<comma-separated>.
${fn}_args() {
  case "$1" in
${caseOf((e) => e.args.map((a) => a || '-').join(' '))}
  esac
}

${fn}_option_values() {
  case "$1|$2" in
${valueCase}
  esac
}

# Candidates for one kind of word, one per line.
${fn}_candidates() {
  case "$1" in
    @nodes) command ${name} node list -f value -c name 2>/dev/null | grep -v '^$' ;;
    @images) command ${name} image list -f value -c name 2>/dev/null | grep -v '^$' ;;
    @words:*) printf '%s\\n' "\${1#@words:}" | tr ',' '\\n' ;;
  esac
}

${fn}_reply() {
  local kind="$1" cur="$2" c
  COMPREPLY=()
  if [[ $kind == @files ]]; then
    COMPREPLY=($(compgen -f -- "$cur"))
    return
  fi
  local IFS=$'\\n'
  for c in $(${fn}_candidates "$kind"); do
    # Values with spaces ("clean wait") are offered escaped, ready to use.
    [[ $c == "$cur"* ]] && COMPREPLY+=("$(printf '%q' "$c")")
  done
}

${fn}() {
  [[ -n \${ZSH_VERSION-} ]] && setopt localoptions ksharrays shwordsplit
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="" path="" w i npos=0 skip=0
  ((COMP_CWORD > 0)) && prev="\${COMP_WORDS[COMP_CWORD-1]}"
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    if ((skip)); then skip=0; continue; fi
    case "$w" in
      --*=*) continue ;;
      -*)
        if [[ " $(${fn}_valued "$path") $(${fn}_valued "") " == *" $w "* ]]; then skip=1; fi
        continue ;;
    esac
    if ((npos == 0)) && [[ " $(${fn}_subs "$path") " == *" $w "* ]]; then
      path="\${path:+$path }$w"
    else
      npos=$((npos + 1))
    fi
  done
  local vals
  vals="$(${fn}_option_values "$path" "$prev")"
  [[ -z $vals ]] && vals="$(${fn}_option_values "" "$prev")"
  if [[ -n $vals ]]; then ${fn}_reply "$vals" "$cur"; return 0; fi
  if [[ " $(${fn}_valued "$path") $(${fn}_valued "") " == *" $prev "* ]] && [[ $prev == -* ]]; then
    COMPREPLY=(); return 0
  fi
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(${fn}_opts "$path") $([[ -n $path ]] && ${fn}_opts "")" -- "$cur"))
    return 0
  fi
  local subs
  subs="$(${fn}_subs "$path")"
  if [[ -n $subs ]] && ((npos == 0)); then
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
    return 0
  fi
  local args=($(${fn}_args "$path"))
  local kind="\${args[npos]-}"
  if [[ -n $kind && $kind != - ]]; then ${fn}_reply "$kind" "$cur"; else COMPREPLY=(); fi
  return 0
}

complete -F ${fn} ${name}
`;
}

export function zshScript(program: Command): string {
  // zsh runs the bash function through bashcompinit: one script to keep right, not two.
  return `#compdef ${program.name()}
# ${program.name()} completion for zsh. Install: source <(${program.name()} completion zsh) in ~/.zshrc
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit
${bashScript(program)}`;
}

export function registerCompletionCommand(program: Command): void {
  program
    .command('completion <shell>')
    .description('print a shell completion script (bash or zsh): source <(kiln completion bash)')
    .action((shell: string) => {
      if (shell !== 'bash' && shell !== 'zsh')
        throw new CliError(`completion is for bash or zsh, not "${shell}"`, EXIT.usage);
      process.stdout.write(shell === 'bash' ? bashScript(program) : zshScript(program));
    });
}
