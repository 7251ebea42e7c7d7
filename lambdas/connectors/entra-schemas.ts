/**
 * The shapes of the Microsoft Graph v1.0 responses the Entra connector reads, checked at the
 * edge. Only the fields the connector uses are required; Graph may add others at any time.
 */
import * as z from 'zod';

export const graphErrorBody = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    innerError: z.record(z.string(), z.unknown()).optional(),
  }),
});

export const userRecord = z.object({
  id: z.string().min(1),
  userPrincipalName: z.string().nullish(),
  accountEnabled: z.boolean(),
  employeeId: z.string().nullish(),
});
export type UserRecord = z.infer<typeof userRecord>;

export const userCollection = z.object({
  value: z.array(userRecord),
  '@odata.nextLink': z.string().optional(),
});

export const createdUser = z.object({
  id: z.string().min(1),
  userPrincipalName: z.string(),
});

export const userStatus = z.object({ id: z.string(), accountEnabled: z.boolean() });

export const userLicenses = z.object({
  id: z.string(),
  usageLocation: z.string().nullish(),
  assignedLicenses: z.array(z.object({ skuId: z.string(), disabledPlans: z.array(z.string()).optional() })),
});

export const directoryObjectPage = z.object({
  value: z.array(
    z.object({
      '@odata.type': z.string().optional(),
      id: z.string(),
      displayName: z.string().nullish(),
    }),
  ),
  '@odata.nextLink': z.string().optional(),
});

export const licenseDetailsPage = z.object({
  value: z.array(z.object({ skuId: z.string(), skuPartNumber: z.string() })),
  '@odata.nextLink': z.string().optional(),
});

export const subscribedSkus = z.object({
  value: z.array(z.object({ skuId: z.string(), skuPartNumber: z.string() })),
});

export const groupPage = z.object({
  value: z.array(z.object({ id: z.string(), displayName: z.string() })),
  '@odata.nextLink': z.string().optional(),
});

export const revokeResult = z.object({ value: z.boolean() });

export const temporaryAccessPass = z.object({
  id: z.string(),
  temporaryAccessPass: z.string().min(1),
  startDateTime: z.string(),
  lifetimeInMinutes: z.number().int(),
});

export const directoryAuditPage = z.object({
  value: z.array(
    z.object({
      id: z.string(),
      category: z.string(),
      activityDisplayName: z.string(),
      activityDateTime: z.string(),
      result: z.string().nullish(),
      correlationId: z.string().nullish(),
      initiatedBy: z
        .object({
          app: z.object({ displayName: z.string().nullish(), appId: z.string().nullish() }).nullish(),
          user: z.object({ userPrincipalName: z.string().nullish(), id: z.string().nullish() }).nullish(),
        })
        .nullish(),
      targetResources: z.array(
        z.object({
          id: z.string().nullish(),
          type: z.string().nullish(),
          modifiedProperties: z.array(z.object({ displayName: z.string().nullish() })).nullish(),
        }),
      ),
    }),
  ),
  '@odata.nextLink': z.string().optional(),
});

const removedEntry = z.object({ id: z.string(), '@removed': z.object({ reason: z.string().optional() }) });

export const deltaPage = z.object({
  value: z.array(z.union([removedEntry, userRecord])),
  '@odata.nextLink': z.string().optional(),
  '@odata.deltaLink': z.string().optional(),
});

export const batchResponse = z.object({
  responses: z.array(
    z.object({
      id: z.string(),
      status: z.number().int(),
      headers: z.record(z.string(), z.string()).optional(),
      body: z.unknown().optional(),
    }),
  ),
});
