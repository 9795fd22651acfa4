/**
 * The order test files start in. The workers share the suite; a file that starts late and runs long keeps one
 * worker busy while the others have nothing left, so the longest files go first. Vitest orders by the durations it
 * cached from an earlier run, but CI runs on a clean clone, with no cache: there it starts the largest files first,
 * and the bench smoke test (a short file running every benchmark, over a minute) started last, alone, for 83 s.
 *
 * `SLOW_FILES` holds the seconds each long file took in a clean-clone CI run (the durations vitest prints after
 * each file). It only orders: a stale figure costs a little wall time, never a result. Refresh it when a file's
 * duration changes a lot.
 */
import { BaseSequencer, type TestSpecification } from 'vitest/node';

export const SLOW_FILES: Readonly<Record<string, number>> = {
  'test/bench/smoke.test.ts': 109,
  'test/package/cdktn.test.ts': 75,
  'test/package/packed-install.test.ts': 54,
  'test/cli/conventions.test.ts': 45,
  'test/cli/cli.test.ts': 39,
  'test/adversary/room-flood.test.ts': 33,
  'test/provider/mirror.e2e.test.ts': 32,
  'test/examples/local-demo.test.ts': 24,
  'test/examples/cdktf-deploy.test.ts': 24,
  'test/provider/registration-lifecycle.e2e.test.ts': 23,
  'test/runtime/flow.test.ts': 22,
  'test/attestation/flow.test.ts': 36,
  'test/runtime/shards-outage.test.ts': 20,
  'test/contract/openbao-ha.test.ts': 18,
  'test/operational/kube-outage.test.ts': 17,
  'test/runtime/processes.test.ts': 16,
  'test/contract/openbao-token-source.test.ts': 15,
  'test/faults/register.test.ts': 15,
  'test/contract/kube-credentials.test.ts': 15,
};

export class SlowFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const ordered = await super.sort(files);
    const seconds = (file: TestSpecification) =>
      SLOW_FILES[file.moduleId.slice(file.project.config.root.length + 1)] ?? 0;
    // Array.prototype.sort is stable: files not listed keep vitest's own order, after the listed ones.
    return ordered.sort((a, b) => seconds(b) - seconds(a));
  }
}
