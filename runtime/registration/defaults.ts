// Import-free, so `bridge run --help` shows it without loading the registration code (layout.ts re-exports it).

/** Root namespace under which every cluster namespace lives. */
export const DEFAULT_NAMESPACE_ROOT = 'cloudtaser';

/**
 * How long `register --rearm` leaves one more bootstrap open: long enough to restart or reinstall the operator
 * right after, short enough that a re-arm nobody used is not an open door days later.
 */
export const DEFAULT_REARM_WINDOW_MS = 60 * 60_000;

/** The longest re-arm window: a window of years would be the unbounded re-arm it replaced. */
export const MAX_REARM_WINDOW_MS = 7 * 24 * 60 * 60_000;
