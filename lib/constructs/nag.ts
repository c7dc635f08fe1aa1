/**
 * cdk-nag acknowledgements that sit next to the resources they concern. Wildcard findings (AwsSolutions-IAM5) are
 * named after the resolved policy (`Resource::<Bucket.Arn>/staging/*`), which differs per stack; this helper
 * acknowledges exactly the findings a predicate accepts, found with cdk-nag's own rule, and nothing else, so a new
 * wildcard still fails the nag test.
 */
import { Aspects, CfnResource, type IAspect, Validations } from 'aws-cdk-lib';
import { rules } from 'cdk-nag';
import type { IConstruct } from 'constructs';

export function acknowledge(scope: IConstruct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id, reason });
}

export function acknowledgeWildcards(scope: IConstruct, accept: (finding: string) => boolean, reason: string): void {
  const aspect: IAspect = {
    visit(node: IConstruct) {
      if (!CfnResource.isCfnResource(node)) return;
      const findings = rules.iam.IAMNoWildcardPermissions(node);
      if (!Array.isArray(findings)) return;
      for (const f of findings)
        if (accept(f)) Validations.of(node).acknowledge({ id: `AwsSolutions-IAM5[${f}]`, reason });
    },
  };
  Aspects.of(scope).add(aspect);
}

/** Findings for object ARNs under the given key prefixes (`…/<prefix>*`). */
export function objectPrefixes(...prefixes: string[]): (finding: string) => boolean {
  return (f) => f.startsWith('Resource::') && prefixes.some((p) => f.endsWith(`/${p}*`));
}
