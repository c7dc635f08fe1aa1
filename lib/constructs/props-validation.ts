/**
 * Construct props checked at synth, as aws-cdk-lib's constructs check theirs: each problem names the field and the
 * value it received, every problem of one construct is reported in one error (as AWS Solutions Constructs do), and
 * values that are unresolved tokens (known only at deploy time) are skipped.
 */
import { type Duration, Token } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/** Props a construct cannot be built from. `code` is stable; `problems` read `<field> = <value>: <what is wrong>`. */
export class ConstructPropsError extends Error {
  readonly code = 'CDC_INVALID_CONSTRUCT_PROPS';
  constructor(
    readonly constructPath: string,
    readonly problems: readonly string[],
  ) {
    super(`invalid props for ${constructPath}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConstructPropsError';
  }
}

function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

/** Collects the problems of one construct's props; `throwIfAny()` ends the check. */
export class PropsCheck {
  private readonly problems: string[] = [];

  constructor(private readonly scope: IConstruct) {}

  /** A number within [min, max], optionally a whole number or one of a list; unresolved tokens pass. */
  number(
    field: string,
    value: number | undefined,
    rule: { min?: number; max?: number; integer?: boolean; oneOf?: readonly number[] },
  ): void {
    if (value === undefined || Token.isUnresolved(value)) return;
    if (rule.oneOf && !rule.oneOf.includes(value))
      this.problems.push(`${field} = ${value}: must be one of ${rule.oneOf.join(', ')}`);
    else if (rule.integer && !Number.isInteger(value))
      this.problems.push(`${field} = ${value}: must be a whole number`);
    else if ((rule.min !== undefined && value < rule.min) || (rule.max !== undefined && value > rule.max)) {
      const range =
        rule.max === undefined
          ? `at least ${rule.min}`
          : rule.min === undefined
            ? `at most ${rule.max}`
            : `between ${rule.min} and ${rule.max}`;
      this.problems.push(`${field} = ${value}: must be ${range}`);
    }
  }

  /** A duration within [min, max] seconds, optionally whole seconds; unresolved durations pass. */
  duration(
    field: string,
    value: Duration | undefined,
    rule: { minSeconds?: number; maxSeconds?: number; wholeSeconds?: boolean; why?: string },
  ): void {
    if (value === undefined || value.isUnresolved()) return;
    const s = value.toSeconds({ integral: false });
    const why = rule.why ? ` (${rule.why})` : '';
    if (rule.wholeSeconds && !Number.isInteger(s))
      this.problems.push(`${field} = ${value.toHumanString()}: must be a whole number of seconds${why}`);
    else if (rule.minSeconds !== undefined && s < rule.minSeconds)
      this.problems.push(`${field} = ${value.toHumanString()}: must be at least ${rule.minSeconds} s${why}`);
    else if (rule.maxSeconds !== undefined && s > rule.maxSeconds)
      this.problems.push(`${field} = ${value.toHumanString()}: must be at most ${rule.maxSeconds} s${why}`);
  }

  /** A string matching a pattern; unresolved tokens pass. */
  matches(field: string, value: string | undefined, pattern: RegExp, what: string): void {
    if (value === undefined || Token.isUnresolved(value)) return;
    if (!pattern.test(value)) this.problems.push(`${field} = ${show(value)}: ${what}`);
  }

  /** Any other rule: `ok` false records `<field> = <value>: <what>`. */
  require(ok: boolean, field: string, value: unknown, what: string): void {
    if (!ok) this.problems.push(`${field} = ${show(value)}: ${what}`);
  }

  throwIfAny(): void {
    if (this.problems.length > 0) throw new ConstructPropsError(this.scope.node.path, this.problems);
  }
}
