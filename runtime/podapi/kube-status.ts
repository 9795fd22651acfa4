/** The Kubernetes `Status` error body (wire-facts B0.1), for the TokenReview path in both directions. */
export function kubeStatusBody(code: number, reason: string, message: string): string {
  return JSON.stringify({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    code,
  });
}
