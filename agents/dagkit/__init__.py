"""What a DAG file may use from the runtime, so that a DAG holds its own work and little else.

- `agents.dagkit.datafiles`: path parameters confined to the repository's `data/` folder, and a run's output
  files written atomically (a run that fails leaves the previous output as it was), with a manifest of their
  checksums when asked;
- `agents.dagkit.checks`: integer parameters however they come, and a CSV input's bad rows rejected with a
  code and a reason per failed check (the DAG says what a good row is);
- `agents.dagkit.executors`: the executor of a DAG whose tasks may go to the stack's Dask cluster
  (`choose_executor()`: the cluster at DASK_SCHEDULER_ADDRESS, else a local thread pool).

The example DAGs (`dags/etl-seattle-weather`, `dags/distributed-primes`) use them. A DAG that imports nothing from
the project is still a plain Prefect flow file and works as well.
"""
