export const APPLICATION_SCOPED: RegExp[];
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function toConfiguration(schema: any, defaults: any, prefix?: string): Record<string, any>;
