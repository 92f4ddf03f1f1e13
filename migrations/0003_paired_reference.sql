-- tandem results database, schema version 3: a reference kernel timed in the same rounds as a measurement.
--
-- The host's speed moves within seconds (a shared machine, a phone heating up): the same whole model,
-- timed in one process after another, varies by 10-20% (coefficient of variation), far more than any
-- cost model may err by. A fixed reference kernel timed in alternation with the measurement, in the
-- same rounds on the same processor, feels the same speed: the zoo mobilenet's median varied by 11.7%
-- over 40 processes, its ratio to the kernel by 4.7%.
-- `reference_us` is that kernel's median over the measurement's rounds (NULL where none was timed:
-- rows stored before this version, ops timed alone, GPU processors). `tandem fit` brings each paired
-- row to the processor's typical speed (its median reference) before fitting, so models timed minutes
-- apart are fitted and evaluated at one speed. The kernel is described in tandem-profile's reference module.
-- Conventions as in 0001_initial.sql.

ALTER TABLE measurements ADD COLUMN reference_us REAL;
