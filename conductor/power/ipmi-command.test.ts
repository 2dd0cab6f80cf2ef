import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseBmcAddress } from '../../shared/bmc.ts';
import {
  bootdevRefusal,
  classifyIpmiFailure,
  ipmitoolArgs,
  parsePowerStatus,
  stderrSummary,
} from './ipmi-command.ts';
import { IpmiOptions } from './options.ts';

describe('ipmitoolArgs', () => {
  it('builds a lanplus command line with the password left to the environment', () => {
    const bmc = parseBmcAddress('ipmi://admin:hunter2@10.0.0.5');
    const args = ipmitoolArgs(bmc, IpmiOptions.parse({}), ['chassis', 'power', 'status']);
    assert.deepEqual(args, [
      '-I',
      'lanplus',
      '-H',
      '10.0.0.5',
      '-p',
      '623',
      '-L',
      'ADMINISTRATOR',
      '-N',
      '1',
      '-R',
      '1',
      '-C',
      '3',
      '-U',
      'admin',
      '-E',
      '-v',
      'chassis',
      'power',
      'status',
    ]);
    assert.ok(!args.join(' ').includes('hunter2'));
    assert.ok(!args.includes('-P'));
  });

  it('takes interface, cipher suite, privilege, port and timeouts from options', () => {
    const bmc = parseBmcAddress('ipmi://10.0.0.6');
    const o = IpmiOptions.parse({
      interface: 'lan',
      privilege_level: 'operator',
      port: 6230,
      timeout_s: 3,
      retries: 2,
    });
    const args = ipmitoolArgs(bmc, o, ['chassis', 'power', 'on']);
    assert.deepEqual(args, [
      '-I',
      'lan',
      '-H',
      '10.0.0.6',
      '-p',
      '6230',
      '-L',
      'OPERATOR',
      '-N',
      '3',
      '-R',
      '2',
      '-E',
      '-v',
      'chassis',
      'power',
      'on',
    ]);
  });
});

describe('reading ipmitool', () => {
  it('classifies failures by what ipmitool -v said', () => {
    assert.equal(
      classifyIpmiFailure(
        '> RAKP 2 HMAC is invalid | Error: Unable to establish IPMI v2 / RMCP+ session',
        false,
        false,
      ),
      'credentials',
    );
    assert.equal(
      classifyIpmiFailure('RAKP 2 message indicates an error : unauthorized name', false, false),
      'credentials',
    );
    assert.equal(
      classifyIpmiFailure(
        'Error in open session response message : invalid authentication algorithm',
        false,
        false,
      ),
      'cipher',
    );
    assert.equal(
      classifyIpmiFailure(
        'Set Chassis Power Control to Up/On failed: Insufficient privilege level',
        false,
        false,
      ),
      'privilege',
    );
    assert.equal(
      classifyIpmiFailure('Address lookup for bmc.invalid failed | Could not open socket!', false, false),
      'dns',
    );
    assert.equal(
      classifyIpmiFailure(
        'Get Auth Capabilities error | Error: Unable to establish IPMI v2 / RMCP+ session',
        false,
        false,
      ),
      'no-response',
    );
    assert.equal(
      classifyIpmiFailure('Unable to get Chassis Power Status | Close Session command failed', false, false),
      'no-response',
    );
    assert.equal(classifyIpmiFailure('', true, false), 'no-response');
    assert.equal(
      classifyIpmiFailure(
        'Activate Session command failed | Error: Unable to establish LAN session',
        false,
        false,
      ),
      'credentials',
    );
    assert.equal(classifyIpmiFailure('', false, true), 'missing');
    assert.equal(classifyIpmiFailure('Get Chassis Power Status failed: Node busy', false, false), 'other');
  });

  it('parses power status and spots refused boot parameters behind exit code 0', () => {
    assert.equal(parsePowerStatus('Chassis Power is on\n'), 'on');
    assert.equal(parsePowerStatus('Chassis Power is off'), 'off');
    assert.equal(parsePowerStatus('garbage'), null);
    assert.equal(
      bootdevRefusal(
        'Loading IANA PEN Registry...\nSet Chassis Boot Parameter 5 failed: Invalid data field in request\n',
      ),
      'Set Chassis Boot Parameter 5 failed: Invalid data field in request',
    );
    assert.equal(bootdevRefusal('Loading IANA PEN Registry...\n'), null);
  });

  it('drops -v chatter from error summaries', () => {
    assert.equal(
      stderrSummary(
        'Loading IANA PEN Registry... | > RAKP 2 HMAC is invalid | Error: Unable to establish IPMI v2 / RMCP+ session',
      ),
      '> RAKP 2 HMAC is invalid; Error: Unable to establish IPMI v2 / RMCP+ session',
    );
  });
});

describe('ipmitoolArgs with an IPv6 BMC', () => {
  it('passes the bare address to -H, without the URL brackets', () => {
    const bmc = parseBmcAddress('ipmi://admin@[::1]:623');
    assert.equal(bmc.address, 'ipmi://admin@[::1]:623');
    const args = ipmitoolArgs(bmc, IpmiOptions.parse({}), ['chassis', 'power', 'status']);
    assert.equal(args[args.indexOf('-H') + 1], '::1');
    assert.equal(args[args.indexOf('-p') + 1], '623');
  });
});
