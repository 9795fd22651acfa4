/**
 * Terraform value types in their JSON type-constraint form, exactly what GetProviderSchema sends as an
 * attribute's `type` bytes: "string", ["list","string"], ["object",{"a":"bool"}], ...
 */
export type CtyType =
  | 'string'
  | 'number'
  | 'bool'
  | 'dynamic'
  | readonly ['list', CtyType]
  | readonly ['set', CtyType]
  | readonly ['map', CtyType]
  | readonly ['object', { readonly [name: string]: CtyType }]
  | readonly ['tuple', readonly CtyType[]];

export const types = {
  string: 'string',
  number: 'number',
  bool: 'bool',
  dynamic: 'dynamic',
  list: (element: CtyType) => ['list', element] as const,
  set: (element: CtyType) => ['set', element] as const,
  map: (element: CtyType) => ['map', element] as const,
  object: (attributes: Record<string, CtyType>) => ['object', attributes] as const,
  tuple: (elements: CtyType[]) => ['tuple', elements] as const,
} as const satisfies Record<string, CtyType | ((...args: never[]) => CtyType)>;

export function typeToJson(type: CtyType): string {
  return JSON.stringify(type);
}

/** Parses a JSON type constraint (as found in a dynamic value); throws on anything else. */
export function typeFromJson(value: unknown): CtyType {
  if (value === 'string' || value === 'number' || value === 'bool' || value === 'dynamic') return value;
  if (Array.isArray(value) && value.length >= 2) {
    const [kind, inner] = value;
    if (kind === 'list' || kind === 'set' || kind === 'map') return [kind, typeFromJson(inner)];
    if (kind === 'tuple' && Array.isArray(inner)) return ['tuple', inner.map(typeFromJson)];
    if (kind === 'object' && inner && typeof inner === 'object' && !Array.isArray(inner)) {
      const attributes: Record<string, CtyType> = Object.create(null);
      for (const [name, t] of Object.entries(inner)) attributes[name] = typeFromJson(t);
      return ['object', attributes];
    }
  }
  throw new TypeError(`not a Terraform type constraint: ${JSON.stringify(value)?.slice(0, 100)}`);
}
