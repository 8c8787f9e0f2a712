-- A store as Sangsaeng wrote it before migrations (schema 7, the tree at adeba7b):
-- Store(url) on an empty database, then a catalogue entry, a token, a partner, a
-- completed run with one round and its privacy record, a base model and two audit
-- log entries, through its own queries. Dumped with pg_dump 15 --inserts --no-owner
-- --no-privileges (psql's \restrict lines and comments left out).
SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

CREATE TABLE public.api_tokens (
    id integer NOT NULL,
    name character varying(100) NOT NULL,
    role character varying(16) NOT NULL,
    tenant character varying(100),
    token_sha256 character varying(64) NOT NULL,
    created_at timestamp with time zone NOT NULL,
    revoked_at timestamp with time zone
);

CREATE SEQUENCE public.api_tokens_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.api_tokens_id_seq OWNED BY public.api_tokens.id;

CREATE TABLE public.audit_log (
    seq integer NOT NULL,
    "time" character varying(40) NOT NULL,
    actor character varying(200) NOT NULL,
    role character varying(16),
    tenant character varying(100),
    action character varying(500) NOT NULL,
    outcome character varying(200) NOT NULL,
    detail character varying(500),
    prev_hash character varying(64) NOT NULL,
    hash character varying(64) NOT NULL
);

CREATE TABLE public.base_models (
    id integer NOT NULL,
    owner character varying(100),
    sha256 character varying(64) NOT NULL,
    size integer NOT NULL,
    tensors json NOT NULL,
    weights bytea NOT NULL,
    uploaded_at timestamp with time zone NOT NULL
);

CREATE SEQUENCE public.base_models_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.base_models_id_seq OWNED BY public.base_models.id;

CREATE TABLE public.datasets (
    name character varying(200) NOT NULL,
    entry_json text NOT NULL,
    updated_at timestamp with time zone NOT NULL
);

CREATE TABLE public.meta (
    key character varying(50) NOT NULL,
    value text NOT NULL
);

CREATE TABLE public.partners (
    name character varying(200) NOT NULL,
    public_key character varying(64) NOT NULL,
    node_key character varying(1000),
    node_id character varying(32),
    registered_at timestamp with time zone NOT NULL,
    removed_at timestamp with time zone
);

CREATE TABLE public.privacy_records (
    id integer NOT NULL,
    run_id integer NOT NULL,
    round integer NOT NULL,
    node_id character varying(32) NOT NULL,
    partner character varying(200) NOT NULL,
    dataset character varying(200) NOT NULL,
    noise_multiplier double precision NOT NULL,
    sample_rate double precision NOT NULL,
    steps integer NOT NULL,
    evaluation_noise_multiplier double precision NOT NULL,
    trained_parameters integer NOT NULL,
    delta double precision NOT NULL,
    epsilon double precision NOT NULL,
    lifetime_epsilon double precision NOT NULL,
    epsilon_cap double precision NOT NULL,
    ledger_seq integer NOT NULL,
    ledger_hash character varying(64) NOT NULL,
    recorded_at timestamp with time zone NOT NULL
);

CREATE SEQUENCE public.privacy_records_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.privacy_records_id_seq OWNED BY public.privacy_records.id;

CREATE TABLE public.round_results (
    id integer NOT NULL,
    run_id integer NOT NULL,
    round integer NOT NULL,
    trained_nodes integer NOT NULL,
    evaluated_nodes integer NOT NULL,
    metrics json NOT NULL,
    partner_errors json NOT NULL,
    recorded_at timestamp with time zone NOT NULL
);

CREATE SEQUENCE public.round_results_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.round_results_id_seq OWNED BY public.round_results.id;

CREATE TABLE public.runs (
    id integer NOT NULL,
    flower_run_id character varying(32),
    owner character varying(100),
    dataset character varying(200) NOT NULL,
    task_json text NOT NULL,
    task_sha256 character varying(64) NOT NULL,
    status character varying(16) NOT NULL,
    reason text,
    started_at timestamp with time zone NOT NULL,
    finished_at timestamp with time zone,
    model bytea,
    model_sha256 character varying(64)
);

CREATE SEQUENCE public.runs_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE public.runs_id_seq OWNED BY public.runs.id;

ALTER TABLE ONLY public.api_tokens ALTER COLUMN id SET DEFAULT nextval('public.api_tokens_id_seq'::regclass);

ALTER TABLE ONLY public.base_models ALTER COLUMN id SET DEFAULT nextval('public.base_models_id_seq'::regclass);

ALTER TABLE ONLY public.privacy_records ALTER COLUMN id SET DEFAULT nextval('public.privacy_records_id_seq'::regclass);

ALTER TABLE ONLY public.round_results ALTER COLUMN id SET DEFAULT nextval('public.round_results_id_seq'::regclass);

ALTER TABLE ONLY public.runs ALTER COLUMN id SET DEFAULT nextval('public.runs_id_seq'::regclass);

INSERT INTO public.api_tokens VALUES (1, 'ops', 'admin', NULL, '73f5bab2e1c3255101fe884575b3181d0d862cd118a1cb061073f81c8234ee94', '2026-11-29 18:03:01.986054+00', NULL);

INSERT INTO public.audit_log VALUES (1, '2026-11-29T18:03:02.018858+00:00', 'operator root@host', 'admin', NULL, 'cli: admin partner add', 'ok', '''north-bank''', '0000000000000000000000000000000000000000000000000000000000000000', '24d11a9c3133d646024699a997bea52b4c09be824a23c7c6b07fd7987d062536');
INSERT INTO public.audit_log VALUES (2, '2026-11-29T18:03:02.021535+00:00', 'acme-ml', 'startup', 'acme', 'POST /api/v1/runs', '201', 'run 1', '24d11a9c3133d646024699a997bea52b4c09be824a23c7c6b07fd7987d062536', 'e4827d6a14716815847abbcee2a95b9d0052f2723a367c6eaf57819184ca0705');

INSERT INTO public.base_models VALUES (1, 'acme', 'cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd', 4, '[{"name": "w", "dtype": "F32", "shape": [1]}]', '\x74696e79', '2026-11-29 18:03:02.015345+00');

INSERT INTO public.datasets VALUES ('caravan', '{"name": "caravan"}', '2026-11-29 18:03:01.98027+00');

INSERT INTO public.meta VALUES ('schema_version', '7');

INSERT INTO public.partners VALUES ('north-bank', 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', NULL, NULL, '2026-11-29 18:03:01.989974+00', NULL);

INSERT INTO public.privacy_records VALUES (1, 1, 1, '7', 'north-bank', 'caravan', 1, 0.02, 50, 1000000, 100, 1e-05, 1.5, 1.5, 10, 2, 'abababababababababababababababababababababababababababababababab', '2026-11-29 18:03:02.008755+00');

INSERT INTO public.round_results VALUES (1, 1, 1, 1, 1, '{"auc": 0.61}', '[]', '2026-11-29 18:03:02.005979+00');

INSERT INTO public.runs VALUES (1, '4242', 'acme', 'caravan', '{"dataset":"caravan","features":[{"kind":"categorical","name":"MOSTYPE","categories":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41]},{"kind":"numeric","name":"MAANTHUI","min":1.0,"max":10.0,"missing":null},{"kind":"numeric","name":"MGEMOMV","min":1.0,"max":6.0,"missing":null},{"kind":"numeric","name":"MGEMLEEF","min":1.0,"max":6.0,"missing":null},{"kind":"categorical","name":"MOSHOOFD","categories":[1,2,3,4,5,6,7,8,9,10]},{"kind":"numeric","name":"MGODRK","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MGODPR","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MGODOV","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MGODGE","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MRELGE","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MRELSA","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MRELOV","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MFALLEEN","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MFGEKIND","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MFWEKIND","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MOPLHOOG","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MOPLMIDD","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MOPLLAAG","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MBERHOOG","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MBERZELF","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MBERBOER","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MBERMIDD","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MBERARBG","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MBERARBO","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MSKA","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MSKB1","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MSKB2","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MSKC","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MSKD","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MHHUUR","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MHKOOP","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MAUT1","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MAUT2","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MAUT0","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MZFONDS","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MZPART","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MINKM30","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MINK3045","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MINK4575","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MINK7512","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MINK123M","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MINKGEM","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"MKOOPKLA","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PWAPART","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PWABEDR","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PWALAND","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PPERSAUT","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PBESAUT","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PMOTSCO","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PVRAAUT","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PAANHANG","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PTRACTOR","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PWERKT","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PBROM","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PLEVEN","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PPERSONG","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PGEZONG","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PWAOREG","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PBRAND","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PZEILPL","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PPLEZIER","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PFIETS","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PINBOED","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"PBYSTAND","min":0.0,"max":9.0,"missing":null},{"kind":"numeric","name":"AWAPART","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"AWABEDR","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"AWALAND","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"APERSAUT","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"ABESAUT","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"AMOTSCO","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"AVRAAUT","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"AAANHANG","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"ATRACTOR","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"AWERKT","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"ABROM","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"ALEVEN","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"APERSONG","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"AGEZONG","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"AWAOREG","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"ABRAND","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"AZEILPL","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"APLEZIER","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"AFIETS","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"AINBOED","min":0.0,"max":12.0,"missing":null},{"kind":"numeric","name":"ABYSTAND","min":0.0,"max":12.0,"missing":null}],"target":{"name":"Purchase","classes":["No","Yes"]},"model":{"kind":"mlp","hidden":[16],"encoder":null,"mode":"head","max_tokens":128,"adapter_layers":1,"adapter_rank":8},"rounds":1,"local_epochs":2,"batch_size":64,"learning_rate":1.0,"dp":{"max_grad_norm":1.0,"delta":0.00001,"noise_multiplier":1.0,"target_epsilon":null,"evaluation_noise_multiplier":10.0},"min_nodes":2,"round_timeout":120.0,"seed":7,"base_model":null}', '6091e986c99458983d8288201b22a97e8d1779936c1d9a15368d5bd1a03e48d3', 'completed', NULL, '2026-11-29 18:03:01.996903+00', '2026-11-29 18:03:02.010404+00', '\x77656967687473', '9a129038d9a00aed0cf6a7ea059ca50a813449061ab87848cf1a13eafdf33b2c');

SELECT pg_catalog.setval('public.api_tokens_id_seq', 1, true);

SELECT pg_catalog.setval('public.base_models_id_seq', 1, true);

SELECT pg_catalog.setval('public.privacy_records_id_seq', 1, true);

SELECT pg_catalog.setval('public.round_results_id_seq', 1, true);

SELECT pg_catalog.setval('public.runs_id_seq', 1, true);

ALTER TABLE ONLY public.api_tokens
    ADD CONSTRAINT api_tokens_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.api_tokens
    ADD CONSTRAINT api_tokens_token_sha256_key UNIQUE (token_sha256);

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (seq);

ALTER TABLE ONLY public.base_models
    ADD CONSTRAINT base_models_owner_sha256_key UNIQUE (owner, sha256);

ALTER TABLE ONLY public.base_models
    ADD CONSTRAINT base_models_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.datasets
    ADD CONSTRAINT datasets_pkey PRIMARY KEY (name);

ALTER TABLE ONLY public.meta
    ADD CONSTRAINT meta_pkey PRIMARY KEY (key);

ALTER TABLE ONLY public.partners
    ADD CONSTRAINT partners_node_key_key UNIQUE (node_key);

ALTER TABLE ONLY public.partners
    ADD CONSTRAINT partners_pkey PRIMARY KEY (name);

ALTER TABLE ONLY public.privacy_records
    ADD CONSTRAINT privacy_records_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.privacy_records
    ADD CONSTRAINT privacy_records_run_id_round_node_id_key UNIQUE (run_id, round, node_id);

ALTER TABLE ONLY public.round_results
    ADD CONSTRAINT round_results_pkey PRIMARY KEY (id);

ALTER TABLE ONLY public.round_results
    ADD CONSTRAINT round_results_run_id_round_key UNIQUE (run_id, round);

ALTER TABLE ONLY public.runs
    ADD CONSTRAINT runs_flower_run_id_key UNIQUE (flower_run_id);

ALTER TABLE ONLY public.runs
    ADD CONSTRAINT runs_pkey PRIMARY KEY (id);

CREATE INDEX ix_base_models_owner ON public.base_models USING btree (owner);

CREATE INDEX ix_runs_owner ON public.runs USING btree (owner);

ALTER TABLE ONLY public.privacy_records
    ADD CONSTRAINT privacy_records_run_id_fkey FOREIGN KEY (run_id) REFERENCES public.runs(id);

ALTER TABLE ONLY public.round_results
    ADD CONSTRAINT round_results_run_id_fkey FOREIGN KEY (run_id) REFERENCES public.runs(id);
