"""preservation.audit: fixity audits, repair, the audit log, alerts, the scheduler.

Modules (one job each):

- ``budget``     parse ``50GB``, ``2h``, ``1000objects``, ``auto``
- ``codes``      the one table of check outcomes (AUD000-AUD007)
- ``plan``       which file copies a run checks, in which order, within its budget
- ``fixity``     the checks themselves (full/sample: one read, every digest; inventory:
                 one head), run on threads or Dask workers
- ``manifests``  the bag's manifests of a copy, read from the audited store, and the
                 run's bounded index of their digests (memory, or a scratch database)
- ``early``      a one-AIP command's big files read while it imports and connects,
                 used once the run holds its lease if nothing changed meanwhile
- ``runner``     a run: plan, check in parallel, record the evidence batch by batch,
                 resume what a killed run left (``run_audit``)
- ``events``     one PREMIS ``fixity check`` event per AIP copy and run
- ``parquet_log`` one row per check, hive-partitioned by date
                 (``schemas/audit-log.schema.json``)
- ``incidents``  failures become incidents (deduplicated, with severity and evidence)
- ``alerts``     log line, webhook, e-mail; one message per run, only on change
- ``repair``     replace a bad copy from a re-verified good one; quarantine, never delete
- ``lease``      one holder per job across processes and hosts (catalogue rows)
- ``executor``   one executor interface: threads, or a Dask ``distributed`` cluster
- ``scheduler``  APScheduler 3 with its job store in the catalogue database
- ``status``     coverage, overdue copies, incidents, last runs

Decisions worth knowing (see each module for the details):

- An audit never changes an AIP's objects. Like every post-ingest event, its PREMIS
  events are written beside the AIP (``<aip>/events/``) on the stores holding it.
- Audits do not change a copy's ``state``: ``failed`` is replication's queue (a copy
  to write again). Damage shows as file-copy outcomes and open incidents; a copy's
  ``last_audit_at`` is the oldest last verification of its files.
- A pass advances a file copy's ``last_verified_at`` when the check read the content
  (full, sample), or for an inventory of a store audited by inventory (cold stores,
  ``audit_mode = "inventory"``); an inventory of a store audited in full records its
  failures only, so it never displaces the full checks.
- Repairs are PREMIS ``replication`` events (LoC event type vocabulary) whose detail
  starts with ``repair``; a repair that finds no good copy is a failed one.
- Sample mode compares with the catalogue only (its point is to read little); full
  mode also compares with the bag manifests.

The package imports nothing by itself (the configuration imports ``budget`` to
validate budgets and durations); import the module you need.
"""
