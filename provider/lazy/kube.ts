/** Kubernetes access behind a lazy import (see secret-store.ts for why). */
export * as kube from '../../runtime/kube/index.js';
