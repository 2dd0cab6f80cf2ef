// The OpenAPI 3.1 document, generated from the same zod schemas that validate requests.
import { z } from 'zod';
import {
  ImageCreate,
  MaintenanceRequest,
  NodeCreate,
  NodeUpdate,
  PortCreate,
  PowerRequest,
  ProvisionRequest,
} from '../../shared/wire/api.ts';
import { Inventory } from '../../shared/wire/ipa.ts';

/** Full zod and zod/mini schemas (the agent-side wire shapes) alike. */
const schema = (s: z.core.$ZodType) => z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' });
/** The JSON Schema of a wire shape, embedded as a component (no $schema of its own). */
const component = (s: z.core.$ZodType) => {
  const { $schema: _, ...rest } = schema(s) as Record<string, unknown>;
  return rest;
};

const ErrorSchema = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message', 'details'],
      properties: { code: { type: 'string' }, message: { type: 'string' }, details: {} },
    },
  },
};

const errors = {
  '400': {
    description: 'Invalid input; nothing was written',
    content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
  },
  '404': {
    description: 'Not found',
    content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
  },
  '409': {
    description: 'Conflict: locked node, illegal transition or duplicate',
    content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
  },
  '401': {
    description: 'No API token, or one unknown, revoked or expired',
    content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
  },
  '403': {
    description: "The token's role does not allow this (reader < operator < admin)",
    content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
  },
};

const json = (ref: string) => ({
  content: { 'application/json': { schema: { $ref: `#/components/schemas/${ref}` } } },
});
const ok = (description: string) => ({
  description,
  content: { 'application/json': { schema: { type: 'object' } } },
});
/** A node: its inventory is what inspection stored, in IPA's shape (null before any). */
const NodeSchema = {
  type: 'object',
  properties: {
    uuid: { type: 'string' },
    name: { type: ['string', 'null'] },
    provision_state: { type: 'string' },
    inventory: { anyOf: [{ $ref: '#/components/schemas/Inventory' }, { type: 'null' }] },
  },
};
const node = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Node' } } },
});
const ident = {
  name: 'ident',
  in: 'path',
  required: true,
  description: 'Node UUID or name',
  schema: { type: 'string' },
};

export function openApiDocument(version: string) {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Kiln conductor API',
      version,
      description:
        'Bare-metal provisioning: nodes, ports, images, provision and power actions. Every path but / and /v1 needs a bearer API token; reads need the reader role, changes operator, /v1/tokens admin.',
    },
    security: [{ bearer: [] }],
    paths: {
      '/v1/nodes': {
        get: {
          summary: 'List nodes',
          parameters: [
            { name: 'provision_state', in: 'query', schema: { type: 'string' } },
            { name: 'maintenance', in: 'query', schema: { type: 'boolean' } },
            { name: 'driver', in: 'query', schema: { type: 'string' } },
            { name: 'limit', in: 'query', schema: { type: 'integer' } },
            { name: 'marker', in: 'query', schema: { type: 'string' } },
            { name: 'detail', in: 'query', schema: { type: 'boolean' } },
          ],
          responses: { '200': ok('Nodes, and the marker of the next page'), ...errors },
        },
        post: {
          summary: 'Enroll a node',
          requestBody: { required: true, ...json('NodeCreate') },
          responses: { '201': node('The node'), ...errors },
        },
      },
      '/v1/nodes/{ident}': {
        parameters: [ident],
        get: { summary: 'Show a node', responses: { '200': node('The node'), ...errors } },
        patch: {
          summary: 'Update a node (merge)',
          requestBody: { required: true, ...json('NodeUpdate') },
          responses: { '200': node('The node'), ...errors },
        },
        delete: { summary: 'Delete a node', responses: { '204': { description: 'Deleted' }, ...errors } },
      },
      '/v1/nodes/{ident}/states': {
        parameters: [ident],
        get: { summary: 'Provision and power state', responses: { '200': ok('States'), ...errors } },
      },
      '/v1/nodes/{ident}/states/provision': {
        parameters: [ident],
        put: {
          summary: 'Start a provision action',
          requestBody: { required: true, ...json('ProvisionRequest') },
          responses: { '202': ok('Accepted; the node after its first transition'), ...errors },
        },
      },
      '/v1/nodes/{ident}/states/power': {
        parameters: [ident],
        get: {
          summary: 'Read the power state from the BMC',
          responses: { '200': ok('Power state'), ...errors },
        },
        put: {
          summary: 'Power action',
          requestBody: { required: true, ...json('PowerRequest') },
          responses: { '200': node('The node'), ...errors },
        },
      },
      '/v1/nodes/{ident}/maintenance': {
        parameters: [ident],
        put: {
          summary: 'Set maintenance',
          requestBody: { required: false, ...json('MaintenanceRequest') },
          responses: { '200': node('The node'), ...errors },
        },
        delete: { summary: 'Clear maintenance', responses: { '200': node('The node'), ...errors } },
      },
      '/v1/nodes/{ident}/events': {
        parameters: [ident],
        get: { summary: 'Node history', responses: { '200': ok('Events, newest first'), ...errors } },
      },
      '/v1/nodes/{ident}/ports': {
        parameters: [ident],
        get: { summary: "A node's ports", responses: { '200': ok('Ports'), ...errors } },
      },
      '/v1/ports': {
        get: { summary: 'List ports', responses: { '200': ok('Ports'), ...errors } },
        post: {
          summary: 'Add a port',
          requestBody: { required: true, ...json('PortCreate') },
          responses: { '201': ok('The port'), ...errors },
        },
      },
      '/v1/ports/{ident}': {
        parameters: [{ name: 'ident', in: 'path', required: true, schema: { type: 'string' } }],
        get: { summary: 'Show a port', responses: { '200': ok('The port'), ...errors } },
        delete: {
          summary: 'Delete a port (by UUID or MAC)',
          responses: { '204': { description: 'Deleted' }, ...errors },
        },
      },
      '/v1/images': {
        get: { summary: 'List images', responses: { '200': ok('Images') } },
        post: {
          summary: 'Register an image',
          requestBody: { required: true, ...json('ImageCreate') },
          responses: { '201': ok('The image'), ...errors },
        },
      },
      '/v1/images/{ident}': {
        parameters: [{ name: 'ident', in: 'path', required: true, schema: { type: 'string' } }],
        get: { summary: 'Show an image', responses: { '200': ok('The image'), ...errors } },
        delete: { summary: 'Remove an image', responses: { '204': { description: 'Deleted' }, ...errors } },
      },
      '/v1/nodes/{ident}/bmc/approve': {
        parameters: [{ name: 'ident', in: 'path', required: true, schema: { type: 'string' } }],
        post: {
          summary:
            "Approve a discovered node's BMC: apply the enrollment credentials to the address it reported (or to `address`), then manage it",
          requestBody: {
            required: false,
            content: {
              'application/json': {
                schema: { type: 'object', properties: { address: { type: 'string' } } },
              },
            },
          },
          responses: { '200': ok('The node'), ...errors },
        },
      },
      '/v1/tokens': {
        get: {
          summary: 'List API tokens (admin; never their secrets)',
          responses: { '200': ok('Tokens'), ...errors },
        },
        post: {
          summary: 'Create an API token (admin); the answer holds its secret, shown only this once',
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  required: ['name', 'role'],
                  properties: {
                    name: { type: 'string' },
                    role: { enum: ['admin', 'operator', 'reader'] },
                    expires: { type: 'string', description: 'A duration (30d, 12h) or an ISO time' },
                  },
                },
              },
            },
          },
          responses: { '201': ok('The token, with its secret'), ...errors },
        },
      },
      '/v1/tokens/{ident}': {
        parameters: [{ name: 'ident', in: 'path', required: true, schema: { type: 'string' } }],
        delete: {
          summary: 'Revoke a token (by id or name)',
          responses: { '204': { description: 'Revoked' }, ...errors },
        },
      },
    },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'An API token (kiln token create)' },
      },
      schemas: {
        Error: ErrorSchema,
        Node: NodeSchema,
        Inventory: component(Inventory),
        NodeCreate: schema(NodeCreate),
        NodeUpdate: schema(NodeUpdate),
        ProvisionRequest: schema(ProvisionRequest),
        PowerRequest: schema(PowerRequest),
        MaintenanceRequest: schema(MaintenanceRequest),
        PortCreate: schema(PortCreate),
        ImageCreate: schema(ImageCreate),
      },
    },
  };
}
