/**
 * SCIM 2.0 wire vocabulary (RFC 7643 / RFC 7644): schema URNs and the zod schemas the connector
 * validates every response with. The stand-in server imports the URNs from here so both sides
 * speak from one definition.
 *
 * Response schemas are loose objects: apps add their own attributes and extensions, and the
 * connector only insists on what it reads.
 */
import * as z from 'zod';

export const SCIM_USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const SCIM_GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const SCIM_ENTERPRISE_USER_SCHEMA = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
export const SCIM_LIST_RESPONSE = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
export const SCIM_PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
export const SCIM_ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';
export const SCIM_SERVICE_PROVIDER_CONFIG_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig';
export const SCIM_RESOURCE_TYPE_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:ResourceType';
export const SCIM_SCHEMA_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Schema';
export const SCIM_CONTENT_TYPE = 'application/scim+json';

/** RFC 7644 §3.12 `scimType` values. */
export const SCIM_ERROR_TYPES = [
  'invalidFilter',
  'tooMany',
  'uniqueness',
  'mutability',
  'invalidSyntax',
  'invalidPath',
  'noTarget',
  'invalidValue',
  'invalidVers',
  'sensitive',
] as const;
export type ScimErrorType = (typeof SCIM_ERROR_TYPES)[number];

export const scimMetaSchema = z.looseObject({
  resourceType: z.string().optional(),
  created: z.string().optional(),
  lastModified: z.string().optional(),
  location: z.string().optional(),
  version: z.string().optional(),
});

const multiValueSchema = z.looseObject({
  value: z.string(),
  display: z.string().optional(),
  type: z.string().optional(),
  primary: z.boolean().optional(),
});

export const scimUserSchema = z.looseObject({
  schemas: z.array(z.string()).optional(),
  id: z.string().min(1),
  externalId: z.string().optional(),
  userName: z.string().min(1),
  displayName: z.string().optional(),
  active: z.boolean().optional(),
  emails: z.array(z.looseObject({ value: z.string(), type: z.string().optional(), primary: z.boolean().optional() })).optional(),
  roles: z.array(multiValueSchema).optional(),
  groups: z.array(z.looseObject({ value: z.string(), display: z.string().optional(), $ref: z.string().optional() })).optional(),
  meta: scimMetaSchema.optional(),
});
export type ScimUser = z.infer<typeof scimUserSchema>;

export const scimGroupSchema = z.looseObject({
  schemas: z.array(z.string()).optional(),
  id: z.string().min(1),
  displayName: z.string(),
  externalId: z.string().optional(),
  members: z.array(z.looseObject({ value: z.string(), display: z.string().optional(), type: z.string().optional() })).optional(),
  meta: scimMetaSchema.optional(),
});
export type ScimGroup = z.infer<typeof scimGroupSchema>;

/** RFC 7644 §3.4.2: `Resources` may be absent when nothing matched. */
export function scimListResponseSchema<T extends z.ZodType>(resource: T) {
  return z.looseObject({
    schemas: z.array(z.string()).refine((s) => s.includes(SCIM_LIST_RESPONSE), `must include ${SCIM_LIST_RESPONSE}`),
    totalResults: z.int().min(0),
    startIndex: z.int().min(1).optional(),
    itemsPerPage: z.int().min(0).optional(),
    Resources: z.array(resource).optional(),
  });
}

/** RFC 7644 §3.12. `status` is a string on the wire; some apps send a number. */
export const scimErrorSchema = z.looseObject({
  schemas: z.array(z.string()).optional(),
  status: z.union([z.string(), z.number()]).optional(),
  scimType: z.string().optional(),
  detail: z.string().optional(),
});
export type ScimError = z.infer<typeof scimErrorSchema>;

/** A SCIM string literal for a filter (RFC 7644 §3.4.2.2: JSON string rules). */
export function scimString(value: string): string {
  return JSON.stringify(value);
}
