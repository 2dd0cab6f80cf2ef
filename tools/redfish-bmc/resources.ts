// The JSON documents the emulated BMC serves, shaped after DMTF's Redfish schemas (ServiceRoot,
// ComputerSystem v1.13, SessionService, Manager, Chassis) with only what power and boot need.
export const RESET_TYPES = [
  'On',
  'ForceOff',
  'GracefulShutdown',
  'ForceRestart',
  'GracefulRestart',
  'PowerCycle',
  'ForceOn',
  'PushPowerButton',
  'Nmi',
] as const;
export type ResetType = (typeof RESET_TYPES)[number];

export const BOOT_TARGETS = ['None', 'Pxe', 'Hdd', 'Cd', 'Usb', 'BiosSetup', 'UefiShell'] as const;
export const BOOT_ENABLED = ['Disabled', 'Once', 'Continuous'] as const;
export const BOOT_MODES = ['UEFI', 'Legacy'] as const;

export interface BootOverride {
  BootSourceOverrideTarget: (typeof BOOT_TARGETS)[number];
  BootSourceOverrideEnabled: (typeof BOOT_ENABLED)[number];
  BootSourceOverrideMode: (typeof BOOT_MODES)[number];
}

export interface SystemState {
  id: string;
  uuid: string;
  power: 'On' | 'Off';
  boot: BootOverride;
  /** The override target used at the last power on or restart ("None" = the firmware's own order). */
  lastBootTarget: string | null;
  /** Reset types received, oldest first. */
  resets: string[];
}

const SYSTEMS = '/redfish/v1/Systems';

export function serviceRoot(uuid: string): object {
  return {
    '@odata.type': '#ServiceRoot.v1_5_0.ServiceRoot',
    '@odata.id': '/redfish/v1/',
    Id: 'RootService',
    Name: 'Kiln Redfish BMC emulator',
    RedfishVersion: '1.11.0',
    UUID: uuid,
    Product: 'kiln-redfish-bmc',
    Vendor: 'Kiln',
    Systems: { '@odata.id': SYSTEMS },
    Chassis: { '@odata.id': '/redfish/v1/Chassis' },
    Managers: { '@odata.id': '/redfish/v1/Managers' },
    SessionService: { '@odata.id': '/redfish/v1/SessionService' },
    Links: { Sessions: { '@odata.id': '/redfish/v1/SessionService/Sessions' } },
  };
}

export function collection(type: string, id: string, name: string, members: string[]): object {
  return {
    '@odata.type': `#${type}Collection.${type}Collection`,
    '@odata.id': id,
    Name: name,
    'Members@odata.count': members.length,
    Members: members.map((m) => ({ '@odata.id': m })),
  };
}

export function computerSystem(s: SystemState): object {
  const id = `${SYSTEMS}/${s.id}`;
  return {
    '@odata.type': '#ComputerSystem.v1_13_0.ComputerSystem',
    '@odata.id': id,
    Id: s.id,
    Name: `Emulated system ${s.id}`,
    SystemType: 'Physical',
    Manufacturer: 'Kiln',
    Model: 'redfish-bmc emulator',
    UUID: s.uuid,
    PowerState: s.power,
    Status: { State: 'Enabled', Health: 'OK' },
    Boot: {
      ...s.boot,
      'BootSourceOverrideTarget@Redfish.AllowableValues': [...BOOT_TARGETS],
      'BootSourceOverrideMode@Redfish.AllowableValues': [...BOOT_MODES],
    },
    Actions: {
      '#ComputerSystem.Reset': {
        target: `${id}/Actions/ComputerSystem.Reset`,
        'ResetType@Redfish.AllowableValues': [...RESET_TYPES],
      },
    },
    Links: {
      Chassis: [{ '@odata.id': '/redfish/v1/Chassis/1' }],
      ManagedBy: [{ '@odata.id': '/redfish/v1/Managers/BMC' }],
    },
  };
}

export function sessionService(): object {
  return {
    '@odata.type': '#SessionService.v1_1_8.SessionService',
    '@odata.id': '/redfish/v1/SessionService',
    Id: 'SessionService',
    Name: 'Session Service',
    ServiceEnabled: true,
    SessionTimeout: 1800,
    Sessions: { '@odata.id': '/redfish/v1/SessionService/Sessions' },
  };
}

export function session(id: string, user: string): object {
  return {
    '@odata.type': '#Session.v1_3_0.Session',
    '@odata.id': `/redfish/v1/SessionService/Sessions/${id}`,
    Id: id,
    Name: 'User Session',
    UserName: user,
  };
}

export function manager(systemIds: string[]): object {
  return {
    '@odata.type': '#Manager.v1_10_0.Manager',
    '@odata.id': '/redfish/v1/Managers/BMC',
    Id: 'BMC',
    Name: 'Emulated BMC',
    ManagerType: 'BMC',
    Status: { State: 'Enabled', Health: 'OK' },
    Links: { ManagerForServers: systemIds.map((i) => ({ '@odata.id': `${SYSTEMS}/${i}` })) },
  };
}

export function chassis(systemIds: string[]): object {
  return {
    '@odata.type': '#Chassis.v1_14_0.Chassis',
    '@odata.id': '/redfish/v1/Chassis/1',
    Id: '1',
    Name: 'Emulated chassis',
    ChassisType: 'RackMount',
    Status: { State: 'Enabled', Health: 'OK' },
    Links: { ComputerSystems: systemIds.map((i) => ({ '@odata.id': `${SYSTEMS}/${i}` })) },
  };
}

/** A Redfish error body (the "error" object with @Message.ExtendedInfo). */
export function redfishError(messageId: string, message: string): object {
  return {
    error: {
      code: `Base.1.8.${messageId}`,
      message,
      '@Message.ExtendedInfo': [
        { '@odata.type': '#Message.v1_1_1.Message', MessageId: `Base.1.8.${messageId}`, Message: message },
      ],
    },
  };
}
