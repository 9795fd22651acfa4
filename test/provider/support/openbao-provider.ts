/**
 * The setup of the provider's end-to-end tests against OpenBao: one OpenBao test server (optionally behind the fault
 * proxy of test/faults), a root client, and our provider served in this process, shared by a describe block's tests;
 * each Terraform workspace reattaches to that provider (TF_REATTACH_PROVIDERS) and is removed afterwards.
 */
import { afterAll, beforeAll } from 'vitest';
import { createCloudtaserProvider } from '../../../provider/cloudtaser.js';
import {
  type ProviderServerHandle,
  startProviderServer,
} from '../../../provider/framework/serve-provider.js';
import { silentProviderLogger } from '../../../provider/wire/hclog.js';
import { type OpenBaoTestServer, startOpenBaoTestServer } from '../../../runtime/dev/openbao/index.js';
import { OpenBaoClient } from '../../../runtime/openbao/index.js';
import { type FaultProxy, startFaultProxy } from '../../faults/openbao-proxy.js';
import { createWorkspace, type TerraformWorkspace } from './terraform.js';

/** The `terraform` block every configuration of these tests starts with. */
export const CLOUDTASER_TERRAFORM_HEADER = `terraform {
  required_providers {
    cloudtaser = { source = "registry.terraform.io/cloudtaser/cloudtaser" }
  }
}
`;

export interface ProviderAgainstOpenBao {
  readonly openbao: OpenBaoTestServer;
  /** A root-token client of the OpenBao test server. */
  readonly admin: OpenBaoClient;
  readonly provider: ProviderServerHandle;
  /** Only with `faultProxy: true`. */
  readonly proxy: FaultProxy;
  /** A fresh workspace reattached to the provider. */
  workspace(): TerraformWorkspace;
}

/** Registers the beforeAll/afterAll hooks of the describe block it is called in. */
export function useProviderAgainstOpenBao(options: { faultProxy?: boolean } = {}): ProviderAgainstOpenBao {
  const workspaces: TerraformWorkspace[] = [];
  const started: {
    -readonly [K in keyof Omit<ProviderAgainstOpenBao, 'workspace'>]?: ProviderAgainstOpenBao[K];
  } = {};
  const need = <K extends keyof typeof started>(key: K) => {
    const value = started[key];
    if (value === undefined) throw new Error(`${key} is not started (call inside a test, after beforeAll)`);
    return value as NonNullable<(typeof started)[K]>;
  };
  beforeAll(async () => {
    started.openbao = await startOpenBaoTestServer();
    if (options.faultProxy) started.proxy = await startFaultProxy(started.openbao.address);
    started.admin = new OpenBaoClient({ address: started.openbao.address, token: started.openbao.rootToken });
    started.provider = await startProviderServer(
      createCloudtaserProvider({ env: { CLOUDTASER_SECRETSTORE_TOKEN: started.openbao.rootToken } }),
      { logger: silentProviderLogger },
    );
  }, 60_000);
  afterAll(async () => {
    await started.provider?.close();
    await started.admin?.close();
    await started.proxy?.close();
    await started.openbao?.close();
    for (const made of workspaces) made.dispose();
  });
  return {
    get openbao() {
      return need('openbao');
    },
    get admin() {
      return need('admin');
    },
    get provider() {
      return need('provider');
    },
    get proxy() {
      return need('proxy');
    },
    workspace() {
      const made = createWorkspace({ env: need('provider').reattachEnv });
      workspaces.push(made);
      return made;
    },
  };
}
