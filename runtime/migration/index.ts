export {
  type AnnotateAction,
  type AnnotateKubeApi,
  type AnnotateOptions,
  type AnnotateResult,
  annotateSecretsForMigration,
  pendingMigrations,
  type SecretRef,
} from './annotate.js';
export { isMigrationRequest, serveMigration } from './bridge-side.js';
export { secretDataDigest } from './digest.js';
export {
  MIGRATE_ANNOTATION,
  type MigrationKubeApi,
  type MigrationOutcome,
  type MigrationResult,
  type SecretMigrator,
  type SecretMigratorOptions,
  startSecretMigrator,
} from './migrator.js';
