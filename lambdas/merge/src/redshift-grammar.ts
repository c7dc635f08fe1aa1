/**
 * A guard for the SQL the merge sends to Redshift: PostgreSQL (the local stand-in) accepts more than Redshift does,
 * so the Redshift plan is checked against Redshift's rules before it is sent (and by the golden tests):
 * MERGE with exactly one WHEN MATCHED (UPDATE or DELETE) and one WHEN NOT MATCHED (INSERT), no extra conditions,
 * a table as source; no PostgreSQL-only syntax; Data API limits (≤ 40 statements, ≤ 100 KB each).
 */

/** Data API limits (https://docs.aws.amazon.com/redshift/latest/mgmt/data-api.html). */
export const DATA_API_MAX_STATEMENTS = 40;
export const DATA_API_MAX_STATEMENT_BYTES = 100 * 1024;

const POSTGRES_ONLY: readonly [RegExp, string][] = [
  [/\bON\s+CONFLICT\b/i, 'INSERT … ON CONFLICT'],
  [/\bRETURNING\b/i, 'RETURNING'],
  [/\bON\s+COMMIT\s+DROP\b/i, 'ON COMMIT DROP'],
  [/\bJSONB\b/i, 'JSONB'],
  [/\bBYTEA\b/i, 'BYTEA'],
  [/\bFROM\s+STDIN\b/i, 'COPY FROM STDIN'],
  [/\bIN\s+SHARE\s+ROW\s+EXCLUSIVE\b/i, 'LOCK … IN … MODE'],
  [/\bWHEN\s+NOT\s+MATCHED\s+BY\s+SOURCE\b/i, 'WHEN NOT MATCHED BY SOURCE'],
];

/** Removes string literals so that keywords inside values do not count. */
function withoutLiterals(sql: string): string {
  return sql.replace(/'(?:[^']|'')*'/g, "''");
}

/** Problems of one statement (empty when it is fine). */
export function redshiftProblems(sql: string): string[] {
  const problems: string[] = [];
  const text = withoutLiterals(sql);
  const bytes = Buffer.byteLength(sql);
  if (bytes > DATA_API_MAX_STATEMENT_BYTES) problems.push(`${bytes} bytes > ${DATA_API_MAX_STATEMENT_BYTES}`);
  for (const [re, what] of POSTGRES_ONLY)
    if (re.test(text)) problems.push(`uses ${what}, which Redshift does not have`);
  if (/^\s*MERGE\b/i.test(text)) {
    const matched = text.match(/\bWHEN\s+MATCHED\b/gi) ?? [];
    const notMatched = text.match(/\bWHEN\s+NOT\s+MATCHED\b/gi) ?? [];
    if (matched.length !== 1) problems.push(`MERGE has ${matched.length} WHEN MATCHED clauses (Redshift: exactly 1)`);
    if (notMatched.length !== 1)
      problems.push(`MERGE has ${notMatched.length} WHEN NOT MATCHED clauses (Redshift: exactly 1)`);
    if (/\bWHEN\s+(?:NOT\s+)?MATCHED\s+AND\b/i.test(text)) problems.push('MERGE WHEN clause with an extra condition');
    if (/\bUSING\s*\(/i.test(text)) problems.push('MERGE source is a subquery (Redshift: a table)');
    if (!/\bWHEN\s+MATCHED\s+THEN\s+(?:UPDATE|DELETE)\b/i.test(text))
      problems.push('WHEN MATCHED must UPDATE or DELETE');
    if (!/\bWHEN\s+NOT\s+MATCHED\s+THEN\s+INSERT\b/i.test(text)) problems.push('WHEN NOT MATCHED must INSERT');
  }
  return problems;
}

/** Problems of a transaction (one BatchExecuteStatement). */
export function redshiftTransactionProblems(sqls: readonly string[]): string[] {
  const problems = sqls.flatMap((s, i) => redshiftProblems(s).map((p) => `statement ${i + 1}: ${p}`));
  if (sqls.length > DATA_API_MAX_STATEMENTS)
    problems.unshift(`${sqls.length} statements > ${DATA_API_MAX_STATEMENTS} per transaction`);
  return problems;
}
