// iPXE scripts per node state, rendered on request (never files on disk, so a script can't go
// stale). The ramdisk script retries its downloads: a conductor restart or a busy link during a
// rack-wide boot must not leave a node at a dead iPXE prompt.

export type BootScriptInput =
  | {
      action: 'ramdisk';
      mac: string;
      kernelUrl: string;
      initrdUrl: string;
      /** The conductor's API for the agent (IPA's ipa-api-url). */
      apiUrl: string;
      /** Extra kernel arguments for this node (console=…, etc.). */
      extraArgs?: string[];
      /** Download attempts before giving up and rebooting (default 5). */
      attempts?: number;
      /** Seconds between attempts (default 5). */
      retryDelay?: number;
    }
  | {
      action: 'local';
      mac: string;
      /** BIOS chains the first disk, UEFI exits to the next boot entry; 'auto' asks iPXE at run time. */
      firmware?: 'bios' | 'uefi' | 'auto';
    }
  | { action: 'ignore'; mac: string; reason?: string };

/** Anything that would break out of an iPXE command line: whitespace-free tokens only. */
function token(s: string, what: string): string {
  if (s.length === 0 || /[\s"'\\]/.test(s) || s.includes('\0')) {
    throw new RangeError(
      `${what} ${JSON.stringify(s)} can't go into an iPXE script (empty, or has whitespace or quotes)`,
    );
  }
  return s;
}

/** Text for echo lines: one line, no iPXE variable expansion. */
function text(s: string): string {
  return s.replace(/[\r\n]+/g, ' ').replace(/\$\{/g, '$ {');
}

export function renderBootScript(input: BootScriptInput): string {
  const mac = text(input.mac);
  switch (input.action) {
    case 'ramdisk': {
      const attempts = input.attempts ?? 5;
      const delay = input.retryDelay ?? 5;
      if (!Number.isInteger(attempts) || attempts < 1 || !Number.isInteger(delay) || delay < 0) {
        throw new RangeError(
          `attempts (${attempts}) must be a positive integer and retryDelay (${delay}) a non-negative one`,
        );
      }
      // initrd=<name> on the kernel line: the EFI stub loads the initrd only when it is named there.
      const args = [
        'initrd=initrd',
        `ipa-api-url=${token(input.apiUrl, 'ipa-api-url')}`,
        // biome-ignore lint/suspicious/noTemplateCurlyInString: an iPXE variable, expanded by iPXE
        'BOOTIF=${mac}',
        ...(input.extraArgs ?? []).map((a) => token(a, 'kernel argument')),
      ].join(' ');
      return [
        '#!ipxe',
        `# Kiln: deploy ramdisk for ${mac}`,
        'set kiln_try:int32 0',
        ':kiln_fetch',
        'inc kiln_try',
        `iseq \${kiln_try} ${attempts + 1} && goto kiln_give_up ||`,
        'imgfree',
        `echo Kiln: loading the ramdisk (attempt \${kiln_try} of ${attempts})`,
        `kernel --name kernel ${token(input.kernelUrl, 'kernel URL')} ${args} || goto kiln_retry`,
        `initrd --name initrd ${token(input.initrdUrl, 'initrd URL')} || goto kiln_retry`,
        'boot || goto kiln_retry',
        ':kiln_retry',
        `echo Kiln: download or boot failed, retrying in ${delay} s`,
        `sleep ${delay}`,
        'goto kiln_fetch',
        ':kiln_give_up',
        `echo Kiln: could not load the ramdisk after ${attempts} attempts, rebooting`,
        'sleep 10',
        'reboot',
        '',
      ].join('\n');
    }
    case 'local': {
      const fw = input.firmware ?? 'auto';
      const lines = [
        '#!ipxe',
        `# Kiln: boot ${mac} from its local disk`,
        'echo Kiln: booting from local disk',
      ];
      if (fw === 'bios') lines.push('sanboot --no-describe --drive 0x80');
      else if (fw === 'uefi') lines.push('exit');
      // biome-ignore lint/suspicious/noTemplateCurlyInString: an iPXE variable, expanded by iPXE
      else lines.push('iseq ${platform} efi && exit ||', 'sanboot --no-describe --drive 0x80');
      lines.push('');
      return lines.join('\n');
    }
    case 'ignore':
      // Exiting hands control back to the firmware, which tries its next boot device.
      return [
        '#!ipxe',
        `# Kiln: not booting ${mac}${input.reason ? ` (${text(input.reason)})` : ''}`,
        'exit',
        '',
      ].join('\n');
  }
}
