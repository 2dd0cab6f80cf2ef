// prepare_image's params are checked before the command starts: a malformed one is a 400
// (InvalidCommandParamsError) naming the field, as IPA's validator answers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createDiskCommands } from './disk-steps.ts';

const imageInfo = {
  id: 'jammy.raw',
  urls: ['http://10.0.0.1/img'],
  os_hash_algo: 'sha256',
  os_hash_value: 'a'.repeat(64),
};

test('prepare_image refuses malformed params naming the field, and takes what Ironic sends', () => {
  const { extensions } = createDiskCommands();
  const validate = extensions.find((e) => e.name === 'standby')!.commands.prepare_image!.validate!;
  const refused = (params: Record<string, unknown>, field: RegExp) =>
    assert.throws(
      () => validate(params),
      (e: Error & { code?: number; details?: string }) =>
        /Invalid command parameters/.test(e.message) && field.test(e.message),
      JSON.stringify(params),
    );
  refused({ image_info: { ...imageInfo, urls: 'http://10.0.0.1/img' } }, /image_info\.urls/);
  refused({ image_info: { ...imageInfo, os_hash_value: 42 } }, /image_info\.os_hash_value/);
  refused({ image_info: imageInfo, configdrive: { gz: true } }, /configdrive must be a string/);
  refused({}, /image_info is missing/);
  validate({
    image_info: { ...imageInfo, container_format: 'bare', stream_raw_images: true },
    configdrive: null,
  });
});
