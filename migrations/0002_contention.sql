-- tandem results database, schema version 2: contention profiles (`tandem profile --contention`).
--
-- How much a processor slows down while controlled background load runs on the device: the whole model is
-- timed on the processor idle and loaded, in interleaved blocks, and the ratio of the medians stored. The
-- cost models scale their predictions by these factors for a busy device (`tune --robust`).
-- Conventions as in 0001_initial.sql.

CREATE TABLE contention (
    id             INTEGER PRIMARY KEY,
    device_id      TEXT NOT NULL REFERENCES devices(id),
    processor_id   TEXT NOT NULL,
    model_id       INTEGER NOT NULL REFERENCES models(id),
    -- 'compute-other', 'memory-other', 'compute-same', 'compute-same-x3', 'memory-same'
    -- (the vocabulary is documented in tandem-profile's contention module)
    scenario       TEXT NOT NULL,
    load           TEXT NOT NULL,                 -- the background load, 'compute spinner x1 on core 1 (100%)'
    idle_us        REAL NOT NULL,                 -- median whole-model latency without the load ...
    loaded_us      REAL NOT NULL,                 -- ... and with it
    slowdown       REAL NOT NULL,                 -- loaded_us / idle_us
    idle_samples   INTEGER NOT NULL,              -- samples behind each median; each sample is the mean of
    loaded_samples INTEGER NOT NULL,              -- runs_per_sample back-to-back runs
    runs_per_sample INTEGER NOT NULL DEFAULT 1,
    idle_cv        REAL,                          -- coefficient of variation of each side
    loaded_cv      REAL,
    env            TEXT NOT NULL DEFAULT '{}',    -- JSON: the environment snapshot taken with the measurement
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    FOREIGN KEY (device_id, processor_id) REFERENCES processors(device_id, id),
    -- Re-profiling a scenario replaces its row.
    UNIQUE (device_id, processor_id, model_id, scenario)
);
CREATE INDEX contention_by_device ON contention (device_id, processor_id);
