/**
 * mysql2 escapes the values of `?` placeholders with backslashes (`'a\'b'`, `"{\"kind\":…}"`). A server whose
 * sql_mode has NO_BACKSLASH_ESCAPES reads those backslashes literally: a snapshot watermark's JSON would not parse
 * (the snapshot would wait for it forever), a backfill request or an information_schema lookup for a name with a
 * quote would go wrong. Every connection of ours that sends escaped values takes the mode out of its own session
 * (the server's global setting, and every other session, are left alone).
 */
import type mysql from 'mysql2/promise';

export const BACKSLASH_ESCAPES_SQL =
  "SET SESSION sql_mode = TRIM(BOTH ',' FROM REPLACE(CONCAT(',', @@SESSION.sql_mode, ','), ',NO_BACKSLASH_ESCAPES,', ','))";

export async function useBackslashEscapes(conn: Pick<mysql.Connection, 'query'>): Promise<void> {
  await conn.query(BACKSLASH_ESCAPES_SQL);
}
