// Import-free, so `bridge run --help` shows it without loading the registration code (layout.ts re-exports it).

/** Root namespace under which every cluster namespace lives. */
export const DEFAULT_NAMESPACE_ROOT = 'cloudtaser';
