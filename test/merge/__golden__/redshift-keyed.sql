CREATE SCHEMA IF NOT EXISTS "cdc";

CREATE SCHEMA IF NOT EXISTS "shop";

CREATE TABLE IF NOT EXISTS "cdc"."merge_batches" (batch_id VARCHAR(1024), source_db VARCHAR(256), source_table VARCHAR(256), events INTEGER, max_position CHAR(28), max_commit_ms BIGINT, applied_at TIMESTAMP);

CREATE TABLE IF NOT EXISTS "cdc"."replica_columns" (source_db VARCHAR(256), source_table VARCHAR(256), column_name VARCHAR(256), ordinal INTEGER, mysql_type VARCHAR(1024), warehouse_type VARCHAR(256), key_ordinal INTEGER);

CREATE TABLE IF NOT EXISTS "shop"."orders" ("id" DECIMAL(20,0), "status" VARCHAR(4), "total" DECIMAL(12,2), "meta" SUPER, "photo" VARBYTE(1024000), "created_at" TIMESTAMP, "_cdc_position" CHAR(28), "_cdc_op" VARCHAR(8), "_cdc_commit_ts" TIMESTAMP, "_cdc_loaded_at" TIMESTAMP);

CREATE TABLE IF NOT EXISTS "cdc"."shop__orders__keys" ("id" DECIMAL(20,0), "_cdc_position" CHAR(28), "_cdc_deleted" BOOLEAN);

DELETE FROM "cdc"."replica_columns" WHERE source_db = 'shop' AND source_table = 'orders';

INSERT INTO "cdc"."replica_columns" (source_db, source_table, column_name, ordinal, mysql_type, warehouse_type, key_ordinal) VALUES ('shop', 'orders', 'id', 0, 'bigint(20) unsigned', 'DECIMAL(20,0)', 0), ('shop', 'orders', 'status', 1, 'enum(''new'',''paid'')', 'VARCHAR(4)', NULL), ('shop', 'orders', 'total', 2, 'decimal(12,2)', 'DECIMAL(12,2)', NULL), ('shop', 'orders', 'meta', 3, 'json', 'SUPER', NULL), ('shop', 'orders', 'photo', 4, 'blob', 'VARBYTE(1024000)', NULL), ('shop', 'orders', 'created_at', 5, 'datetime(6)', 'TIMESTAMP', NULL);

-- transaction;

LOCK "cdc"."shop__orders__state";

CREATE TEMP TABLE "_cdc_stage" ("id" DECIMAL(20,0), "status" VARCHAR(4), "total" DECIMAL(12,2), "meta" VARCHAR(65535), "photo" VARBYTE(1024000), "created_at" TIMESTAMP, "_cdc_position" CHAR(28), "_cdc_op" VARCHAR(8), "_cdc_commit_ts" TIMESTAMP);

COPY "_cdc_stage" ("id", "status", "total", "meta", "photo", "created_at", "_cdc_position", "_cdc_op", "_cdc_commit_ts") FROM 's3://lake/staging/batch.csv.gz' IAM_ROLE 'arn:aws:iam::123456789012:role/cdc-copy' FORMAT AS CSV GZIP NULL AS '\\N' TIMEFORMAT 'auto' DATEFORMAT 'auto' COMPUPDATE OFF STATUPDATE OFF;

DELETE FROM "_cdc_stage" USING "shop"."orders" WHERE "_cdc_stage"."id" = "orders"."id" AND "_cdc_stage"."_cdc_position" <= "orders"."_cdc_position";

DELETE FROM "_cdc_stage" USING "cdc"."shop__orders__keys" WHERE "_cdc_stage"."id" = "shop__orders__keys"."id" AND "_cdc_stage"."_cdc_position" <= "shop__orders__keys"."_cdc_position";

DELETE FROM "shop"."orders" USING "_cdc_stage" WHERE "orders"."id" = "_cdc_stage"."id" AND "_cdc_stage"."_cdc_op" = 'delete';

DELETE FROM "cdc"."shop__orders__keys" USING "_cdc_stage" WHERE "shop__orders__keys"."id" = "_cdc_stage"."id";

INSERT INTO "cdc"."shop__orders__keys" ("id", "_cdc_position", "_cdc_deleted") SELECT "id", "_cdc_position", TRUE FROM "_cdc_stage" WHERE "_cdc_op" = 'delete';

DELETE FROM "_cdc_stage" WHERE "_cdc_op" = 'delete';

MERGE INTO "shop"."orders" USING "_cdc_stage" AS s ON "shop"."orders"."id" = s."id" WHEN MATCHED THEN UPDATE SET "status" = s."status", "total" = s."total", "meta" = JSON_PARSE(s."meta"), "photo" = s."photo", "created_at" = s."created_at", "_cdc_position" = s."_cdc_position", "_cdc_op" = s."_cdc_op", "_cdc_commit_ts" = s."_cdc_commit_ts", "_cdc_loaded_at" = SYSDATE WHEN NOT MATCHED THEN INSERT ("id", "status", "total", "meta", "photo", "created_at", "_cdc_position", "_cdc_op", "_cdc_commit_ts", "_cdc_loaded_at") VALUES (s."id", s."status", s."total", JSON_PARSE(s."meta"), s."photo", s."created_at", s."_cdc_position", s."_cdc_op", s."_cdc_commit_ts", SYSDATE);
