-- A store as Sangsaeng wrote it before migrations (schema 7, the tree at adeba7b):
-- Store(url) on an empty database, then a catalogue entry, a token, a partner, a
-- completed run with one round and its privacy record, a base model and two audit
-- log entries, through its own queries. Dumped with Python's sqlite3 iterdump().
BEGIN TRANSACTION;
CREATE TABLE api_tokens (
	id INTEGER NOT NULL, 
	name VARCHAR(100) NOT NULL, 
	role VARCHAR(16) NOT NULL, 
	tenant VARCHAR(100), 
	token_sha256 VARCHAR(64) NOT NULL, 
	created_at DATETIME NOT NULL, 
	revoked_at DATETIME, 
	PRIMARY KEY (id), 
	UNIQUE (token_sha256)
);
INSERT INTO "api_tokens" VALUES(1,'ops','admin',NULL,'123b7ee1255bf4c64f6ba3335dcfca7a830c41602f476aa06803c7c2eb3cb927','2026-11-29 18:02:41.122221',NULL);
CREATE TABLE audit_log (
	seq INTEGER NOT NULL, 
	time VARCHAR(40) NOT NULL, 
	actor VARCHAR(200) NOT NULL, 
	role VARCHAR(16), 
	tenant VARCHAR(100), 
	action VARCHAR(500) NOT NULL, 
	outcome VARCHAR(200) NOT NULL, 
	detail VARCHAR(500), 
	prev_hash VARCHAR(64) NOT NULL, 
	hash VARCHAR(64) NOT NULL, 
	PRIMARY KEY (seq)
);
INSERT INTO "audit_log" VALUES(1,'2026-11-29T18:02:41.191042+00:00','operator root@host','admin',NULL,'cli: admin partner add','ok','''north-bank''','0000000000000000000000000000000000000000000000000000000000000000','4d1142f6b8114bfaf41ff240776bfe666f7f5a3fdf5fe8c4fb809aa313bb1d17');
INSERT INTO "audit_log" VALUES(2,'2026-11-29T18:02:41.197567+00:00','acme-ml','startup','acme','POST /api/v1/runs','201','run 1','4d1142f6b8114bfaf41ff240776bfe666f7f5a3fdf5fe8c4fb809aa313bb1d17','f30a44bd30f41d81e9d3ae7dd195e9bcd01ba21ca4dfc15d2b86471aa91c41e6');
CREATE TABLE base_models (
	id INTEGER NOT NULL, 
	owner VARCHAR(100), 
	sha256 VARCHAR(64) NOT NULL, 
	size INTEGER NOT NULL, 
	tensors JSON NOT NULL, 
	weights BLOB NOT NULL, 
	uploaded_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (owner, sha256)
);
INSERT INTO "base_models" VALUES(1,'acme','cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd',4,'[{"name": "w", "dtype": "F32", "shape": [1]}]',X'74696E79','2026-11-29 18:02:41.187322');
CREATE TABLE datasets (
	name VARCHAR(200) NOT NULL, 
	entry_json TEXT NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (name)
);
INSERT INTO "datasets" VALUES('caravan','{"name": "caravan"}','2026-11-29 18:02:41.117227');
CREATE TABLE meta (
	"key" VARCHAR(50) NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY ("key")
);
INSERT INTO "meta" VALUES('schema_version','7');
CREATE TABLE partners (
	name VARCHAR(200) NOT NULL, 
	public_key VARCHAR(64) NOT NULL, 
	node_key VARCHAR(1000), 
	node_id VARCHAR(32), 
	registered_at DATETIME NOT NULL, 
	removed_at DATETIME, 
	PRIMARY KEY (name), 
	UNIQUE (node_key)
);
INSERT INTO "partners" VALUES('north-bank','AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=',NULL,NULL,'2026-11-29 18:02:41.127164',NULL);
CREATE TABLE privacy_records (
	id INTEGER NOT NULL, 
	run_id INTEGER NOT NULL, 
	round INTEGER NOT NULL, 
	node_id VARCHAR(32) NOT NULL, 
	partner VARCHAR(200) NOT NULL, 
	dataset VARCHAR(200) NOT NULL, 
	noise_multiplier FLOAT NOT NULL, 
	sample_rate FLOAT NOT NULL, 
	steps INTEGER NOT NULL, 
	evaluation_noise_multiplier FLOAT NOT NULL, 
	trained_parameters INTEGER NOT NULL, 
	delta FLOAT NOT NULL, 
	epsilon FLOAT NOT NULL, 
	lifetime_epsilon FLOAT NOT NULL, 
	epsilon_cap FLOAT NOT NULL, 
	ledger_seq INTEGER NOT NULL, 
	ledger_hash VARCHAR(64) NOT NULL, 
	recorded_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (run_id, round, node_id), 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);
INSERT INTO "privacy_records" VALUES(1,1,1,'7','north-bank','caravan',1.0,0.02,50,1000000.0,100,1.0e-05,1.5,1.5,10.0,2,'abababababababababababababababababababababababababababababababab','2026-11-29 18:02:41.170911');
CREATE TABLE round_results (
	id INTEGER NOT NULL, 
	run_id INTEGER NOT NULL, 
	round INTEGER NOT NULL, 
	trained_nodes INTEGER NOT NULL, 
	evaluated_nodes INTEGER NOT NULL, 
	metrics JSON NOT NULL, 
	partner_errors JSON NOT NULL, 
	recorded_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (run_id, round), 
	FOREIGN KEY(run_id) REFERENCES runs (id)
);
INSERT INTO "round_results" VALUES(1,1,1,1,1,'{"auc": 0.61}','[]','2026-11-29 18:02:41.164173');
CREATE TABLE runs (
	id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, 
	flower_run_id VARCHAR(32), 
	owner VARCHAR(100), 
	dataset VARCHAR(200) NOT NULL, 
	task_json TEXT NOT NULL, 
	task_sha256 VARCHAR(64) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	reason TEXT, 
	started_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	model BLOB, 
	model_sha256 VARCHAR(64), 
	UNIQUE (flower_run_id)
);
INSERT INTO "runs" VALUES(1,'4242','acme','caravan','{"dataset":"caravan","features":[{"kind":"categorical","name":"MOSTYPE","categories":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41]},{"kind":"numeric","name":"MAANTHUI","min":1.0,"max":10.0,"missing":null},{"kind":"numeric","name":"MGEMOMV","min":1.0,"max":6.0,"missing":null},{"kind":"numeric","name":"MGEMLEEF","min":1.0,"max":6.0,"missing":null},{"kind":"categorical","name":"MOSHOOFD","categories":[1,2,3,4,5,6,7,8,9,10]},{"kind":"numeric","name":"MGODRK","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MGODPR","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MGODOV","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MGODGE","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MRELGE","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MRELSA","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MRELOV","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MFALLEEN","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MFGEKIND","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MFWEKIND","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MOPLHOOG","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MOPLMIDD","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MOPLLAAG","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MBERHOOG","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MBERZELF","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MBERBOER","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MBERMIDD","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MBERARBG","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MBERARBO","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MSKA","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MSKB1","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MSKB2","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MSKC","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MSKD","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MHHUUR","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MHKOOP","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MAUT1","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MAUT2","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MAUT0","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MZFONDS","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MZPART","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MINKM30","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MINK3045","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MINK4575","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MINK7512","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MINK123M","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MINKGEM","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MKOOPKLA","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PWAPART","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PWABEDR","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PWALAND","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PPERSAUT","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PBESAUT","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PMOTSCO","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PVRAAUT","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PAANHANG","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PTRACTOR","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PWERKT","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PBROM","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PLEVEN","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PPERSONG","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PGEZONG","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PWAOREG","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PBRAND","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PZEILPL","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PPLEZIER","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PFIETS","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PINBOED","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PBYSTAND","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"AWAPART","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"AWABEDR","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"AWALAND","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"APERSAUT","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"ABESAUT","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"AMOTSCO","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"AVRAAUT","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"AAANHANG","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"ATRACTOR","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"AWERKT","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"ABROM","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"ALEVEN","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"APERSONG","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"AGEZONG","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"AWAOREG","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"ABRAND","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"AZEILPL","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"APLEZIER","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"AFIETS","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"AINBOED","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"ABYSTAND","min":0.0,"max":12.0,"missing":null}],"target":{"name":"Purchase","classes":["No","Yes"]},"model":{"kind":"mlp","hidden":[16],"encoder":null,"mode":"head","max_tokens":128,"adapter_layers":1,"adapter_rank":8},"rounds":1,"local_epochs":2,"batch_size":64,"learning_rate":1.0,"dp":{"max_grad_norm":1.0,"delta":0.00001,"noise_multiplier":1.0,"target_epsilon":null,"evaluation_noise_multiplier":10.0},"min_nodes":2,"round_timeout":120.0,"seed":7,"base_model":null}','6091e986c99458983d8288201b22a97e8d1779936c1d9a15368d5bd1a03e48d3','completed',NULL,'2026-11-29 18:02:41.146241','2026-11-29 18:02:41.181320',X'77656967687473','9a129038d9a00aed0cf6a7ea059ca50a813449061ab87848cf1a13eafdf33b2c');
CREATE INDEX ix_runs_owner ON runs (owner);
CREATE INDEX ix_base_models_owner ON base_models (owner);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER privacy_records_no_update BEFORE UPDATE ON privacy_records BEGIN SELECT RAISE(ABORT, 'privacy_records is append-only'); END;
CREATE TRIGGER privacy_records_no_delete BEFORE DELETE ON privacy_records BEGIN SELECT RAISE(ABORT, 'privacy_records is append-only'); END;
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('runs',1);
COMMIT;
