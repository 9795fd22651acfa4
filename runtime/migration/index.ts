export {
  type AnnotateAction,
  type AnnotateKubeApi,
  type AnnotateOptions,
  type AnnotateResult,
  annotateSecretsForMigration,
  pendingMigrations,
  type SecretRef,
} from './annotate.js';
export {
  isMigrationRequest,
  type MigrationServiceOptions,
  serveMigration,
} from './bridge-side.js';
export {
  MIGRATE_ANNOTATION,
  type MigrationKubeApi,
  type MigrationOutcome,
  type MigrationResult,
  type MigrationStatus,
  type SecretMigrator,
  type SecretMigratorOptions,
  startSecretMigrator,
} from './migrator.js';
export {
  MIGRATION_MARKER,
  MIGRATION_OWNERSHIP_MS,
  type MigrationAnswer,
  type MigrationRequestBody,
  type MigrationSource,
  migrationProof,
  newMigrationNonce,
} from './protocol.js';
