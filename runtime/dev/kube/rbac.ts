/**
 * A small, real authorizer for the Kubernetes test server (dev-only): the admin may do everything; a
 * service account may do only what a rule granted to it allows, as RBAC would with Roles and ClusterRoles.
 */

/** One grant, shaped like an RBAC PolicyRule plus the scope a RoleBinding would give it. */
export interface PolicyRule {
  /** Verbs such as `get`, `list`, `create`, `patch`, `delete`, or `*`. */
  readonly verbs: readonly string[];
  /** Resources such as `secrets`, `namespaces`, `serviceaccounts/token`, or `*`. */
  readonly resources: readonly string[];
  /** API groups; `''` is the core group. @default [''] */
  readonly apiGroups?: readonly string[];
  /** Limit to these object names. @default all names */
  readonly resourceNames?: readonly string[];
  /** Namespace the grant applies in (a RoleBinding); absent means every namespace and cluster scope (a ClusterRoleBinding). */
  readonly namespace?: string;
}

export interface RequestAttributes {
  readonly verb: string;
  readonly group: string;
  readonly resource: string;
  readonly subresource?: string;
  readonly namespace?: string;
  readonly name?: string;
}

export class Authorizer {
  private readonly grants = new Map<string, PolicyRule[]>();

  grant(username: string, rule: PolicyRule): void {
    const rules = this.grants.get(username) ?? [];
    rules.push(rule);
    this.grants.set(username, rules);
  }

  revokeAll(username: string): void {
    this.grants.delete(username);
  }

  allows(username: string, isAdmin: boolean, attrs: RequestAttributes): boolean {
    if (isAdmin) return true;
    const resource =
      attrs.subresource === undefined ? attrs.resource : `${attrs.resource}/${attrs.subresource}`;
    return (this.grants.get(username) ?? []).some(
      (rule) =>
        (rule.namespace === undefined || rule.namespace === attrs.namespace) &&
        matches(rule.verbs, attrs.verb) &&
        matches(rule.apiGroups ?? [''], attrs.group) &&
        matches(rule.resources, resource) &&
        // A `create` names no object yet, so a rule with resourceNames never allows it, as upstream RBAC
        // (K8S plugin/pkg/auth/authorizer/rbac/rbac.go `RuleAllows` with an empty name; the RBAC docs: "You cannot
        // restrict create or deletecollection requests by their resource name").
        (rule.resourceNames === undefined ||
          (attrs.name !== undefined && rule.resourceNames.includes(attrs.name))),
    );
  }
}

function matches(allowed: readonly string[], value: string): boolean {
  return allowed.includes('*') || allowed.includes(value);
}
