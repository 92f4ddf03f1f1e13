-- tandem results database, schema version 1.
--
-- The database is the interface between the pipeline's steps (profile -> fit -> tune -> run) and it is
-- plain SQLite, so that sqlite3, pandas, polars and DuckDB can read it too. Conventions:
--   * timestamps are UTC ISO-8601 text, '2026-11-24T06:12:18.123Z' (they sort as text);
--   * columns named *_us are microseconds, *_ms milliseconds, *_khz kilohertz, *_bytes bytes;
--   * JSON columns hold JSON text ('{}' or '[]' when empty);
--   * migrations only move forward: a change is a new numbered file, never an edit of this one.

-- One machine (phone, board, laptop), identified by a stable fingerprint (hostname + CPU model + cores).
CREATE TABLE devices (
    id           TEXT PRIMARY KEY NOT NULL,
    hostname     TEXT NOT NULL,
    cpu_model    TEXT NOT NULL,
    cores        INTEGER NOT NULL,
    memory_bytes INTEGER NOT NULL,
    first_seen   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- A unit of a device that runs work: 'cpu:0' (one core), 'cpu:0-1' (a cluster), 'cuda:0'.
CREATE TABLE processors (
    device_id    TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    id           TEXT NOT NULL,
    kind         TEXT NOT NULL,                 -- 'cpu', 'cuda', 'metal', ...
    cores        TEXT NOT NULL DEFAULT '',      -- the CPU cores it owns, '0,1'; '' for an accelerator
    threads      INTEGER NOT NULL,
    max_freq_khz INTEGER,                       -- NULL where the OS does not say
    PRIMARY KEY (device_id, id)
);

-- A model as profiled: the same ONNX bytes with other fixed input shapes is another model (its ops differ).
CREATE TABLE models (
    id           INTEGER PRIMARY KEY,
    content_hash TEXT NOT NULL,                 -- SHA-256 of the ONNX bytes
    name         TEXT NOT NULL,
    input_shapes TEXT NOT NULL DEFAULT '{}',    -- JSON: input name -> fixed dims
    total_flops  INTEGER NOT NULL,
    op_count     INTEGER NOT NULL,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (content_hash, input_shapes)
);

-- The model's ops as tandem-graph sees them, with the cost features the cost models learn from.
CREATE TABLE ops (
    model_id     INTEGER NOT NULL REFERENCES models(id) ON DELETE CASCADE,
    op_id        INTEGER NOT NULL,              -- position in topological order
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL,                 -- 'Conv', 'DepthwiseConv', 'EinSum', ...
    flops        INTEGER NOT NULL,
    macs         INTEGER NOT NULL,
    bytes_in     INTEGER NOT NULL,
    bytes_out    INTEGER NOT NULL,
    weight_bytes INTEGER NOT NULL,
    output_shape TEXT NOT NULL DEFAULT '[]',    -- JSON array, e.g. [1,64,56,56]
    split_axes   TEXT NOT NULL DEFAULT '[]',    -- JSON array of the output axes it can be split along
    features     TEXT NOT NULL DEFAULT '{}',    -- JSON: further cost features (kernel size, strides, ...)
    PRIMARY KEY (model_id, op_id)
);
CREATE INDEX ops_by_kind ON ops (kind);

-- One run of `tandem profile`: a session stays 'running' until it ends; a killed one is found 'running'
-- (or 'interrupted') and the next profile resumes it, skipping what is already measured.
CREATE TABLE profile_sessions (
    id                  INTEGER PRIMARY KEY,
    device_id           TEXT NOT NULL REFERENCES devices(id),
    model_id            INTEGER REFERENCES models(id),   -- NULL for a session measuring transfers only
    started_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at         TEXT,                             -- NULL until done
    settings            TEXT NOT NULL DEFAULT '{}',       -- JSON: the profile options used
    status              TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'interrupted')),
    reference_before_ms REAL,                             -- the fixed reference workload, timed before ...
    reference_after_ms  REAL,                             -- ... and after the session
    drift_pct           REAL                              -- (after - before) / before * 100
);
CREATE INDEX profile_sessions_by_model ON profile_sessions (device_id, model_id);

-- The device's state while measuring: load, other processes' CPU use, frequencies and temperatures.
CREATE TABLE env_snapshots (
    id            INTEGER PRIMARY KEY,
    device_id     TEXT NOT NULL REFERENCES devices(id),
    session_id    INTEGER REFERENCES profile_sessions(id),
    taken_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    load1         REAL,
    load5         REAL,
    load15        REAL,
    other_cpu_pct REAL,                          -- CPU used by other processes, percent of the device
    freqs_khz     TEXT NOT NULL DEFAULT '{}',    -- JSON: core -> current frequency
    temps_c       TEXT NOT NULL DEFAULT '{}'     -- JSON: sensor -> degrees Celsius
);
CREATE INDEX env_snapshots_by_session ON env_snapshots (session_id);

-- One timing distribution: an op, a whole model, a stage or one part of a split op, on one processor.
-- The key (device, model, op, processor, target, variant, context) is unique, so a resumed session never
-- stores a measurement twice and `--force` replaces it in place.
CREATE TABLE measurements (
    id               INTEGER PRIMARY KEY,
    session_id       INTEGER NOT NULL REFERENCES profile_sessions(id),
    device_id        TEXT NOT NULL REFERENCES devices(id),
    model_id         INTEGER NOT NULL REFERENCES models(id),
    op_id            INTEGER,                    -- NULL for 'model' and 'stage' rows
    processor_id     TEXT NOT NULL,
    target           TEXT NOT NULL CHECK (target IN ('op', 'model', 'stage', 'split_part')),
    variant          TEXT NOT NULL DEFAULT 'whole', -- 'whole', a split part 'axis1:0.25-0.5', a stage 'ops:3-17'
    split_axis       INTEGER,                    -- for split parts: the axis cut ...
    ratio_start      REAL,                       -- ... and the part's share of it, [start, end)
    ratio_end        REAL,
    context          TEXT NOT NULL CHECK (context IN ('in_model', 'isolated')),
    samples          INTEGER NOT NULL,
    median_us        REAL NOT NULL,
    p10_us           REAL NOT NULL,
    p90_us           REAL NOT NULL,
    mean_us          REAL NOT NULL,
    cv               REAL NOT NULL,              -- coefficient of variation (stddev / mean)
    outliers_dropped INTEGER NOT NULL DEFAULT 0,
    env_id           INTEGER REFERENCES env_snapshots(id),
    measured_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    FOREIGN KEY (device_id, processor_id) REFERENCES processors(device_id, id),
    FOREIGN KEY (model_id, op_id) REFERENCES ops(model_id, op_id)
);
-- ifnull: SQLite treats NULLs as distinct in unique indexes, and whole-model rows have no op.
CREATE UNIQUE INDEX measurements_key
    ON measurements (device_id, model_id, ifnull(op_id, -1), processor_id, target, variant, context);
CREATE INDEX measurements_by_session ON measurements (session_id);
CREATE INDEX measurements_by_processor ON measurements (device_id, processor_id);

-- Ops a processor cannot run (the planner must not place them there).
CREATE TABLE unsupported (
    device_id    TEXT NOT NULL REFERENCES devices(id),
    model_id     INTEGER NOT NULL REFERENCES models(id),
    op_id        INTEGER NOT NULL,
    processor_id TEXT NOT NULL,
    reason       TEXT NOT NULL,
    recorded_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (device_id, model_id, op_id, processor_id),
    FOREIGN KEY (model_id, op_id) REFERENCES ops(model_id, op_id)
);

-- Moving a tensor of `bytes` from one processor to another (copy and synchronisation).
CREATE TABLE transfers (
    id            INTEGER PRIMARY KEY,
    device_id     TEXT NOT NULL REFERENCES devices(id),
    session_id    INTEGER REFERENCES profile_sessions(id),
    src_processor TEXT NOT NULL,
    dst_processor TEXT NOT NULL,
    bytes         INTEGER NOT NULL,
    samples       INTEGER NOT NULL,
    median_us     REAL NOT NULL,
    p10_us        REAL NOT NULL,
    p90_us        REAL NOT NULL,
    cv            REAL NOT NULL,
    measured_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (device_id, src_processor, dst_processor, bytes)
);

-- Fitted latency models, per (device, processor, op kind), in numbered versions (one `tandem fit` = one
-- version). Transfer models use op_kind 'transfer'.
CREATE TABLE cost_models (
    id           INTEGER PRIMARY KEY,
    device_id    TEXT NOT NULL REFERENCES devices(id),
    processor_id TEXT NOT NULL,
    op_kind      TEXT NOT NULL,
    version      INTEGER NOT NULL,
    params       TEXT NOT NULL DEFAULT '{}',    -- JSON: the model's form and coefficients
    samples      INTEGER NOT NULL,
    mape         REAL,                          -- on held-out data, percent
    within_10pct REAL,                          -- share of held-out predictions within 10 %, 0..1
    fitted_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    fallback_of  TEXT,                          -- set when this row stands in for another kind's model
    UNIQUE (device_id, processor_id, op_kind, version)
);
CREATE INDEX cost_models_by_version ON cost_models (device_id, version);

-- Partition plans found by `tandem tune`, with their predicted latency.
CREATE TABLE plans (
    id                 INTEGER PRIMARY KEY,
    model_id           INTEGER NOT NULL REFERENCES models(id),
    device_id          TEXT NOT NULL REFERENCES devices(id),
    cost_model_version INTEGER,
    objective          TEXT NOT NULL DEFAULT 'latency',
    plan               TEXT NOT NULL,           -- JSON: stages, processors, splits, dependencies, transfers
    predicted_ms       REAL NOT NULL,
    created_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX plans_by_model ON plans (model_id, device_id);

-- Plans executed for real by `tandem run`: verification and measured against predicted latency.
CREATE TABLE runs (
    id               INTEGER PRIMARY KEY,
    plan_id          INTEGER NOT NULL REFERENCES plans(id),
    device_id        TEXT NOT NULL REFERENCES devices(id),
    started_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    verified         INTEGER NOT NULL CHECK (verified IN (0, 1)),
    max_abs_diff     REAL,
    max_rel_diff     REAL,
    median_ms        REAL,
    p90_ms           REAL,
    predicted_ms     REAL,
    prediction_error REAL,                       -- (predicted - measured) / measured
    baselines        TEXT NOT NULL DEFAULT '[]', -- JSON: [{name, measured_ms}, ...]
    details          TEXT NOT NULL DEFAULT '{}'  -- JSON: per-stage timings and the like
);
CREATE INDEX runs_by_plan ON runs (plan_id);
