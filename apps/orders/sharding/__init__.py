"""Orders partitioned by owner over PostgreSQL shard servers (postgres_fdw); docs/sharding.md."""
