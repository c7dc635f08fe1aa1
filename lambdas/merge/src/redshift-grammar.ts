/**
 * An allow-list grammar of exactly the statement forms the merge sends to Redshift. PostgreSQL (the local stand-in)
 * accepts much more than Redshift does, so every Redshift plan is checked here before it is sent (and by
 * test/merge/redshift-grammar.test.ts over the golden files and generated plans). A statement is accepted only if it
 * is one of the forms below, each transcribed from the synopsis of its page in the Amazon Redshift Database Developer
 * Guide (https://docs.aws.amazon.com/redshift/latest/dg/<page>.html, page named in each rule's comment), narrowed
 * to what the merge needs. Statement heads and clause structure are parsed strictly (recursive descent over a
 * tokenizer); expressions and SELECT bodies more loosely (balanced parentheses, clause order, known keywords).
 *
 * Data API limits (https://docs.aws.amazon.com/redshift/latest/mgmt/data-api.html): ≤ 40 statements per
 * BatchExecuteStatement, ≤ 100 KB per statement.
 */

export const DATA_API_MAX_STATEMENTS = 40;
export const DATA_API_MAX_STATEMENT_BYTES = 100 * 1024;

/** r_names: identifiers are 1 to 127 bytes long (delimited ones not counting the quotes). */
const MAX_IDENTIFIER_BYTES = 127;

/** r_pg_keywords: usable as identifiers only when double-quoted. */
const RESERVED = new Set(
  `AES128 AES256 ALL ALLOWOVERWRITE ANALYSE ANALYZE AND ANY ARRAY AS ASC AUTHORIZATION AZ64 BACKUP BETWEEN BINARY
  BLANKSASNULL BOTH BYTEDICT BZIP2 CASE CAST CHECK COLLATE COLUMN CONSTRAINT CREATE CREDENTIALS CROSS CURRENT_DATE
  CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER CURRENT_USER_ID DEFAULT DEFERRABLE DEFLATE DEFRAG DELTA DELTA32K DESC
  DISABLE DISTINCT DO ELSE EMPTYASNULL ENABLE ENCODE ENCRYPT ENCRYPTION END EXCEPT EXPLICIT FALSE FOR FOREIGN FREEZE
  FROM FULL GLOBALDICT256 GLOBALDICT64K GRANT GROUP GZIP HAVING IDENTITY IGNORE ILIKE IN INITIALLY INNER INTERSECT
  INTERVAL INTO IS ISNULL JOIN LEADING LEFT LIKE LIMIT LOCALTIME LOCALTIMESTAMP LUN LUNS LZO LZOP MINUS MOSTLY16
  MOSTLY32 MOSTLY8 NATURAL NEW NOT NOTNULL NULL NULLS OFF OFFLINE OFFSET OID OLD ON ONLY OPEN OR ORDER OUTER
  OVERLAPS PARALLEL PARTITION PERCENT PERMISSIONS PIVOT PLACING PRIMARY RAW READRATIO RECOVER REFERENCES REJECTLOG
  RESORT RESPECT RESTORE RIGHT SELECT SESSION_USER SIMILAR SNAPSHOT SOME SYSDATE SYSTEM TABLE TAG TDES TEXT255
  TEXT32K THEN TIMESTAMP TO TOP TRAILING TRUE TRUNCATECOLUMNS UNION UNIQUE UNNEST UNPIVOT USER USING VERBOSE WALLET
  WHEN WHERE WITH WITHOUT`.split(/\s+/),
);

// ---------------------------------------------------------------------------------------------------------------
// Tokens

type TokenKind = 'word' | 'quoted' | 'string' | 'number' | 'op';

interface Token {
  readonly kind: TokenKind;
  /** Identifier or literal value (unescaped), or the operator. */
  readonly text: string;
  /** Upper-cased text of a bare word (keywords compare on this). */
  readonly upper: string;
  readonly pos: number;
}

class GrammarError extends Error {}

const OPERATORS = ['::', '<>', '!=', '<=', '>=', '||', '=', '<', '>', '+', '-', '*', '/', '%', '(', ')', ',', '.'];
const OPERATORS_1 = new Set(['[', ']', ';', ...OPERATORS.filter((o) => o.length === 1)]);

/** r_names (quoted identifiers, "" escapes), r_Literals (strings with '' escapes, numbers), operators, comments. */
function tokenize(sql: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (sql.startsWith('--', i)) {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? n : end + 1;
    } else if (sql.startsWith('/*', i)) {
      const end = sql.indexOf('*/', i + 2);
      if (end < 0) throw new GrammarError('unterminated /* comment');
      i = end + 2;
    } else if (c === '"' || c === "'") {
      const start = i;
      let text = '';
      i++;
      for (;;) {
        if (i >= n)
          throw new GrammarError(`unterminated ${c === '"' ? 'quoted identifier' : 'string literal'} at ${start}`);
        if (sql[i] === c) {
          if (sql[i + 1] === c) {
            text += c;
            i += 2;
            continue;
          }
          i++;
          break;
        }
        text += sql[i];
        i++;
      }
      if (c === '"' && text === '') throw new GrammarError('zero-length quoted identifier ""');
      out.push({ kind: c === '"' ? 'quoted' : 'string', text, upper: text, pos: start });
    } else if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(sql[i + 1] ?? ''))) {
      const m = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/.exec(sql.slice(i))!;
      out.push({ kind: 'number', text: m[0], upper: m[0], pos: i });
      i += m[0].length;
    } else if (/[A-Za-z_\u0080-\uffff]/.test(c)) {
      const m = /^[A-Za-z_\u0080-\uffff][A-Za-z0-9_$\u0080-\uffff]*/.exec(sql.slice(i))!;
      out.push({ kind: 'word', text: m[0], upper: m[0].toUpperCase(), pos: i });
      i += m[0].length;
    } else {
      const op = OPERATORS.find((o) => sql.startsWith(o, i)) ?? (OPERATORS_1.has(c) ? c : undefined);
      if (!op) throw new GrammarError(`unexpected character ${JSON.stringify(c)} at ${i}`);
      out.push({ kind: 'op', text: op, upper: op, pos: i });
      i += op.length;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// PostgreSQL-only constructs: named plainly, because they are the mistakes a plan tested on PostgreSQL makes.

const POSTGRES_ONLY: readonly [readonly string[], string][] = [
  [['ON', 'CONFLICT'], 'INSERT … ON CONFLICT'],
  [['RETURNING'], 'RETURNING'],
  [['ON', 'COMMIT', 'DROP'], 'ON COMMIT DROP'],
  [['ON', 'COMMIT', 'DELETE'], 'ON COMMIT DELETE ROWS'],
  [['ON', 'COMMIT', 'PRESERVE'], 'ON COMMIT PRESERVE ROWS'],
  [['JSONB'], 'JSONB'],
  [['BYTEA'], 'BYTEA'],
  [['FROM', 'STDIN'], 'COPY FROM STDIN'],
  [['WHEN', 'NOT', 'MATCHED', 'BY'], 'WHEN NOT MATCHED BY SOURCE/TARGET'],
  [['DISTINCT', 'ON'], 'SELECT DISTINCT ON'],
  [['CONCURRENTLY'], 'CONCURRENTLY'],
];

function postgresOnly(tokens: readonly Token[]): string[] {
  const found: string[] = [];
  for (const [words, what] of POSTGRES_ONLY) {
    const hit = tokens.some((_, i) =>
      words.every((w, k) => tokens[i + k]?.kind === 'word' && tokens[i + k]!.upper === w),
    );
    if (hit) found.push(`uses ${what}, which Redshift does not have`);
  }
  // r_LOCK: LOCK [ TABLE ] table_name [, ...]: no lock modes.
  if (tokens[0]?.upper === 'LOCK' && tokens.some((t) => t.kind === 'word' && t.upper === 'MODE'))
    found.push('uses LOCK … IN … MODE, which Redshift does not have');
  return found;
}

/** r_MERGE: exactly one WHEN MATCHED and one WHEN NOT MATCHED, no extra conditions, a table as source. */
function mergeShapeProblems(tokens: readonly Token[]): string[] {
  const w = (i: number, word: string) => tokens[i]?.kind === 'word' && tokens[i]!.upper === word;
  let matched = 0;
  let notMatched = 0;
  let extra = false;
  tokens.forEach((_, i) => {
    if (w(i, 'WHEN') && w(i + 1, 'MATCHED')) {
      matched++;
      if (w(i + 2, 'AND')) extra = true;
    }
    if (w(i, 'WHEN') && w(i + 1, 'NOT') && w(i + 2, 'MATCHED')) {
      notMatched++;
      if (w(i + 3, 'AND')) extra = true;
    }
  });
  const problems: string[] = [];
  if (matched !== 1) problems.push(`MERGE has ${matched} WHEN MATCHED clauses (Redshift: exactly 1)`);
  if (notMatched !== 1) problems.push(`MERGE has ${notMatched} WHEN NOT MATCHED clauses (Redshift: exactly 1)`);
  if (extra) problems.push('MERGE WHEN clause with an extra condition');
  const using = tokens.findIndex((t, i) => i > 0 && t.kind === 'word' && t.upper === 'USING');
  if (using > 0 && tokens[using + 1]?.text === '(') problems.push('MERGE source is a subquery (Redshift: a table)');
  return problems;
}

// ---------------------------------------------------------------------------------------------------------------
// The parser

/** Clause keywords that end an expression or a select list item at parenthesis depth 0. */
const SELECT_CLAUSES = [
  'FROM',
  'WHERE',
  'GROUP',
  'HAVING',
  'QUALIFY',
  'ORDER',
  'LIMIT',
  'OFFSET',
  'UNION',
  'INTERSECT',
  'EXCEPT',
  'MINUS',
  'WITH',
];

/** Statement kinds, as named in problems and used by the transaction rules. */
export type StatementKind =
  | 'MERGE'
  | 'COPY'
  | 'CREATE TABLE'
  | 'CREATE TABLE AS'
  | 'INSERT'
  | 'DELETE'
  | 'UPDATE'
  | 'ALTER TABLE ADD COLUMN'
  | 'ALTER TABLE ALTER COLUMN TYPE'
  | 'ALTER TABLE DROP COLUMN'
  | 'ALTER TABLE RENAME COLUMN'
  | 'ALTER TABLE RENAME TO'
  | 'CREATE VIEW'
  | 'DROP VIEW'
  | 'DROP TABLE'
  | 'CREATE SCHEMA'
  | 'LOCK'
  | 'BEGIN'
  | 'COMMIT'
  | 'ROLLBACK'
  | 'TRUNCATE'
  | 'SELECT';

class Parser {
  private i = 0;

  constructor(
    private readonly t: readonly Token[],
    private readonly sql: string,
  ) {}

  // -- cursor helpers --

  private peek(o = 0): Token | undefined {
    return this.t[this.i + o];
  }

  private isWord(word: string, o = 0): boolean {
    const tok = this.peek(o);
    return tok?.kind === 'word' && tok.upper === word;
  }

  private isOp(op: string, o = 0): boolean {
    const tok = this.peek(o);
    return tok?.kind === 'op' && tok.text === op;
  }

  /** Consumes the words if they all come next. */
  private accept(...words: string[]): boolean {
    if (!words.every((w, k) => this.isWord(w, k))) return false;
    this.i += words.length;
    return true;
  }

  private expect(words: string, rule: string): void {
    if (!this.accept(...words.split(' '))) this.fail(`expected ${words} (${rule})`);
  }

  private acceptOp(op: string): boolean {
    if (!this.isOp(op)) return false;
    this.i++;
    return true;
  }

  private expectOp(op: string, rule: string): void {
    if (!this.acceptOp(op)) this.fail(`expected "${op}" (${rule})`);
  }

  atEnd(): boolean {
    return this.i >= this.t.length || (this.isOp(';') && this.i === this.t.length - 1);
  }

  fail(message: string): never {
    const tok = this.peek();
    const near = tok ? ` near ${JSON.stringify(this.sql.slice(tok.pos, tok.pos + 40))}` : ' at the end';
    throw new GrammarError(`${message}${near}`);
  }

  // -- names (r_names) --

  /** One identifier: a bare word that is not reserved, or a quoted identifier; 1–127 bytes. */
  private identifier(role: string): string {
    const tok = this.peek();
    if (!tok || (tok.kind !== 'word' && tok.kind !== 'quoted')) this.fail(`expected ${role}`);
    if (tok.kind === 'word' && RESERVED.has(tok.upper))
      this.fail(`${role} ${tok.text} is a Redshift reserved word: double-quote it (r_pg_keywords)`);
    const bytes = Buffer.byteLength(tok.text);
    if (bytes > MAX_IDENTIFIER_BYTES)
      this.fail(
        `${role} ${JSON.stringify(tok.text.slice(0, 40))}… is ${bytes} bytes > ${MAX_IDENTIFIER_BYTES} (r_names)`,
      );
    this.i++;
    return tok.text;
  }

  /** [database.][schema.]name */
  private qualifiedName(role: string): string[] {
    const parts = [this.identifier(role)];
    while (parts.length < 3 && this.acceptOp('.')) parts.push(this.identifier(role));
    return parts;
  }

  /** ( col [, ...] ): unqualified column names. */
  private columnList(rule: string): string[] {
    this.expectOp('(', rule);
    const cols = [this.identifier('column name')];
    while (this.acceptOp(',')) cols.push(this.identifier('column name'));
    if (this.isOp('.')) this.fail(`column names are not qualified here (${rule})`);
    this.expectOp(')', rule);
    return cols;
  }

  /** table [ [AS] alias ] */
  private tableRef(role: string): void {
    this.qualifiedName(role);
    const next = this.peek();
    if (this.accept('AS')) this.identifier('alias');
    else if (next?.kind === 'quoted' || (next?.kind === 'word' && !RESERVED.has(next.upper) && next.upper !== 'SET'))
      this.identifier('alias');
  }

  // -- expressions (loose) --

  /**
   * An expression, checked loosely: consumes tokens until, at parenthesis depth 0 and outside CASE … END, a comma,
   * a closing parenthesis, a `;` or one of `stops`. Parenthesised SELECTs are parsed as subqueries. Never empty.
   */
  private expr(stops: readonly string[], what: string): void {
    const start = this.i;
    let cases = 0;
    for (;;) {
      const tok = this.peek();
      if (!tok) break;
      if (tok.kind === 'op') {
        if (tok.text === ',' || tok.text === ')' || tok.text === ';') break;
        if (tok.text === '(') {
          this.i++;
          if (this.isWord('SELECT') || this.isWord('WITH')) this.select();
          else if (!this.isOp(')')) {
            this.expr([], what);
            while (this.acceptOp(',')) this.expr([], what);
          }
          this.expectOp(')', what);
          continue;
        }
      } else if (tok.kind === 'word') {
        if (tok.upper === 'CASE') cases++;
        else if (tok.upper === 'END' && cases > 0) cases--;
        else if (cases === 0 && stops.includes(tok.upper)) break;
        else if (tok.upper === 'SELECT') this.fail(`a subquery must be in parentheses (${what})`);
      }
      this.i++;
    }
    if (cases > 0) this.fail(`CASE without END (${what})`);
    if (this.i === start) this.fail(`expected an expression (${what})`);
  }

  private exprList(stops: readonly string[], what: string): void {
    this.expr(stops, what);
    while (this.acceptOp(',')) this.expr(stops, what);
  }

  // -- SELECT (r_SELECT_synopsis), checked loosely --

  /** [ WITH cte [, ...] ] select_core { UNION [ALL] | INTERSECT | EXCEPT | MINUS select_core } [ORDER BY] [LIMIT] [OFFSET] */
  select(): void {
    if (this.accept('WITH')) {
      this.accept('RECURSIVE');
      do {
        this.identifier('common table expression name');
        if (this.isOp('(')) this.columnList('WITH name (columns)');
        this.expect('AS', 'r_WITH_clause');
        this.expectOp('(', 'r_WITH_clause');
        this.select();
        this.expectOp(')', 'r_WITH_clause');
      } while (this.acceptOp(','));
    }
    this.selectCore();
    while (this.accept('UNION') || this.accept('INTERSECT') || this.accept('EXCEPT') || this.accept('MINUS')) {
      this.accept('ALL');
      this.selectCore();
    }
    if (this.accept('ORDER', 'BY')) this.exprList(SELECT_CLAUSES, 'ORDER BY');
    if (this.accept('LIMIT')) this.expr(SELECT_CLAUSES, 'LIMIT');
    if (this.accept('OFFSET')) this.expr(SELECT_CLAUSES, 'OFFSET');
  }

  /** SELECT [TOP n] [ALL | DISTINCT] items [FROM …] [WHERE …] [GROUP BY …] [HAVING …] [QUALIFY …] */
  private selectCore(): void {
    if (this.acceptOp('(')) {
      this.select();
      this.expectOp(')', 'parenthesised SELECT');
      return;
    }
    this.expect('SELECT', 'r_SELECT_synopsis');
    if (this.accept('TOP')) this.expr([], 'TOP');
    if (!this.accept('ALL')) this.accept('DISTINCT');
    if (this.isWord('INTO')) this.fail('SELECT … INTO is not a form the merge sends (use CREATE TABLE AS)');
    this.exprList(SELECT_CLAUSES, 'select list');
    if (this.accept('FROM')) this.exprList(SELECT_CLAUSES, 'FROM list');
    if (this.accept('WHERE')) this.expr(SELECT_CLAUSES, 'WHERE condition');
    if (this.accept('GROUP', 'BY')) this.exprList(SELECT_CLAUSES, 'GROUP BY');
    if (this.accept('HAVING')) this.expr(SELECT_CLAUSES, 'HAVING condition');
    if (this.accept('QUALIFY')) this.expr(SELECT_CLAUSES, 'QUALIFY condition');
  }

  // -- data types (c_Supported_data_types) --

  private dataType(rule: string): string {
    const tok = this.peek();
    if (tok?.kind !== 'word') this.fail(`expected a data type (${rule})`);
    let name = tok.upper;
    this.i++;
    const follow = (...words: string[]) => {
      if (this.accept(...words)) name = `${name} ${words.join(' ')}`;
    };
    if (name === 'DOUBLE') follow('PRECISION');
    if (name === 'CHARACTER') follow('VARYING');
    if (name === 'BINARY') follow('VARYING');
    if (name === 'TIMESTAMP' || name === 'TIME') {
      follow('WITH', 'TIME', 'ZONE');
      follow('WITHOUT', 'TIME', 'ZONE');
    }
    const spec = DATA_TYPES[name];
    if (!spec) this.fail(`${name} is not a Redshift data type (c_Supported_data_types)`);
    if (!this.acceptOp('(')) {
      if (spec.required) this.fail(`${name} needs a ${spec.args} (${spec.page})`);
      return name;
    }
    if (spec.args === 'none') this.fail(`${name} takes no length or precision in Redshift (${spec.page})`);
    const first = this.peek();
    if (spec.args === 'length' && first?.kind === 'word' && first.upper === 'MAX' && spec.max === 65535) {
      this.i++;
    } else {
      if (first?.kind !== 'number' || !/^\d+$/.test(first.text)) this.fail(`${name}: expected a whole number`);
      const v = Number(first.text);
      this.i++;
      if (v < 1 || v > spec.max!) this.fail(`${name}(${v}): ${spec.args} must be 1…${spec.max} (${spec.page})`);
      if (spec.args === 'precision' && this.acceptOp(',')) {
        const s = this.peek();
        if (s?.kind !== 'number' || !/^\d+$/.test(s.text)) this.fail(`${name}: expected a scale`);
        if (Number(s.text) > v) this.fail(`${name}(${v},${s.text}): scale above precision (${spec.page})`);
        this.i++;
      }
    }
    this.expectOp(')', name);
    return name;
  }

  // -- statements --

  statement(): StatementKind {
    const tok = this.peek();
    if (!tok) this.fail('empty statement');
    const head = tok.kind === 'word' ? tok.upper : tok.text;
    switch (head) {
      case 'MERGE':
        return this.merge();
      case 'COPY':
        return this.copy();
      case 'CREATE':
        return this.create();
      case 'INSERT':
        return this.insert();
      case 'DELETE':
        return this.delete();
      case 'UPDATE':
        return this.update();
      case 'ALTER':
        return this.alterTable();
      case 'DROP':
        return this.drop();
      case 'LOCK':
        return this.lock();
      case 'BEGIN':
      case 'START':
      case 'COMMIT':
      case 'END':
      case 'ROLLBACK':
      case 'ABORT':
        return this.transactionControl();
      case 'TRUNCATE':
        return this.truncate();
      case 'SELECT':
      case 'WITH':
      case '(':
        this.select();
        return 'SELECT';
      default:
        this.fail(`${head} is not a statement the merge sends to Redshift`);
    }
  }

  /**
   * r_MERGE: MERGE INTO target_table USING source_table [ [ AS ] alias ] ON match_condition
   *   WHEN MATCHED THEN { UPDATE SET col_name = { expr } [,...] | DELETE }
   *   WHEN NOT MATCHED THEN INSERT [ ( col_name [,...] ) ] VALUES ( { expr } [, ...] )
   * Only the source has an alias; the target is referred to by its name. (REMOVE DUPLICATES is not used.)
   */
  private merge(): StatementKind {
    const rule = 'r_MERGE';
    this.expect('MERGE INTO', rule);
    this.qualifiedName('MERGE target table');
    if (!this.isWord('USING')) {
      if (this.isWord('AS') || this.peek()?.kind === 'word' || this.peek()?.kind === 'quoted')
        this.fail(
          'MERGE target has an alias (r_MERGE: MERGE INTO target_table USING source_table [ [ AS ] alias ]: only the source may have one; refer to the target by its name)',
        );
      this.fail(`expected USING (${rule})`);
    }
    this.expect('USING', rule);
    if (this.isOp('(')) this.fail('MERGE source is a subquery (Redshift: a table)');
    this.tableRef('MERGE source table');
    this.expect('ON', rule);
    this.expr(['WHEN'], 'MERGE match condition');
    this.expect('WHEN MATCHED', rule);
    if (this.isWord('AND')) this.fail('MERGE WHEN clause with an extra condition');
    this.expect('THEN', rule);
    if (this.accept('UPDATE')) {
      this.expect('SET', rule);
      this.setList(['WHEN'], rule);
    } else if (!this.accept('DELETE')) {
      this.fail(`WHEN MATCHED must UPDATE SET or DELETE (${rule})`);
    }
    if (this.isWord('WHEN') && this.isWord('MATCHED', 1))
      this.fail('MERGE has 2 WHEN MATCHED clauses (Redshift: exactly 1)');
    this.expect('WHEN NOT MATCHED', rule);
    if (this.isWord('AND')) this.fail('MERGE WHEN clause with an extra condition');
    this.expect('THEN INSERT', rule);
    if (this.isOp('(')) this.columnList('MERGE INSERT columns');
    this.expect('VALUES', rule);
    this.expectOp('(', rule);
    this.exprList([], 'MERGE INSERT values');
    this.expectOp(')', rule);
    if (this.isWord('WHEN')) this.fail('MERGE has more than one WHEN NOT MATCHED clause (Redshift: exactly 1)');
    return 'MERGE';
  }

  /** col = expr [, ...] (r_UPDATE; r_MERGE): the column is not qualified. */
  private setList(stops: readonly string[], rule: string): void {
    do {
      this.identifier('SET column');
      if (this.isOp('.')) this.fail(`SET column names are not qualified (${rule})`);
      this.expectOp('=', rule);
      this.expr(stops, 'SET value');
    } while (this.acceptOp(','));
  }

  /**
   * r_COPY: COPY table-name [ column-list ] FROM data_source authorization [ [ FORMAT ] [ AS ] data_format ]
   *   [ parameter [ argument ] [, ... ] ]
   * Narrowed: the source is an S3 object ('s3://…'), authorization is IAM_ROLE, and the parameters are the data
   * format, file compression, data conversion and load options of r_COPY-alphabetical-parm-list listed below.
   */
  private copy(): StatementKind {
    const rule = 'r_COPY';
    this.expect('COPY', rule);
    this.qualifiedName('COPY table');
    if (this.isOp('(')) this.columnList('COPY column list');
    this.expect('FROM', rule);
    const src = this.peek();
    if (src?.kind !== 'string') this.fail(`COPY source must be a quoted 's3://…' location (${rule})`);
    if (!src.text.startsWith('s3://')) this.fail(`COPY source ${JSON.stringify(src.text)} is not an s3:// location`);
    this.i++;
    this.expect('IAM_ROLE', 'r_COPY authorization: the merge uses IAM_ROLE');
    const role = this.peek();
    if (role?.kind === 'word' && role.upper === 'DEFAULT') this.i++;
    else if (role?.kind === 'string' && /^arn:aws[\w-]*:iam::\d{12}:role\/.+/.test(role.text)) this.i++;
    else this.fail(`IAM_ROLE must be DEFAULT or an IAM role ARN (${rule})`);
    const stringArg = (name: string) => {
      this.accept('AS');
      if (this.peek()?.kind !== 'string') this.fail(`${name} takes a quoted string (${rule})`);
      this.i++;
    };
    const numberArg = (name: string) => {
      this.accept('AS');
      if (this.peek()?.kind !== 'number') this.fail(`${name} takes a number (${rule})`);
      this.i++;
    };
    while (!this.atEnd()) {
      const opt = this.peek();
      if (opt?.kind !== 'word') this.fail(`expected a COPY parameter (${rule})`);
      this.i++;
      switch (opt.upper) {
        case 'FORMAT':
          this.accept('AS');
          if (this.accept('CSV')) {
            if (this.accept('QUOTE')) stringArg('QUOTE');
          } else if (this.accept('JSON')) {
            if (this.peek()?.kind === 'string') this.i++;
          } else if (!this.accept('PARQUET')) this.fail(`FORMAT AS CSV, JSON or PARQUET (${rule})`);
          break;
        case 'CSV':
          if (this.accept('QUOTE')) stringArg('QUOTE');
          break;
        case 'GZIP':
        case 'BZIP2':
        case 'LZOP':
        case 'ZSTD':
        case 'EMPTYASNULL':
        case 'BLANKSASNULL':
        case 'TRUNCATECOLUMNS':
        case 'ACCEPTANYDATE':
        case 'IGNOREBLANKLINES':
        case 'FILLRECORD':
        case 'TRIMBLANKS':
        case 'REMOVEQUOTES':
        case 'ROUNDEC':
        case 'ESCAPE':
        case 'EXPLICIT_IDS':
        case 'MANIFEST':
          break;
        case 'NULL':
        case 'TIMEFORMAT':
        case 'DATEFORMAT':
        case 'DELIMITER':
        case 'REGION':
          stringArg(opt.upper);
          break;
        case 'ACCEPTINVCHARS':
          if (this.accept('AS') || this.peek()?.kind === 'string') stringArg('ACCEPTINVCHARS');
          break;
        case 'IGNOREHEADER':
        case 'MAXERROR':
          numberArg(opt.upper);
          break;
        case 'COMPUPDATE':
        case 'STATUPDATE':
          if (!['ON', 'OFF', 'TRUE', 'FALSE', 'PRESET'].some((v) => this.accept(v)) && !this.atEnd())
            this.fail(`${opt.upper} takes ON or OFF (${rule})`);
          break;
        case 'ENCODING':
          this.accept('AS');
          if (!['UTF8', 'UTF16', 'UTF16LE', 'UTF16BE'].some((v) => this.accept(v)))
            this.fail(`ENCODING UTF8|UTF16|UTF16LE|UTF16BE (${rule})`);
          break;
        default:
          this.i--;
          this.fail(`${opt.text} is not a COPY parameter the merge uses (${rule})`);
      }
      this.acceptOp(',');
    }
    return 'COPY';
  }

  private create(): StatementKind {
    this.expect('CREATE', 'CREATE');
    if (this.accept('OR', 'REPLACE')) {
      if (!this.isWord('VIEW')) this.fail('CREATE OR REPLACE is for views only (r_CREATE_VIEW)');
      return this.createView();
    }
    if (this.isWord('VIEW')) return this.createView();
    if (this.isWord('SCHEMA')) return this.createSchema();
    const local = this.accept('LOCAL');
    if (this.accept('TEMP') || this.accept('TEMPORARY')) return this.createTable(true);
    if (local) this.fail('CREATE LOCAL must be followed by TEMP or TEMPORARY (r_CREATE_TABLE_NEW)');
    if (this.isWord('TABLE')) return this.createTable(false);
    if (this.isWord('UNIQUE') || this.isWord('INDEX')) this.fail('CREATE INDEX: Redshift has no indexes');
    this.fail('not a CREATE form the merge sends to Redshift (TABLE, TEMP TABLE, VIEW, SCHEMA)');
  }

  /**
   * r_CREATE_TABLE_NEW: CREATE [ [LOCAL ] { TEMPORARY | TEMP } ] TABLE [ IF NOT EXISTS ] table_name
   *   ( { column_name data_type [column_attributes] [ column_constraints ] | table_constraints } [, ... ] )
   *   [ BACKUP { YES | NO } ] [ table_attributes ]
   * r_CREATE_TABLE_AS: CREATE [ [ LOCAL ] { TEMPORARY | TEMP } ] TABLE table_name [ ( column_name [, ... ] ) ]
   *   [ BACKUP { YES | NO } ] [ table_attributes ] AS query        (no IF NOT EXISTS)
   */
  private createTable(temp: boolean): StatementKind {
    this.expect('TABLE', 'r_CREATE_TABLE_NEW');
    const ifNotExists = this.accept('IF', 'NOT', 'EXISTS');
    const name = this.qualifiedName('table name');
    if (temp && name.length > 1) this.fail('a temporary table name is not schema-qualified (r_CREATE_TABLE_NEW)');
    if (this.isOp('(') && !this.isWord('SELECT', 1) && this.looksLikeColumnNames()) {
      this.columnList('CREATE TABLE AS column names');
      this.tableAttributes();
      this.expect('AS', 'r_CREATE_TABLE_AS');
    }
    if (this.accept('AS') || this.isWord('SELECT', 0)) {
      if (ifNotExists) this.fail('CREATE TABLE … AS has no IF NOT EXISTS (r_CREATE_TABLE_AS)');
      this.select();
      return 'CREATE TABLE AS';
    }
    this.expectOp('(', 'r_CREATE_TABLE_NEW');
    do this.tableElement();
    while (this.acceptOp(','));
    this.expectOp(')', 'r_CREATE_TABLE_NEW');
    this.tableAttributes();
    if (this.isWord('AS')) this.fail('CREATE TABLE with column definitions cannot be AS query (r_CREATE_TABLE_AS)');
    return 'CREATE TABLE';
  }

  /** `( a, b ) [attrs] AS` (CTAS column names) rather than `( a type, … )` (column definitions). */
  private looksLikeColumnNames(): boolean {
    let k = 1;
    for (;;) {
      const tok = this.peek(k);
      const next = this.peek(k + 1);
      if (!tok || (tok.kind !== 'word' && tok.kind !== 'quoted')) return false;
      if (next?.text === ')') return true;
      if (next?.text !== ',') return false;
      k += 2;
    }
  }

  /** column_name data_type [ DEFAULT expr ] [ ENCODE e ] [ NOT NULL | NULL ] [ … ] | table constraint */
  private tableElement(): void {
    const rule = 'r_CREATE_TABLE_NEW';
    if (this.accept('CONSTRAINT')) this.identifier('constraint name');
    if (this.accept('PRIMARY', 'KEY') || this.accept('UNIQUE')) {
      this.columnList('table constraint');
      return;
    }
    if (this.isWord('LIKE')) this.fail('CREATE TABLE … LIKE is not a form the merge sends');
    this.identifier('column name');
    this.dataType(rule);
    this.columnAttributes(rule);
  }

  private columnAttributes(rule: string): void {
    const attrStops = ['ENCODE', 'NOT', 'NULL', 'PRIMARY', 'UNIQUE', 'DISTKEY', 'SORTKEY', 'COLLATE', 'IDENTITY'];
    for (;;) {
      if (this.accept('DEFAULT')) this.expr(attrStops, 'DEFAULT');
      else if (this.accept('ENCODE')) this.identifier('encoding');
      else if (this.accept('NOT', 'NULL') || this.accept('NULL')) {
        /* nullability */
      } else if (this.accept('PRIMARY', 'KEY') || this.accept('UNIQUE') || this.accept('DISTKEY')) {
        /* constraints (not enforced by Redshift) and distribution */
      } else if (this.accept('SORTKEY')) {
        /* sort key */
      } else if (this.accept('COLLATE')) {
        if (!this.accept('CASE_SENSITIVE') && !this.accept('CASE_INSENSITIVE'))
          this.fail(`COLLATE CASE_SENSITIVE | CASE_INSENSITIVE (${rule})`);
      } else if (this.accept('IDENTITY')) {
        this.expectOp('(', rule);
        this.exprList([], 'IDENTITY');
        this.expectOp(')', rule);
      } else return;
    }
  }

  /** [ BACKUP { YES | NO } ] [ DISTSTYLE … ] [ DISTKEY ( col ) ] [ [COMPOUND | INTERLEAVED] SORTKEY ( cols ) | SORTKEY AUTO ] [ ENCODE AUTO ] */
  private tableAttributes(): void {
    const rule = 'r_CREATE_TABLE_NEW table_attributes';
    for (;;) {
      if (this.accept('BACKUP')) {
        if (!this.accept('YES') && !this.accept('NO')) this.fail(`BACKUP YES | NO (${rule})`);
      } else if (this.accept('DISTSTYLE')) {
        if (!['AUTO', 'EVEN', 'KEY', 'ALL'].some((v) => this.accept(v)))
          this.fail(`DISTSTYLE AUTO|EVEN|KEY|ALL (${rule})`);
      } else if (this.accept('DISTKEY')) {
        this.columnList(rule);
      } else if (this.accept('COMPOUND') || this.accept('INTERLEAVED') || this.isWord('SORTKEY')) {
        this.expect('SORTKEY', rule);
        if (!this.accept('AUTO')) this.columnList(rule);
      } else if (this.accept('ENCODE')) {
        this.expect('AUTO', rule);
      } else return;
    }
  }

  /** r_CREATE_VIEW: CREATE [ OR REPLACE ] VIEW name [ ( column_name [, ...] ) ] AS query [ WITH NO SCHEMA BINDING ] */
  private createView(): StatementKind {
    const rule = 'r_CREATE_VIEW';
    this.expect('VIEW', rule);
    this.qualifiedName('view name');
    if (this.isOp('(')) this.columnList('view column names');
    this.expect('AS', rule);
    this.select();
    if (this.accept('WITH')) this.expect('NO SCHEMA BINDING', rule);
    return 'CREATE VIEW';
  }

  /** r_CREATE_SCHEMA: CREATE SCHEMA [ IF NOT EXISTS ] schema_name [ AUTHORIZATION username ] */
  private createSchema(): StatementKind {
    const rule = 'r_CREATE_SCHEMA';
    this.expect('SCHEMA', rule);
    this.accept('IF', 'NOT', 'EXISTS');
    this.identifier('schema name');
    if (this.isOp('.')) this.fail(`a schema name is not qualified (${rule})`);
    if (this.accept('AUTHORIZATION')) this.identifier('user name');
    return 'CREATE SCHEMA';
  }

  /**
   * r_INSERT_30: INSERT INTO table_name [ ( column [, ...] ) ]
   *   { DEFAULT VALUES | VALUES ( { expression | DEFAULT } [, ...] ) [, ( … ) [, ...] ] | query }
   */
  private insert(): StatementKind {
    const rule = 'r_INSERT_30';
    this.expect('INSERT INTO', rule);
    this.qualifiedName('INSERT table');
    if (this.isOp('(') && !this.isWord('SELECT', 1) && !this.isWord('WITH', 1)) this.columnList('INSERT columns');
    if (this.accept('DEFAULT', 'VALUES')) return 'INSERT';
    if (this.accept('VALUES')) {
      do {
        this.expectOp('(', rule);
        this.exprList([], 'VALUES row');
        this.expectOp(')', rule);
      } while (this.acceptOp(','));
      return 'INSERT';
    }
    if (this.isWord('SELECT') || this.isWord('WITH') || this.isOp('(')) {
      this.select();
      return 'INSERT';
    }
    if (this.isWord('AS') || this.peek()?.kind === 'word') this.fail(`INSERT target has no alias (${rule})`);
    this.fail(`expected VALUES or a query (${rule})`);
  }

  /** r_DELETE: DELETE [ FROM ] table_name [ USING table_name, ... ] [ WHERE condition ]: no alias on the target. */
  private delete(): StatementKind {
    const rule = 'r_DELETE';
    this.expect('DELETE', rule);
    this.accept('FROM');
    this.qualifiedName('DELETE table');
    if (this.isWord('AS') || (this.peek()?.kind === 'word' && !['USING', 'WHERE'].includes(this.peek()!.upper)))
      this.fail(`DELETE target has no alias (${rule}); refer to it by its name`);
    if (this.accept('USING')) {
      do this.tableRef('DELETE USING table');
      while (this.acceptOp(','));
    }
    if (this.accept('WHERE')) this.expr([], 'DELETE condition');
    return 'DELETE';
  }

  /** r_UPDATE: UPDATE table_name [ [ AS ] alias ] SET column = { expression | DEFAULT } [,...] [ FROM fromlist ] [ WHERE condition ] */
  private update(): StatementKind {
    const rule = 'r_UPDATE';
    this.expect('UPDATE', rule);
    this.tableRef('UPDATE table');
    this.expect('SET', rule);
    this.setList(['FROM', 'WHERE'], rule);
    if (this.accept('FROM')) this.exprList(['WHERE'], 'UPDATE FROM list');
    if (this.accept('WHERE')) this.expr([], 'UPDATE condition');
    return 'UPDATE';
  }

  /**
   * r_ALTER_TABLE, the actions the merge uses:
   *   ADD [ COLUMN ] column_name column_type [ DEFAULT default_expr ] [ ENCODE encoding ] [ NOT NULL | NULL ]
   *     (one column per statement)
   *   ALTER COLUMN column_name TYPE updated_varchar_data_type_size   (VARCHAR only; not in a transaction block)
   *   DROP [ COLUMN ] column_name [ RESTRICT | CASCADE ]
   *   RENAME COLUMN column_name TO new_name
   *   RENAME TO new_name
   */
  private alterTable(): StatementKind {
    const rule = 'r_ALTER_TABLE';
    this.expect('ALTER TABLE', rule);
    this.qualifiedName('ALTER TABLE table');
    if (this.accept('ADD')) {
      this.accept('COLUMN');
      if (this.isWord('IF')) this.fail(`ADD COLUMN has no IF NOT EXISTS in Redshift (${rule})`);
      if (this.isWord('CONSTRAINT') || this.isWord('PRIMARY') || this.isWord('UNIQUE'))
        this.fail(`ADD table_constraint is not a form the merge sends (${rule})`);
      this.identifier('column name');
      this.dataType(rule);
      this.columnAttributes(rule);
      if (this.isOp(','))
        this.fail(`several columns in one ALTER TABLE ADD (Redshift: one column per statement, ${rule})`);
      return 'ALTER TABLE ADD COLUMN';
    }
    if (this.accept('ALTER')) {
      this.accept('COLUMN');
      this.identifier('column name');
      if (this.accept('SET', 'DATA'))
        this.fail(`ALTER COLUMN SET DATA TYPE is PostgreSQL; Redshift: ALTER COLUMN c TYPE (${rule})`);
      this.expect('TYPE', `${rule}: ALTER COLUMN column_name TYPE updated_varchar_data_type_size`);
      const type = this.dataType(rule);
      if (!['VARCHAR', 'CHARACTER VARYING', 'NVARCHAR'].includes(type))
        this.fail(`ALTER COLUMN TYPE ${type}: Redshift changes only a VARCHAR's size (${rule})`);
      if (this.isWord('USING')) this.fail(`ALTER COLUMN TYPE … USING is PostgreSQL (${rule})`);
      return 'ALTER TABLE ALTER COLUMN TYPE';
    }
    if (this.accept('DROP')) {
      if (this.isWord('CONSTRAINT')) this.fail(`DROP CONSTRAINT is not a form the merge sends (${rule})`);
      this.accept('COLUMN');
      if (this.isWord('IF')) this.fail(`DROP COLUMN has no IF EXISTS in Redshift (${rule})`);
      this.identifier('column name');
      if (!this.accept('RESTRICT')) this.accept('CASCADE');
      return 'ALTER TABLE DROP COLUMN';
    }
    if (this.accept('RENAME', 'COLUMN')) {
      this.identifier('column name');
      this.expect('TO', rule);
      this.identifier('new column name');
      return 'ALTER TABLE RENAME COLUMN';
    }
    if (this.accept('RENAME', 'TO')) {
      this.identifier('new table name');
      if (this.isOp('.')) this.fail(`RENAME TO takes an unqualified name (${rule})`);
      return 'ALTER TABLE RENAME TO';
    }
    this.fail(
      `not an ALTER TABLE action the merge sends (ADD COLUMN, ALTER COLUMN TYPE, DROP COLUMN, RENAME) (${rule})`,
    );
  }

  /** r_DROP_VIEW / r_DROP_TABLE: DROP { VIEW | TABLE } [ IF EXISTS ] name [, ...] [ CASCADE | RESTRICT ] */
  private drop(): StatementKind {
    this.expect('DROP', 'DROP');
    const kind = this.accept('VIEW') ? 'DROP VIEW' : this.accept('TABLE') ? 'DROP TABLE' : undefined;
    if (!kind) this.fail('not a DROP form the merge sends (VIEW, TABLE)');
    this.accept('IF', 'EXISTS');
    do this.qualifiedName(`${kind} name`);
    while (this.acceptOp(','));
    if (!this.accept('CASCADE')) this.accept('RESTRICT');
    return kind;
  }

  /** r_LOCK: LOCK [ TABLE ] table_name [, ...] (no lock modes) */
  private lock(): StatementKind {
    this.expect('LOCK', 'r_LOCK');
    this.accept('TABLE');
    do this.qualifiedName('LOCK table');
    while (this.acceptOp(','));
    return 'LOCK';
  }

  /**
   * r_BEGIN: BEGIN [ WORK | TRANSACTION ] [ ISOLATION LEVEL option ] [ READ WRITE | READ ONLY ]
   * (START TRANSACTION is a synonym); r_COMMIT, r_END, r_ROLLBACK, r_ABORT: { COMMIT | END | ROLLBACK | ABORT }
   * [ WORK | TRANSACTION ].
   */
  private transactionControl(): StatementKind {
    const tok = this.peek()!;
    this.i++;
    if (tok.upper === 'BEGIN' || tok.upper === 'START') {
      if (tok.upper === 'START') this.expect('TRANSACTION', 'r_START_TRANSACTION');
      else if (!this.accept('WORK')) this.accept('TRANSACTION');
      if (this.accept('ISOLATION', 'LEVEL')) {
        if (!this.accept('SERIALIZABLE') && !this.accept('SNAPSHOT') && !this.accept('READ', 'COMMITTED'))
          this.fail('ISOLATION LEVEL SERIALIZABLE | SNAPSHOT | READ COMMITTED (r_BEGIN)');
      }
      if (!this.accept('READ', 'WRITE')) this.accept('READ', 'ONLY');
      return 'BEGIN';
    }
    if (!this.accept('WORK')) this.accept('TRANSACTION');
    return tok.upper === 'ROLLBACK' || tok.upper === 'ABORT' ? 'ROLLBACK' : 'COMMIT';
  }

  /** r_TRUNCATE: TRUNCATE [ TABLE ] table_name (commits the transaction it runs in) */
  private truncate(): StatementKind {
    this.expect('TRUNCATE', 'r_TRUNCATE');
    this.accept('TABLE');
    this.qualifiedName('TRUNCATE table');
    if (this.isOp(',')) this.fail('TRUNCATE takes one table (r_TRUNCATE)');
    return 'TRUNCATE';
  }
}

interface DataTypeSpec {
  readonly args: 'none' | 'length' | 'precision';
  readonly max?: number;
  readonly required?: boolean;
  readonly page: string;
}

/** c_Supported_data_types and its pages (r_Numeric_types201, r_Character_types, r_Datetime_types, r_VARBYTE_type). */
const DATA_TYPES: Readonly<Record<string, DataTypeSpec>> = (() => {
  const none = (page: string): DataTypeSpec => ({ args: 'none', page });
  const t: Record<string, DataTypeSpec> = {};
  for (const n of ['SMALLINT', 'INT2', 'INTEGER', 'INT', 'INT4', 'BIGINT', 'INT8', 'REAL', 'FLOAT4', 'FLOAT8'])
    t[n] = none('r_Numeric_types201');
  t['DOUBLE PRECISION'] = none('r_Numeric_types201');
  t.FLOAT = { args: 'length', max: 53, page: 'r_Numeric_types201' };
  for (const n of ['DECIMAL', 'NUMERIC']) t[n] = { args: 'precision', max: 38, page: 'r_Numeric_types201' };
  for (const n of ['BOOLEAN', 'BOOL']) t[n] = none('r_Boolean_type');
  for (const n of ['CHAR', 'CHARACTER', 'NCHAR', 'BPCHAR'])
    t[n] = { args: 'length', max: 4096, page: 'r_Character_types' };
  for (const n of ['VARCHAR', 'CHARACTER VARYING', 'NVARCHAR'])
    t[n] = { args: 'length', max: 65535, page: 'r_Character_types' };
  t.TEXT = none('r_Character_types');
  for (const n of ['VARBYTE', 'VARBINARY', 'BINARY VARYING'])
    t[n] = { args: 'length', max: 1024000, page: 'r_VARBYTE_type' };
  for (const n of [
    'DATE',
    'TIMESTAMP',
    'TIMESTAMP WITHOUT TIME ZONE',
    'TIMESTAMPTZ',
    'TIMESTAMP WITH TIME ZONE',
    'TIME',
    'TIME WITHOUT TIME ZONE',
    'TIMETZ',
    'TIME WITH TIME ZONE',
  ])
    t[n] = none('r_Datetime_types');
  t.SUPER = none('r_SUPER_type');
  for (const n of ['GEOMETRY', 'GEOGRAPHY', 'HLLSKETCH']) t[n] = none('c_Supported_data_types');
  return t;
})();

// ---------------------------------------------------------------------------------------------------------------
// Public checks

export interface StatementCheck {
  /** The form recognised (undefined when the statement is refused before its form is known). */
  readonly kind?: StatementKind;
  /** Why Redshift would refuse it; empty when it is accepted. */
  readonly problems: readonly string[];
}

/** Parses one statement against the allow-list grammar. */
export function checkRedshiftStatement(sql: string): StatementCheck {
  const problems: string[] = [];
  const bytes = Buffer.byteLength(sql);
  if (bytes > DATA_API_MAX_STATEMENT_BYTES) problems.push(`${bytes} bytes > ${DATA_API_MAX_STATEMENT_BYTES}`);
  let tokens: Token[];
  try {
    tokens = tokenize(sql);
  } catch (err) {
    return { problems: [...problems, (err as Error).message] };
  }
  const pgOnly = postgresOnly(tokens);
  if (pgOnly.length > 0) return { problems: [...problems, ...pgOnly] };
  if (tokens[0]?.upper === 'MERGE') {
    const shape = mergeShapeProblems(tokens);
    if (shape.length > 0) return { kind: 'MERGE', problems: [...problems, ...shape] };
  }
  const parser = new Parser(tokens, sql);
  try {
    const kind = parser.statement();
    if (!parser.atEnd()) parser.fail(`unexpected text after the end of the ${kind} statement`);
    return { kind, problems };
  } catch (err) {
    if (!(err instanceof GrammarError)) throw err;
    return { problems: [...problems, err.message] };
  }
}

/** Problems of one statement (empty when it is fine). */
export function redshiftProblems(sql: string): string[] {
  return [...checkRedshiftStatement(sql).problems];
}

/** Problems of a transaction (one BatchExecuteStatement). */
export function redshiftTransactionProblems(sqls: readonly string[]): string[] {
  const checks = sqls.map(checkRedshiftStatement);
  const problems = checks.flatMap((c, i) => c.problems.map((p) => `statement ${i + 1}: ${p}`));
  if (sqls.length > 1) {
    checks.forEach((c, i) => {
      // r_TRUNCATE: "TRUNCATE commits the transaction in which it is run": it would commit half a merge.
      if (c.kind === 'TRUNCATE')
        problems.push(`statement ${i + 1}: TRUNCATE commits the transaction it runs in (r_TRUNCATE): run it alone`);
      // r_ALTER_TABLE: a column's type cannot be altered inside a transaction block.
      if (c.kind === 'ALTER TABLE ALTER COLUMN TYPE')
        problems.push(
          `statement ${i + 1}: ALTER COLUMN TYPE cannot run inside a transaction block (r_ALTER_TABLE): run it alone`,
        );
    });
  }
  if (sqls.length > DATA_API_MAX_STATEMENTS)
    problems.unshift(`${sqls.length} statements > ${DATA_API_MAX_STATEMENTS} per transaction`);
  return problems;
}
